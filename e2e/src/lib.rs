//! End-to-end tests of Andromède (`tests/it`): node daemons started in this process and
//! clients that store, read, repair, rebalance and drain through them, on loopback.
//!
//! This crate exists so that the node and the client never depend on each other: the
//! node cannot name a key type (DESIGN.md, invariant 4), and tests that need both sides
//! in one process live here. It has no library code.
