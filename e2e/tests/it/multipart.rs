//! Multipart uploads against real daemons: a completed upload reads back whole and by
//! ranges across part boundaries; parts left out of it, a part uploaded twice and an
//! aborted upload are collected, while every part the object uses stays (also against a
//! forged garbage record naming one); deleting the object collects its parts.

use std::collections::BTreeMap;
use std::time::Duration;

use andromede_client::api::CompletedPart;
use andromede_client::{Client, ClientError, PutObjectOptions};

use crate::objects::{body, bucket, start_cluster};
use crate::{eventually, shard_files};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

async fn part(client: &Client, key: &str, upload: &str, number: u32, data: &[u8]) -> String {
    client
        .upload_part(
            "mpu",
            key,
            upload,
            number,
            data,
            PutObjectOptions {
                size_hint: Some(data.len() as u64),
                ..PutObjectOptions::default()
            },
        )
        .await
        .unwrap()
        .etag
}

async fn read_range(client: &Client, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    use futures::StreamExt;
    let object = client.get_object("mpu", key, Some(range)).await.unwrap();
    let mut out = Vec::new();
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_parts_are_assembled_kept_while_used_and_collected_after() {
    let (dirs, daemons, first_addr) = start_cluster(&["FR", "FR", "FR", "FR"]).await;
    let client = crate::hasty_client(first_addr, 4).await;
    client
        .create_bucket("mpu", bucket(2, 1, &[]))
        .await
        .unwrap();

    // Upload A: part 1 (5 MiB), part 2 uploaded twice, part 3 left out.
    let a = client
        .create_multipart_upload("mpu", "big", &PutObjectOptions::default())
        .await
        .unwrap();
    let one = body(5 * MIB, 1);
    let two_old = body(100 * KIB, 2);
    let two = body(150 * KIB, 3);
    let etag1 = part(&client, "big", &a, 1, &one).await;
    part(&client, "big", &a, 2, &two_old).await;
    let etag2 = part(&client, "big", &a, 2, &two).await;
    part(&client, "big", &a, 3, &body(100 * KIB, 4)).await;
    // Upload B: aborted.
    let b = client
        .create_multipart_upload("mpu", "dropped", &PutObjectOptions::default())
        .await
        .unwrap();
    part(&client, "dropped", &b, 1, &body(200 * KIB, 5)).await;
    let (uploads, _) = client
        .list_multipart_uploads("mpu", "", None, None, 100)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 2);
    client
        .abort_multipart_upload("mpu", "dropped", &b)
        .await
        .unwrap();
    assert!(matches!(
        client.list_parts("mpu", "dropped", &b, 0, 100).await,
        Err(ClientError::NoSuchUpload { .. })
    ));

    // Bad completions change nothing.
    let completed = |parts: &[(u32, &str)]| -> Vec<CompletedPart> {
        parts
            .iter()
            .map(|(n, e)| CompletedPart {
                part_number: *n,
                etag: (*e).to_owned(),
            })
            .collect()
    };
    assert!(matches!(
        client
            .complete_multipart_upload(
                "mpu",
                "big",
                &a,
                &completed(&[(2, &etag2), (1, &etag1)]),
                BTreeMap::new()
            )
            .await,
        Err(ClientError::InvalidPartOrder)
    ));
    assert!(matches!(
        client
            .complete_multipart_upload(
                "mpu",
                "big",
                &a,
                &completed(&[(1, &etag1), (2, "0000")]),
                BTreeMap::new()
            )
            .await,
        Err(ClientError::InvalidPart { part_number: 2, .. })
    ));
    assert!(matches!(
        client
            .complete_multipart_upload(
                "mpu",
                "big",
                &a,
                &completed(&[(2, &etag2), (3, "x")]),
                BTreeMap::new()
            )
            .await,
        Err(ClientError::EntityTooSmall { part_number: 2, .. })
            | Err(ClientError::InvalidPart { .. })
    ));
    let info = client
        .complete_multipart_upload(
            "mpu",
            "big",
            &a,
            &completed(&[(1, &etag1), (2, &etag2)]),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert!(info.etag.ends_with("-2"), "{}", info.etag);
    let whole: Vec<u8> = [one.clone(), two.clone()].concat();
    assert_eq!(client.get_object_bytes("mpu", "big").await.unwrap(), whole);
    let across = (5 * MIB - 1000) as u64..(5 * MIB + 2000) as u64;
    assert_eq!(
        read_range(&client, "big", across.clone()).await,
        whole[across.start as usize..across.end as usize]
    );
    assert_eq!(
        client.head_object("mpu", "big").await.unwrap().etag,
        info.etag
    );
    // The audit walks the parts: two one-segment parts, three shards each, all held.
    let audit = client.audit("mpu", "big").await.unwrap();
    let big = &audit.objects[0];
    assert_eq!(big.error, None);
    assert_eq!(big.shards.len(), 6);
    assert!(big.shards.iter().all(|s| s.present == Some(true)));
    assert_eq!(
        big.shards
            .iter()
            .map(|s| s.segment)
            .collect::<std::collections::BTreeSet<_>>(),
        [0, 1].into()
    );
    assert_eq!(big.survives, Some(1));

    // Parts 1 and 2 (latest) are one segment each: 3 shards each stay; the rest goes.
    let collected = eventually(Duration::from_secs(90), async || shard_files(&dirs) == 6).await;
    assert!(collected, "{} shard files, 6 expected", shard_files(&dirs));

    // A garbage record naming part 1's version, due at once, applied to every node: the
    // collectors see that the current version uses it and refuse.
    let manifest = client.object_manifest("mpu", "big").await.unwrap();
    let part_one = manifest.parts()[0].version_id;
    crate::apply_forged_garbage(&client, &daemons, "mpu", "big", &part_one).await;
    let before: Vec<u64> = daemons
        .iter()
        .flatten()
        .map(|d| crate::passes(d, "gc"))
        .collect();
    assert!(crate::ran_passes(&daemons, "gc", &before, 3).await);
    assert_eq!(
        shard_files(&dirs),
        6,
        "a part the object uses was collected"
    );
    assert_eq!(client.get_object_bytes("mpu", "big").await.unwrap(), whole);

    // Deleting the object collects its parts.
    client.delete_object("mpu", "big").await.unwrap();
    let gone = eventually(Duration::from_secs(90), async || shard_files(&dirs) == 0).await;
    assert!(gone, "{} shard files left", shard_files(&dirs));
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
