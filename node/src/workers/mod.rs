//! Background workers: bounded, rate-limited, stoppable.

pub mod rate;
pub mod scrub;
