//! Metadata vocabulary shared by the client and the replicas (DESIGN.md, "Metadata"):
//! hybrid-logical-clock versions and last-writer-wins records. One implementation, so that
//! replicas merging and clients resolving quorum reads can never disagree.

pub mod authorship;
pub mod hlc;
pub mod key;
pub mod record;
pub mod seal;
pub mod values;
