//! The Andromède S3 gateway: an Andromède *client* (it holds the master key, encrypts and
//! decodes; storage nodes stay zero-knowledge) that speaks S3 to the tools users already
//! have. Several gateways may serve one cluster: access keys live in the cluster, sealed.
//!
//! Module map:
//! - [`s3`]: the S3 operations over the client library ([`s3::Gateway`]).
//! - [`access`]: SigV4 secrets and per-bucket grants.
//! - [`keys`]: access keys, stored sealed in the cluster, cached briefly.
//! - [`server`]: the HTTP listener and its limits.
//! - [`config`]: the `gateway.toml` file.
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod access;
pub mod config;
pub mod keys;
pub mod s3;
pub mod server;
