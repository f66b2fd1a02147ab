//! Copies inside the cluster reuse the source's shards: no shard is written, the copy
//! reads back, and collecting the source (or the copy) never deletes shards the other
//! still uses.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::objects::{body, bucket, get, put, start_cluster};
use crate::{eventually, shard_files};

const KIB: usize = 1 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_reuses_shards_and_outlives_its_source() {
    let (dirs, daemons, first_addr) = start_cluster(&["FR", "FR", "FR", "FR"]).await;
    let client = crate::hasty_client(first_addr, 4).await;
    client
        .create_bucket("copies", bucket(2, 1, &[]))
        .await
        .unwrap();
    client
        .create_bucket("other-code", bucket(1, 1, &[]))
        .await
        .unwrap();
    let data = body(300 * KIB, 9);
    put(&client, "copies", "src", &data).await;
    assert_eq!(shard_files(&dirs), 3);
    let head = client.head_object("copies", "src").await.unwrap();
    let meta = BTreeMap::from([("copied".to_owned(), "yes".to_owned())]);
    let copied = client
        .copy_object_reusing(
            "copies",
            "src",
            &head.version_id,
            "copies",
            "dst",
            "text/x-copy",
            &meta,
            "etag-1",
        )
        .await
        .unwrap()
        .expect("a segmented source in a bucket of the same code is copied in place");
    assert_eq!(shard_files(&dirs), 3, "a copy wrote shards");
    assert_eq!(get(&client, "copies", "dst").await, data);
    let dst = client.head_object("copies", "dst").await.unwrap();
    assert_eq!(dst.etag, "etag-1");
    assert_eq!(dst.content_type, "text/x-copy");
    assert_eq!(dst.user_metadata, meta);
    assert_eq!(dst.version_id, copied.version_id);
    // Not in place: another erasure code, or a source that is no longer that version.
    assert!(
        client
            .copy_object_reusing(
                "copies",
                "src",
                &head.version_id,
                "other-code",
                "x",
                "t",
                &meta,
                "e"
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        client
            .copy_object_reusing(
                "copies",
                "src",
                &dst.version_id,
                "copies",
                "y",
                "t",
                &meta,
                "e"
            )
            .await
            .unwrap()
            .is_none()
    );

    // The source goes: its manifest is collected, the shards stay for the copy.
    client.delete_object("copies", "src").await.unwrap();
    let before: Vec<u64> = daemons
        .iter()
        .flatten()
        .map(|d| crate::passes(d, "gc"))
        .collect();
    assert!(crate::ran_passes(&daemons, "gc", &before, 3).await);
    let collected = eventually(Duration::from_secs(30), async || {
        client.object_manifest("copies", "src").await.is_err()
    })
    .await;
    assert!(collected);
    // Every shard the copy names is still held (rebalancing may have added copies of
    // some meanwhile; none was deleted).
    let audit = client.audit("copies", "dst").await.unwrap();
    let shards = &audit.objects[0].shards;
    assert_eq!(shards.len(), 3);
    assert!(
        shards.iter().all(|s| s.present == Some(true)),
        "collecting the source deleted the copy's shards: {shards:?}"
    );
    assert!(shard_files(&dirs) >= 3);
    assert_eq!(get(&client, "copies", "dst").await, data);
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
