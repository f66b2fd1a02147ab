//! The Andromède testnet: real clusters on one machine, broken on purpose, and the
//! checkers that say whether anything was lost or returned wrong (DESIGN.md, "Design for
//! failure" and "Invariants").
//!
//! Module map:
//! - [`bench`]: throughput, RSS and repair measurements on a testnet.
//! - [`chaos`]: a seeded fault schedule under load, then the invariants, as a report.
//! - [`workload`]: writers, overwriters, deleters and readers with known bodies, recorded.
//! - [`checker`]: read-after-write, listing and never-wrong-bytes checks over a recorded
//!   history of client operations.
//! - [`cluster`]: a testnet of real node processes and the faults applied to them.
//! - [`process`]: the node binary, `andromede-node init` and the config edits a testnet
//!   makes, its processes and their signals.
//! - [`redundancy`]: invariant 3 from outside — every segment's shards, asked of their
//!   holders.

pub mod bench;
pub mod chaos;
pub mod checker;
pub mod cluster;
pub mod process;
pub mod redundancy;
pub mod workload;
