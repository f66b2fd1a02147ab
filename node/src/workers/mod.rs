//! Background workers: bounded, rate-limited, stoppable.

pub mod anti_entropy;
pub mod gc;
pub mod rate;
pub mod scrub;
