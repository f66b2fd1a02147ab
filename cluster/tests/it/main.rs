//! The cluster core's integration tests: swarms on loopback in one process.

mod membership;
mod net;
