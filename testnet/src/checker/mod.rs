//! The checkers (DESIGN.md, "Invariants" 1 and 2) over a recorded [`History`].
//!
//! For a read of a key that began at `start` and ended at `end`, the legal answers are
//! those of the writes that may be the latest when it ran:
//! - every acknowledged write that ended before `start` and that no other acknowledged
//!   write of the key followed entirely (started after it ended, ended before `start`);
//! - every write still in flight while the read ran (started before `end`), acknowledged
//!   or not, and every write that may have happened (timed out: "maybe" forever);
//! - "not found" when no acknowledged write ended before `start`.
//!
//! A get that returns anything else is a **stale read** (or a **resurrected delete**, or
//! a **lost write**: the same rule seen from the write's side). A body that no write of
//! that key ever carried is **wrong bytes**, the worst failure. A listing must show every
//! key whose legal states are all "present", and no key whose legal states are all
//! "absent". Errors are legal (a read may fail), and counted.

mod history;

pub use history::{BodyHash, Event, History, Op, WriteOutcome, body_hash};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One invariant broken, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Anomaly {
    /// A get returned bytes that no write to the key ever carried.
    WrongBytes {
        /// The key.
        key: String,
        /// When the get started.
        start: u64,
    },
    /// A get returned a value (or "not found") that a later acknowledged write had
    /// replaced before the get began.
    StaleRead {
        /// The key.
        key: String,
        /// When the get started.
        start: u64,
        /// What it returned (`None`: not found).
        returned: Option<BodyHash>,
    },
    /// A listing missed a key that was certainly present, or showed one certainly absent.
    BadListing {
        /// The prefix listed.
        prefix: String,
        /// When the listing started.
        start: u64,
        /// The key concerned.
        key: String,
        /// Whether it was missing (true) or extra (false).
        missing: bool,
    },
}

/// What the checkers found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Acknowledged writes.
    pub writes_acked: u64,
    /// Gets checked (errors excluded).
    pub reads_checked: u64,
    /// Gets and listings that returned an error.
    pub errors: u64,
    /// Listings checked.
    pub listings_checked: u64,
    /// Every anomaly found.
    pub anomalies: Vec<Anomaly>,
}

impl Verdict {
    /// Whether every invariant held.
    pub fn ok(&self) -> bool {
        self.anomalies.is_empty()
    }
}

/// A write of one key, as the checkers see it.
#[derive(Debug, Clone, Copy)]
struct Write {
    start: u64,
    end: u64,
    /// `None` for a delete.
    body: Option<BodyHash>,
    outcome: WriteOutcome,
}

/// The values a read running from `start` to `end` may legally return (`None`: absent).
fn legal_values(writes: &[Write], start: u64, end: u64) -> BTreeSet<Option<BodyHash>> {
    let acked_before: Vec<&Write> = writes
        .iter()
        .filter(|w| w.outcome == WriteOutcome::Acked && w.end < start)
        .collect();
    let mut legal = BTreeSet::new();
    for w in &acked_before {
        let superseded = acked_before
            .iter()
            .any(|later| later.start > w.end && later.end < start);
        if !superseded {
            legal.insert(w.body);
        }
    }
    if acked_before.is_empty() {
        legal.insert(None);
    }
    for w in writes {
        let in_flight = w.start < end && !(w.outcome == WriteOutcome::Acked && w.end < start);
        if in_flight && w.outcome != WriteOutcome::Refused {
            legal.insert(w.body);
        }
    }
    legal
}

/// Checks every get and listing of `history`.
pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::default();
    let mut writes: BTreeMap<&str, Vec<Write>> = BTreeMap::new();
    for event in &history.events {
        let (body, outcome) = match &event.op {
            Op::Put { body, outcome } => (Some(*body), *outcome),
            Op::Delete { outcome } => (None, *outcome),
            Op::Get { .. } | Op::List { .. } => continue,
        };
        if outcome == WriteOutcome::Acked {
            verdict.writes_acked += 1;
        }
        writes.entry(&event.key).or_default().push(Write {
            start: event.start,
            end: event.end,
            body,
            outcome,
        });
    }
    let none: Vec<Write> = Vec::new();
    for event in &history.events {
        match &event.op {
            Op::Get { found: None } | Op::List { keys: None } => verdict.errors += 1,
            Op::Get { found: Some(found) } => {
                verdict.reads_checked += 1;
                let key_writes = writes.get(event.key.as_str()).unwrap_or(&none);
                if let Some(hash) = found
                    && !key_writes.iter().any(|w| w.body == Some(*hash))
                {
                    verdict.anomalies.push(Anomaly::WrongBytes {
                        key: event.key.clone(),
                        start: event.start,
                    });
                    continue;
                }
                if !legal_values(key_writes, event.start, event.end).contains(found) {
                    verdict.anomalies.push(Anomaly::StaleRead {
                        key: event.key.clone(),
                        start: event.start,
                        returned: *found,
                    });
                }
            }
            Op::List { keys: Some(listed) } => {
                verdict.listings_checked += 1;
                let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
                for (key, key_writes) in &writes {
                    if !key.starts_with(&event.key) {
                        continue;
                    }
                    let legal = legal_values(key_writes, event.start, event.end);
                    let present = listed.contains(key);
                    let must_be_present = legal.iter().all(Option::is_some);
                    let must_be_absent = legal.iter().all(Option::is_none);
                    if (must_be_present && !present) || (must_be_absent && present) {
                        verdict.anomalies.push(Anomaly::BadListing {
                            prefix: event.key.clone(),
                            start: event.start,
                            key: (*key).to_owned(),
                            missing: !present,
                        });
                    }
                }
                for key in listed {
                    if key.starts_with(&event.key) && !writes.contains_key(key) {
                        verdict.anomalies.push(Anomaly::BadListing {
                            prefix: event.key.clone(),
                            start: event.start,
                            key: key.to_owned(),
                            missing: false,
                        });
                    }
                }
            }
            Op::Put { .. } | Op::Delete { .. } => {}
        }
    }
    verdict
}

#[cfg(test)]
mod tests;
