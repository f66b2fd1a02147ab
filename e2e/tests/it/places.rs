//! Placement fails closed (DESIGN.md, "Trust model"): when a bucket's policy cannot be
//! read, repair waits rather than place its shards "anywhere". (That the places placement
//! uses are the certified ones is shown at its source, the membership view:
//! `cluster/tests/it/membership.rs`.)

use std::time::Duration;

use andromede_client::{Client, MasterKey};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{Record, Version};

use crate::objects::{body, bucket, put, start_cluster};
use crate::{eventually, files_under, passes};

const KIB: usize = 1 << 10;

fn shard_files(dir: &tempfile::TempDir) -> usize {
    files_under(&dir.path().join("store").join("shards"), ".shard").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_waits_when_the_bucket_policy_cannot_be_read() {
    let jurisdictions = ["FR", "FR", "FR", "DE", "DE", "DE"];
    let (dirs, mut daemons, first_addr) = start_cluster(&jurisdictions).await;
    let client = Client::connect(crate::client_config(
        vec![first_addr.clone()],
        MasterKey::generate(),
    ))
    .await
    .unwrap();
    client
        .wait_for_nodes(6, Duration::from_secs(30))
        .await
        .unwrap();
    client
        .create_bucket("fr-only", bucket(2, 1, &["FR"]))
        .await
        .unwrap();
    // One segment: its three shards on the three FR nodes, nowhere else to go in FR.
    put(&client, "fr-only", "o", &body(300 * KIB, 1)).await;
    let de: Vec<usize> = (3..6).collect();
    assert!(de.iter().all(|&i| shard_files(&dirs[i]) == 0));

    // The bucket record is lost on every replica.
    let bucket_key = RecordKey {
        table: Table::Bucket,
        partition: String::new(),
        sort: b"fr-only".to_vec(),
    };
    for daemon in daemons.iter().flatten() {
        let meta = daemon.meta();
        if let Some(record) = meta.get(&bucket_key).unwrap() {
            let newer = Version {
                timestamp: andromede_cluster::meta::hlc::Timestamp {
                    wall_ms: record.version.timestamp.wall_ms + 1,
                    logical: 0,
                },
                writer: record.version.writer.clone(),
            };
            meta.apply(&[(bucket_key.clone(), Record::tombstone(newer))])
                .unwrap();
        }
    }
    // An FR holder goes away for good: without the policy, repair must not rebuild its
    // shard "anywhere" (on a DE node).
    daemons[2].take().unwrap().stop().await.unwrap();
    let live: Vec<usize> = (0..6).filter(|&i| i != 2).collect();
    let before: Vec<u64> = live
        .iter()
        .map(|&i| passes(daemons[i].as_ref().unwrap(), "repair"))
        .collect();
    // down_after is 3 s here: many repair passes later, the node is long down.
    let ran = eventually(Duration::from_secs(60), async || {
        live.iter()
            .zip(&before)
            .all(|(&i, before)| passes(daemons[i].as_ref().unwrap(), "repair") >= before + 12)
    })
    .await;
    assert!(ran, "repair did not run");

    for &i in &de {
        assert_eq!(
            shard_files(&dirs[i]),
            0,
            "repair put a shard of an FR-only bucket on a DE node while its policy was unreadable"
        );
    }
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
