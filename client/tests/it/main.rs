//! The client's integration tests: one binary (each extra test binary is another link).
#![allow(
    clippy::cast_possible_truncation,
    reason = "test data generators truncate integers on purpose"
)]

mod budget;
mod codec_props;
mod helpers;
mod holders;
mod range;
mod tamper;
