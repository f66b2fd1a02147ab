//! The scrubber finds and quarantines rotten shards, counts vanished ones, and stops when
//! told.

use andromede_node::workers::rate::RateLimiter;
use andromede_node::workers::scrub::scrub_pass;
use tokio_util::sync::CancellationToken;

use crate::{files_under, open, shard};

#[tokio::test]
async fn a_pass_quarantines_rotten_shards_and_counts_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 24);
    let mut ids = Vec::new();
    for i in 0..20u8 {
        let (id, bytes) = shard(i, 1000 + usize::from(i));
        store.put(&id, &bytes).unwrap();
        ids.push(id);
    }
    let path = |id: &andromede_proto::ShardId| {
        files_under(dir.path(), &format!("{id}.shard"))
            .pop()
            .unwrap()
    };
    // Rot two shards, delete one behind the store's back.
    for id in &ids[..2] {
        let p = path(id);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    }
    std::fs::remove_file(path(&ids[2])).unwrap();

    let mut progress = 0u64;
    let report = scrub_pass(
        &store,
        &mut RateLimiter::new(u64::MAX),
        &CancellationToken::new(),
        |bytes| progress += bytes,
    )
    .await
    .unwrap();
    assert_eq!(report.intact, 17);
    assert_eq!(report.quarantined, 2);
    assert_eq!(report.missing, 1);
    assert_eq!(progress, report.bytes);
    assert_eq!(store.usage().shard_count, 17);
    assert_eq!(store.have(&ids[..3]).unwrap(), [false, false, false]);
    assert_eq!(files_under(&dir.path().join("quarantine"), "").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_pass_is_paced_by_the_rate_limit_and_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 24);
    for i in 0..10u8 {
        let (id, bytes) = shard(i, 1000);
        store.put(&id, &bytes).unwrap();
    }
    // 10 000 bytes at 1000 B/s: the pass must wait on the limiter (virtual time), and a
    // cancellation while it waits ends it early with a partial count.
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
            cancel.cancel();
        })
    };
    let report = scrub_pass(&store, &mut RateLimiter::new(1000), &cancel, |_| {})
        .await
        .unwrap();
    canceller.await.unwrap();
    assert!(report.cancelled);
    // With one second of burst, about 5 shards fit in 4 s; never all 10.
    assert!(report.intact >= 3 && report.intact <= 6, "{report:?}");
}
