//! Who wrote a record, and what a tampered replica changes (DESIGN.md, "Metadata"):
//! `stat` names the author of the current version, a reader ignores a record whose
//! signature does not verify, and the audit names the replica that keeps it. Real daemons
//! on 127.0.0.1.

use andromede_cluster::meta::key::{RecordKey, Table};
use bytes::Bytes;

use crate::objects::{body, bucket, get, put};
use crate::repair::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_replica_is_ignored_by_readers_and_named_by_the_audit() {
    let cluster = Cluster::start(3).await;
    let client = &cluster.client;
    client
        .create_bucket("ledger", bucket(2, 1, &[]))
        .await
        .unwrap();
    put(client, "ledger", "q3.csv", &body(5_000, 3)).await;

    // `stat`: the author of the current version is this client.
    let info = client.head_object("ledger", "q3.csv").await.unwrap();
    let me = client.net().local_peer_id().to_string();
    assert!(
        info.author.starts_with("client ") && info.author.contains(&me),
        "{}",
        info.author
    );

    // One replica's disk is rewritten behind its back: a newer version of the index
    // entry, its value changed, the writer's signature kept (it no longer matches).
    let key = RecordKey {
        table: Table::ObjectIndex,
        partition: "ledger".into(),
        sort: b"q3.csv".to_vec(),
    };
    let tampered_node = cluster.daemons[1].as_ref().unwrap();
    let mut record = tampered_node.meta().get(&key).unwrap().unwrap();
    record.version.timestamp.wall_ms += 1_000;
    let mut value = record.value.clone().unwrap().to_vec();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    record.value = Some(Bytes::from(value));
    tampered_node
        .meta()
        .apply(&[(key.clone(), record)])
        .unwrap();

    // Readers take the newest record that verifies, wherever they read.
    assert_eq!(get(client, "ledger", "q3.csv").await, body(5_000, 3));
    let other = cluster.another_client(3).await;
    assert_eq!(get(&other, "ledger", "q3.csv").await, body(5_000, 3));

    // The audit reads each replica alone and names the one with the bad record.
    let report = client.audit("ledger", "").await.unwrap();
    assert_eq!(report.summary.records_bad, 1, "{:?}", report.bad_records);
    assert!(report.summary.records_checked >= 6, "{:?}", report.summary);
    assert!(!report.summary.is_clean());
    let bad = &report.bad_records[0];
    assert_eq!(bad.replica, tampered_node.net().local_peer_id().to_string());
    assert_eq!((bad.table.as_str(), bad.key.as_str()), ("index", "q3.csv"));
    assert!(
        bad.reason.contains("signature does not verify"),
        "{}",
        bad.reason
    );
}
