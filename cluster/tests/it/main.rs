//! The cluster core's integration tests: swarms on loopback in one process.

mod admission;
mod membership;
mod net;
