//! The recorded history of a workload: every operation a client started, when it started
//! and ended (on one monotonic clock, in any unit), and what it returned.

use serde::{Deserialize, Serialize};

/// A body, by its blake3 hash: enough to tell which write a read returned.
pub type BodyHash = [u8; 32];

/// The hash a history records for `body`.
pub fn body_hash(body: &[u8]) -> BodyHash {
    *blake3::hash(body).as_bytes()
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// Acknowledged: it happened.
    Acked,
    /// Refused before anything was written: it did not happen.
    Refused,
    /// Failed or timed out after it may have been written: it may appear at any time.
    Maybe,
}

/// What an operation did and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A PUT of a body.
    Put {
        /// The body's hash.
        body: BodyHash,
        /// How it ended.
        outcome: WriteOutcome,
    },
    /// A DELETE.
    Delete {
        /// How it ended.
        outcome: WriteOutcome,
    },
    /// A GET.
    Get {
        /// `Some(Some(hash))` found, `Some(None)` not found, `None` an error (allowed,
        /// counted).
        found: Option<Option<BodyHash>>,
    },
    /// A listing of keys under a prefix (the `key` of the event is the prefix).
    List {
        /// The keys listed, or `None` for an error.
        keys: Option<Vec<String>>,
    },
}

/// One operation of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The object key (the prefix for a listing).
    pub key: String,
    /// When it started.
    pub start: u64,
    /// When it ended (an operation still running when the history was cut ends at
    /// `u64::MAX`).
    pub end: u64,
    /// What it was and what it returned.
    pub op: Op,
}

/// A whole history, in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Every operation.
    pub events: Vec<Event>,
}

impl History {
    /// Records an operation.
    pub fn push(&mut self, key: impl Into<String>, start: u64, end: u64, op: Op) {
        self.events.push(Event {
            key: key.into(),
            start,
            end,
            op,
        });
    }
}
