//! Networking vocabulary. For now: the validated domain types of the shard protocol
//! (`/andromede/shard/1`); the transport, swarm actor and handle come with the cluster.

pub mod message;
