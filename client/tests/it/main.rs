//! The client's integration tests: one binary (each extra test binary is another link).

mod codec_props;
mod helpers;
mod range;
mod tamper;
