//! Where data lives (DESIGN.md, "Trust model"): placement fails closed — when a bucket's
//! policy cannot be read, repair waits rather than place its shards "anywhere" — and
//! `audit` shows every shard's holder with its certified place. (That the places
//! placement uses are the certified ones is shown at its source, the membership view:
//! `cluster/tests/it/membership.rs`.)

use std::time::Duration;

use andromede_cluster::manifest::Body;
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
    let client = crate::connected_client(first_addr.clone(), 6).await;
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

/// `audit` names every shard's holder with its certified place, reports a clean bucket as
/// clean, then a shard planted outside the bucket's jurisdictions (a manifest rewritten
/// by a test that moves one shard to a DE node) and an object degraded by a stopped
/// holder; `is_clean` (the CLI's exit status) turns false.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_reports_places_a_planted_violation_and_a_degraded_object() {
    use andromede_cluster::manifest::{HolderMove, Manifest};
    use andromede_cluster::net::message::{ShardRequest, ShardResponse, decode_shard_response};
    use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse, decode_meta_response};
    use andromede_cluster::net::{PeerId, Protocol};
    use bytes::Bytes;

    let (dirs, mut daemons, first_addr) = start_cluster(&["FR", "FR", "FR", "DE"]).await;
    let client = crate::connected_client(first_addr.clone(), 4).await;
    client
        .create_bucket("audited", bucket(2, 1, &["FR"]))
        .await
        .unwrap();
    put(&client, "audited", "a", &body(300 * KIB, 1)).await;
    put(&client, "audited", "b", &body(300 * KIB, 2)).await;
    put(&client, "audited", "tiny", b"inline").await;

    let report = client.audit("audited", "").await.unwrap();
    assert_eq!(report.jurisdictions, vec!["FR".to_owned()]);
    assert_eq!(report.summary.objects, 3);
    assert_eq!(report.summary.shards, 6);
    assert!(report.summary.is_clean(), "{:?}", report.summary);
    for object in report.objects.iter().filter(|o| o.key != "tiny") {
        assert_eq!(object.survives, Some(1), "{object:?}");
        for shard in &object.shards {
            assert_eq!(shard.jurisdiction.as_deref(), Some("FR"));
            assert_eq!(shard.present, Some(true));
        }
    }
    let tiny = report.objects.iter().find(|o| o.key == "tiny").unwrap();
    assert_eq!(tiny.survives, None, "inline objects have no shards");
    // A prefix narrows it.
    assert_eq!(
        client.audit("audited", "b").await.unwrap().summary.objects,
        1
    );

    // Plant a violation: shard 0 of `a` copied to the DE node, and `a`'s manifest
    // rewritten (newer record version) to say it is there.
    let de = daemons[3].as_ref().unwrap().net().local_peer_id();
    let manifest = client.object_manifest("audited", "a").await.unwrap();
    let Body::Segments(segments) = &manifest.body else {
        panic!("not segmented")
    };
    let id = segments[0].shard_ids[0];
    let holder = PeerId::from_bytes(manifest.holder(0, 0).unwrap()).unwrap();
    let get = ShardRequest::Get { id };
    let answer = client
        .net()
        .request(holder, Protocol::Shard, get.encode())
        .await
        .unwrap();
    let ShardResponse::Get { data } = decode_shard_response(&get, answer.into()).unwrap() else {
        panic!("the holder does not have the shard")
    };
    let put_shard = ShardRequest::Put { id, data };
    client
        .net()
        .request(de, Protocol::Shard, put_shard.encode())
        .await
        .unwrap();
    let mut moved: Manifest = manifest.clone();
    moved.moves.push(HolderMove {
        from_segment: 0,
        shard_index: 0,
        holder: Bytes::from(de.to_bytes()),
    });
    let key = RecordKey {
        table: Table::Manifest,
        partition: "audited".into(),
        sort: manifest.version_id.as_bytes().to_vec(),
    };
    let peers: Vec<PeerId> = daemons
        .iter()
        .flatten()
        .map(|d| d.net().local_peer_id())
        .collect();
    let current = daemons
        .iter()
        .flatten()
        .filter_map(|d| d.meta().get(&key).unwrap())
        .map(|r| r.version)
        .max()
        .unwrap();
    // Rewritten by the client (a client with the write grant may rewrite its manifests).
    let newer = client.meta().version_after(Some(&current));
    let record = client
        .meta()
        .sign(
            &key,
            Record::live(newer, Bytes::from(moved.encode())),
            Vec::new(),
        )
        .unwrap();
    let apply = MetaRequest::Apply(vec![(key, record)]);
    for &peer in &peers {
        let answer = client
            .net()
            .request(peer, Protocol::Meta, apply.encode())
            .await
            .unwrap();
        assert!(matches!(
            decode_meta_response(&apply, &answer).unwrap(),
            MetaResponse::Apply { .. }
        ));
    }
    let report = client.audit("audited", "").await.unwrap();
    assert_eq!(
        report.summary.shards_outside_policy, 1,
        "{:?}",
        report.summary
    );
    assert!(!report.summary.is_clean());
    let planted = report.objects.iter().find(|o| o.key == "a").unwrap();
    let shard = planted
        .shards
        .iter()
        .find(|s| s.segment == 0 && s.shard == 0)
        .unwrap();
    assert_eq!(shard.holder, de.to_string());
    assert_eq!(shard.jurisdiction.as_deref(), Some("DE"));
    assert!(shard.outside_policy);

    // A holder of `b` stops: `b` survives no failure any more.
    let b = client.object_manifest("audited", "b").await.unwrap();
    let b_holder = PeerId::from_bytes(b.holder(0, 1).unwrap()).unwrap();
    let i = daemons
        .iter()
        .position(|d| {
            d.as_ref()
                .is_some_and(|d| d.net().local_peer_id() == b_holder)
        })
        .unwrap();
    daemons[i].take().unwrap().stop().await.unwrap();
    let degraded = eventually(Duration::from_secs(30), async || {
        let report = client.audit("audited", "b").await.unwrap();
        report.objects[0].survives == Some(0)
            && report.summary.objects_below_m == 1
            && !report.summary.is_clean()
    })
    .await;
    assert!(degraded, "the stopped holder's shard still counted");
    drop(dirs);
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
