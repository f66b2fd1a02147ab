//! The testnet's integration tests, one binary: real node processes on 127.0.0.1.
//!
//! - [`authority`]: revocation against node processes.
//! - [`chaos`]: the seeded two-minute chaos run (alone on the machine: it takes the
//!   cluster lock exclusively).
//! - [`faults`]: each fault kind, then full redundancy and every object read back.
//! - [`scenarios`]: the named failure scenarios and the planted bugs they catch.
//! - [`signed`]: forged and rolled-back records from a rogue peer, refused everywhere.

mod authority;
mod chaos;
mod common;
mod faults;
mod scenarios;
mod signed;
