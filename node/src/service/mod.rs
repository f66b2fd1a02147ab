//! Inbound protocol services: one module per protocol, one function per request type
//! (mini-redis `cmd/` style), and a dispatcher that bounds how many run at once.

pub mod dispatch;
mod grants;
pub mod meta;
pub mod shard;
