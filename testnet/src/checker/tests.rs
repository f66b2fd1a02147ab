//! The checkers against hand-made histories: each anomaly they exist for must be flagged,
//! and the legal behaviours around it (concurrent writes, timed-out writes, errors) must
//! not be.

use super::*;

fn h(n: u8) -> BodyHash {
    body_hash(&[n])
}

fn put(history: &mut History, key: &str, start: u64, end: u64, n: u8) {
    history.push(
        key,
        start,
        end,
        Op::Put {
            body: h(n),
            outcome: WriteOutcome::Acked,
        },
    );
}

fn get(history: &mut History, key: &str, start: u64, end: u64, found: Option<u8>) {
    history.push(
        key,
        start,
        end,
        Op::Get {
            found: Some(found.map(h)),
        },
    );
}

fn delete(history: &mut History, key: &str, start: u64, end: u64, outcome: WriteOutcome) {
    history.push(key, start, end, Op::Delete { outcome });
}

fn list(history: &mut History, prefix: &str, start: u64, end: u64, keys: &[&str]) {
    history.push(
        prefix,
        start,
        end,
        Op::List {
            keys: Some(keys.iter().map(ToString::to_string).collect()),
        },
    );
}

#[test]
fn a_clean_history_passes() {
    let mut history = History::default();
    get(&mut history, "k", 0, 1, None);
    put(&mut history, "k", 2, 5, 1);
    // Concurrent with the put: either answer is legal.
    get(&mut history, "k", 3, 4, None);
    get(&mut history, "k", 4, 6, Some(1));
    get(&mut history, "k", 6, 7, Some(1));
    put(&mut history, "k", 8, 10, 2);
    get(&mut history, "k", 11, 12, Some(2));
    history.push("k", 13, 14, Op::Get { found: None });
    list(&mut history, "", 15, 16, &["k"]);
    let verdict = check(&history);
    assert!(verdict.ok(), "{verdict:?}");
    assert_eq!(verdict.writes_acked, 2);
    assert_eq!(verdict.reads_checked, 5);
    assert_eq!(verdict.errors, 1);
    assert_eq!(verdict.listings_checked, 1);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_flagged() {
    let mut history = History::default();
    put(&mut history, "k", 0, 1, 1);
    put(&mut history, "k", 2, 3, 2);
    get(&mut history, "k", 4, 5, Some(1));
    let verdict = check(&history);
    assert_eq!(
        verdict.anomalies,
        [Anomaly::StaleRead {
            key: "k".into(),
            start: 4,
            returned: Some(h(1))
        }]
    );
}

#[test]
fn a_resurrected_delete_is_flagged() {
    let mut history = History::default();
    put(&mut history, "k", 0, 1, 1);
    delete(&mut history, "k", 2, 3, WriteOutcome::Acked);
    get(&mut history, "k", 4, 5, None);
    get(&mut history, "k", 6, 7, Some(1));
    list(&mut history, "", 8, 9, &["k"]);
    let verdict = check(&history);
    assert_eq!(verdict.anomalies.len(), 2, "{verdict:?}");
    assert!(matches!(
        verdict.anomalies[0],
        Anomaly::StaleRead { start: 6, .. }
    ));
    assert!(matches!(
        &verdict.anomalies[1],
        Anomaly::BadListing { key, missing: false, .. } if key == "k"
    ));
}

#[test]
fn wrong_bytes_are_flagged_even_while_writes_are_in_flight() {
    let mut history = History::default();
    put(&mut history, "k", 0, 10, 1);
    put(&mut history, "other", 0, 1, 9);
    // Bytes of another key's write are wrong bytes too.
    get(&mut history, "k", 2, 3, Some(9));
    get(&mut history, "k", 2, 3, Some(7));
    let verdict = check(&history);
    assert_eq!(verdict.anomalies.len(), 2);
    assert!(
        verdict
            .anomalies
            .iter()
            .all(|a| matches!(a, Anomaly::WrongBytes { .. }))
    );
}

#[test]
fn a_lost_write_is_flagged_by_the_reads_after_it() {
    let mut history = History::default();
    put(&mut history, "k", 0, 1, 1);
    // Acknowledged, then gone: a read long after finds nothing, a listing misses it.
    put(&mut history, "gone", 0, 1, 2);
    get(&mut history, "gone", 100, 101, None);
    list(&mut history, "", 100, 101, &["k"]);
    let verdict = check(&history);
    assert_eq!(verdict.anomalies.len(), 2, "{verdict:?}");
    assert!(matches!(
        &verdict.anomalies[0],
        Anomaly::StaleRead { key, returned: None, .. } if key == "gone"
    ));
    assert!(matches!(
        &verdict.anomalies[1],
        Anomaly::BadListing { key, missing: true, .. } if key == "gone"
    ));
}

#[test]
fn timed_out_writes_stay_maybe_and_refused_ones_never_happened() {
    let mut history = History::default();
    put(&mut history, "k", 0, 1, 1);
    history.push(
        "k",
        2,
        3,
        Op::Put {
            body: h(2),
            outcome: WriteOutcome::Maybe,
        },
    );
    history.push(
        "k",
        2,
        3,
        Op::Put {
            body: h(3),
            outcome: WriteOutcome::Refused,
        },
    );
    delete(&mut history, "k", 4, 5, WriteOutcome::Maybe);
    // Long after: the acked value, the maybe put or the maybe delete are all legal.
    get(&mut history, "k", 50, 51, Some(1));
    get(&mut history, "k", 60, 61, Some(2));
    get(&mut history, "k", 70, 71, None);
    // A listing may show it or not.
    list(&mut history, "", 80, 81, &[]);
    list(&mut history, "", 82, 83, &["k"]);
    assert!(check(&history).ok(), "{:?}", check(&history));
    // The refused write's bytes are illegal to read (they exist in no stored version).
    get(&mut history, "k", 90, 91, Some(3));
    let verdict = check(&history);
    assert!(matches!(
        verdict.anomalies[..],
        [Anomaly::StaleRead { start: 90, .. }]
    ));
}

#[test]
fn listings_respect_their_prefix() {
    let mut history = History::default();
    put(&mut history, "a/1", 0, 1, 1);
    put(&mut history, "b/1", 0, 1, 2);
    list(&mut history, "a/", 2, 3, &["a/1"]);
    assert!(check(&history).ok());
    list(&mut history, "a/", 4, 5, &["a/1", "a/never-written"]);
    let verdict = check(&history);
    assert!(matches!(
        &verdict.anomalies[..],
        [Anomaly::BadListing { key, missing: false, .. }] if key == "a/never-written"
    ));
}
