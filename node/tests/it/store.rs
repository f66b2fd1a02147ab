//! Shard store operations: put verifies and is idempotent, get re-verifies and
//! quarantines, have/delete in batches, iteration, capacity.

use andromede_node::StoreError;
use andromede_node::store::PutOutcome;
use andromede_proto::ShardId;

use crate::{files_under, open, shard};

#[test]
fn put_get_have_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let (id, bytes) = shard(1, 1000);
    assert_eq!(store.put(&id, &bytes).unwrap(), PutOutcome::Stored);
    assert_eq!(store.put(&id, &bytes).unwrap(), PutOutcome::AlreadyHeld);
    assert_eq!(store.get(&id).unwrap(), bytes);
    let (other, _) = shard(2, 10);
    assert_eq!(store.have(&[id, other]).unwrap(), [true, false]);
    let usage = store.usage();
    assert_eq!((usage.shard_count, usage.used_bytes), (1, 1000));
    assert_eq!(store.delete(&[id, other]).unwrap(), 1);
    assert!(matches!(store.get(&id), Err(StoreError::NotFound { .. })));
    assert_eq!(store.usage().used_bytes, 0);
    assert!(files_under(dir.path(), ".shard").is_empty());
}

#[test]
fn put_rewrites_a_held_shard_whose_file_was_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let (id, bytes) = shard(8, 1000);
    store.put(&id, &bytes).unwrap();
    let path = files_under(dir.path(), ".shard").pop().unwrap();
    std::fs::write(&path, &bytes[..10]).unwrap();
    assert_eq!(store.put(&id, &bytes).unwrap(), PutOutcome::Stored);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(store.usage().used_bytes, 1000);
}

#[test]
fn put_refuses_bytes_that_do_not_match_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let (id, mut bytes) = shard(1, 100);
    bytes[0] ^= 1;
    assert!(matches!(
        store.put(&id, &bytes),
        Err(StoreError::IdMismatch { .. })
    ));
    assert_eq!(store.have(&[id]).unwrap(), [false]);
    assert_eq!(store.usage().used_bytes, 0);
    assert!(files_under(dir.path(), ".shard").is_empty());
}

#[test]
fn get_quarantines_shard_whose_hash_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let (id, bytes) = shard(3, 500);
    store.put(&id, &bytes).unwrap();
    let path = files_under(dir.path(), ".shard").pop().unwrap();
    let mut rotten = bytes.clone();
    rotten[250] ^= 0x40;
    std::fs::write(&path, &rotten).unwrap();
    assert!(matches!(store.get(&id), Err(StoreError::Corrupt { .. })));
    // Gone from the tree and the index, kept aside in quarantine, space released.
    assert!(!path.exists());
    assert_eq!(store.have(&[id]).unwrap(), [false]);
    assert_eq!(store.usage().used_bytes, 0);
    let quarantined = files_under(&dir.path().join("quarantine"), "");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(std::fs::read(&quarantined[0]).unwrap(), rotten);
    // A fresh put of the good bytes restores it.
    assert_eq!(store.put(&id, &bytes).unwrap(), PutOutcome::Stored);
    assert_eq!(store.get(&id).unwrap(), bytes);
}

#[test]
fn a_full_store_refuses_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2500);
    let (a, a_bytes) = shard(1, 1000);
    let (b, b_bytes) = shard(2, 1000);
    let (c, c_bytes) = shard(3, 1000);
    store.put(&a, &a_bytes).unwrap();
    store.put(&b, &b_bytes).unwrap();
    let err = store.put(&c, &c_bytes).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                needed: 1000,
                available: 500
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("raise --capacity"));
    assert_eq!(store.have(&[c]).unwrap(), [false]);
    assert_eq!(files_under(dir.path(), ".shard").len(), 2);
    store.delete(&[a]).unwrap();
    store.put(&c, &c_bytes).unwrap();
}

#[test]
fn oversize_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), u64::MAX);
    let ids = vec![ShardId([0; 32]); 1025];
    assert!(matches!(
        store.have(&ids),
        Err(StoreError::BatchTooLarge { count: 1025, .. })
    ));
    assert!(matches!(
        store.delete(&ids),
        Err(StoreError::BatchTooLarge { .. })
    ));
    let huge = vec![0u8; (andromede_proto::limits::SHARD_BYTES_MAX + 1) as usize];
    let id = andromede_cluster::shard::hash::shard_id(&huge);
    assert!(matches!(
        store.put(&id, &huge),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn iteration_pages_through_every_shard_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let mut ids: Vec<ShardId> = (0..50u8)
        .map(|i| {
            let (id, bytes) = shard(i, 64 + usize::from(i));
            store.put(&id, &bytes).unwrap();
            id
        })
        .collect();
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after.as_ref(), 7).unwrap();
        assert!(page.len() <= 7);
        let Some((last, _)) = page.last() else { break };
        after = Some(*last);
        seen.extend(page.iter().map(|(id, _)| *id));
    }
    assert_eq!(seen, ids);
}

#[test]
fn an_unopenable_index_gives_a_clear_error() {
    // An index path that is a file stands for any index sled cannot open.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("index"), b"not a directory").unwrap();
    let err = crate::try_open(bad.path(), 1 << 20).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}
