//! The S3-like client API against six real node daemons on 127.0.0.1 (real TCP, sled and
//! shard files): discovery through one bootstrap node, round trips of every interesting
//! size under RS(4,2) and RS(2,1), listings over 1000+ keys, reads through other nodes'
//! replicas, node losses, jurisdiction policies, a client of another authority, and no plaintext
//! on any node's disk.

use std::time::Duration;

use andromede_client::{
    BucketOptions, Client, ClientConfig, ClientError, ErasureParams, ListOptions, MasterKey,
    PutObjectOptions,
};
use andromede_cluster::net::Multiaddr;
use andromede_node::daemon::Daemon;
use futures::StreamExt;

use crate::{assert_no_plaintext, daemon_config, listen_addr};

const MARKER: &[u8] = b"PLAINTEXT-MARKER-OBJECTS-51c2";
const MIB: usize = 1 << 20;

/// `n` nodes, each told only of the first; node `i` is in `jurisdictions[i]`.
pub(crate) async fn start_cluster(
    jurisdictions: &[&str],
) -> (Vec<tempfile::TempDir>, Vec<Option<Daemon>>, Multiaddr) {
    let dirs: Vec<tempfile::TempDir> = jurisdictions
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let first = Daemon::start(daemon_config(dirs[0].path(), Vec::new(), jurisdictions[0]))
        .await
        .unwrap();
    let first_addr = listen_addr(&first).await;
    let mut daemons = vec![Some(first)];
    for (dir, jurisdiction) in dirs.iter().zip(jurisdictions).skip(1) {
        let config = daemon_config(dir.path(), vec![first_addr.clone()], jurisdiction);
        daemons.push(Some(Daemon::start(config).await.unwrap()));
    }
    (dirs, daemons, first_addr)
}

pub(crate) async fn connect(addr: Multiaddr, master: MasterKey) -> Client {
    Client::connect(crate::client_config(vec![addr], master))
        .await
        .unwrap()
}

/// A bucket coded RS(k, m), its shards kept in `jurisdictions` (any when empty).
pub(crate) fn bucket(k: u32, m: u32, jurisdictions: &[&str]) -> BucketOptions {
    BucketOptions {
        params: ErasureParams::new(k, m).unwrap(),
        jurisdictions: jurisdictions.iter().map(ToString::to_string).collect(),
    }
}

/// Bytes that carry the plaintext marker and differ at every position.
pub(crate) fn body(len: usize, seed: u8) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut i: u32 = u32::from(seed);
    while out.len() < len {
        out.extend_from_slice(MARKER);
        out.extend_from_slice(&i.to_le_bytes());
        i = i.wrapping_mul(2_654_435_761).wrapping_add(1);
    }
    out.truncate(len);
    out
}

pub(crate) async fn put(client: &Client, bucket: &str, key: &str, data: &[u8]) {
    client
        .put_object(
            bucket,
            key,
            data,
            PutObjectOptions {
                size_hint: Some(data.len() as u64),
                ..PutObjectOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key} ({} bytes): {e}", data.len()));
}

pub(crate) async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object_bytes(bucket, key)
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e}"))
}

/// Every key of `bucket` under `prefix`, following continuation tokens in pages of
/// `max_keys`; also counts the pages.
async fn list_all(
    client: &Client,
    bucket: &str,
    prefix: &str,
    max_keys: usize,
) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut pages = 0;
    let mut options = ListOptions {
        prefix: prefix.into(),
        max_keys,
        ..ListOptions::default()
    };
    loop {
        let page = client.list_objects(bucket, &options).await.unwrap();
        pages += 1;
        assert!(page.objects.len() <= max_keys);
        keys.extend(page.objects.into_iter().map(|o| o.key));
        if !page.is_truncated {
            return (keys, pages);
        }
        options.continuation_token = page.next_continuation_token;
        assert!(options.continuation_token.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_node_cluster_serves_the_s3_like_api() {
    let (dirs, mut daemons, first_addr) =
        start_cluster(&["FR", "FR", "FR", "DE", "US", "US"]).await;

    // Discovery: every node, told only of the first, comes to route to all the others.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for daemon in daemons.iter().flatten() {
        loop {
            let routed = daemon.net().routed_peers().await.unwrap().len();
            if routed == 5 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a node routes to {routed} of 5 peers"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let master = MasterKey::generate();
    let client = connect(first_addr.clone(), master.clone()).await;
    client
        .wait_for_nodes(6, Duration::from_secs(30))
        .await
        .unwrap();
    let other_addr = listen_addr(daemons[3].as_ref().unwrap()).await;
    let other = connect(other_addr, master.clone()).await;
    other
        .wait_for_nodes(6, Duration::from_secs(30))
        .await
        .unwrap();

    // Buckets.
    client
        .create_bucket("rs42", bucket(4, 2, &[]))
        .await
        .unwrap();
    client
        .create_bucket("rs21", bucket(2, 1, &[]))
        .await
        .unwrap();
    assert!(matches!(
        client.create_bucket("rs42", bucket(4, 2, &[])).await,
        Err(ClientError::BucketExists { .. })
    ));
    let names: Vec<String> = other
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["rs21", "rs42"]);
    assert_eq!(other.head_bucket("rs42").await.unwrap().params.k(), 4);

    // Round trips, read back through the other client (another node's view).
    let seg = 8 * MIB;
    let sizes = [
        0,
        1,
        16 * 1024 - 1,
        16 * 1024,
        16 * 1024 + 1,
        seg - 1,
        seg,
        seg + 1,
        100 * MIB,
    ];
    for bucket in ["rs42", "rs21"] {
        for (i, &size) in sizes.iter().enumerate() {
            let data = body(size, i as u8);
            let key = format!("size/{size}");
            put(&client, bucket, &key, &data).await;
            let back = get(&other, bucket, &key).await;
            assert!(back == data, "{bucket}/{key}: {} bytes back", back.len());
            let head = other.head_object(bucket, &key).await.unwrap();
            assert_eq!(head.size, size as u64);
        }
    }
    // A byte range that straddles a segment boundary.
    let object = other
        .get_object(
            "rs42",
            &format!("size/{}", seg + 1),
            Some(seg as u64 - 10..seg as u64 + 1),
        )
        .await
        .unwrap();
    let chunks: Vec<_> = object.body.collect().await;
    let range: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
    assert_eq!(range, body(seg + 1, 7)[seg - 10..seg + 1]);

    // Overwrite and delete are seen through the other client.
    put(&client, "rs21", "size/1", b"overwritten").await;
    assert_eq!(get(&other, "rs21", "size/1").await, b"overwritten");
    client.delete_object("rs21", "size/1").await.unwrap();
    assert!(matches!(
        other.get_object("rs21", "size/1", None).await,
        Err(ClientError::NoSuchKey { .. })
    ));
    client
        .copy_object("rs42", "size/16385", "rs21", "copied")
        .await
        .unwrap();
    assert_eq!(get(&other, "rs21", "copied").await, body(16 * 1024 + 1, 4));

    // Listings over 1000+ keys: pagination, prefixes, delimiters.
    client
        .create_bucket("many", bucket(2, 1, &[]))
        .await
        .unwrap();
    let mut expected: Vec<String> = (0..1050)
        .map(|i| format!("dir{}/file{i:04}", i % 3))
        .chain(["top-a".to_string(), "top-b".to_string()])
        .collect();
    expected.sort();
    futures::stream::iter(expected.clone())
        .for_each_concurrent(8, |key| {
            let client = client.clone();
            async move { put(&client, "many", &key, key.as_bytes()).await }
        })
        .await;
    let (all, pages) = list_all(&other, "many", "", 100).await;
    assert_eq!(all, expected);
    assert_eq!(pages, 11);
    let (dir1, _) = list_all(&other, "many", "dir1/", 1000).await;
    assert_eq!(dir1.len(), 350);
    assert!(dir1.iter().all(|k| k.starts_with("dir1/")));
    let rolled = other
        .list_objects(
            "many",
            &ListOptions {
                delimiter: Some("/".into()),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rolled.common_prefixes, ["dir0/", "dir1/", "dir2/"]);
    let top: Vec<&str> = rolled.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(top, ["top-a", "top-b"]);
    let after = other
        .list_objects(
            "many",
            &ListOptions {
                start_after: Some("dir2/file1049".into()),
                max_keys: 5,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = after.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["top-a", "top-b"]);
    assert!(!after.is_truncated);
    assert!(matches!(
        client.delete_bucket("many").await,
        Err(ClientError::BucketNotEmpty { .. })
    ));

    // Jurisdictions: an FR bucket's shards stay on the FR nodes (0, 1, 2); a DE bucket
    // cannot spread over the single DE node and says so.
    client
        .create_bucket("fr-only", bucket(2, 1, &["FR"]))
        .await
        .unwrap();
    let before: Vec<u64> = daemons
        .iter()
        .flatten()
        .map(|d| d.store().usage().shard_count)
        .collect();
    put(&client, "fr-only", "k", &body(3 * MIB, 9)).await;
    let after: Vec<u64> = daemons
        .iter()
        .flatten()
        .map(|d| d.store().usage().shard_count)
        .collect();
    for i in 0..6 {
        if i < 3 {
            assert!(after[i] > before[i], "FR node {i} got no shard");
        } else {
            assert_eq!(after[i], before[i], "non-FR node {i} got a shard");
        }
    }
    client
        .create_bucket("de-only", bucket(2, 1, &["DE"]))
        .await
        .unwrap();
    let refused = client
        .put_object(
            "de-only",
            "k",
            &b"x".repeat(100_000)[..],
            PutObjectOptions::default(),
        )
        .await;
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("too few peers") && message.contains("DE"),
        "{message}"
    );

    // A client certified by another authority cannot connect.
    let stranger = andromede_cluster::authority::Authority::generate();
    let identity = andromede_cluster::net::Keypair::generate_ed25519();
    let spec = andromede_cluster::authority::CertificateSpec::new(
        identity.public().to_peer_id(),
        andromede_cluster::authority::PeerRole::Client,
        "stranger",
        Duration::from_secs(3600),
    );
    let admission = andromede_cluster::net::Admission::issued(&stranger, spec).unwrap();
    let wrong = ClientConfig::new(
        vec![first_addr.clone()],
        identity,
        admission,
        master.clone(),
    );
    let error = Client::connect(wrong).await.unwrap_err();
    assert!(error.to_string().contains("not admitted"), "{error}");

    // Reads survive m = 2 stopped nodes (every rs42 object with segments loses 2 of its 6
    // shards); a PUT survives them too. Metadata stays readable even when both are
    // replicas of a partition: reads merge every live replica of the shifted set.
    for i in [4, 5] {
        daemons[i].take().unwrap().stop().await.unwrap();
    }
    for (i, &size) in sizes.iter().enumerate() {
        let key = format!("size/{size}");
        let back = other
            .get_object_bytes("rs42", &key)
            .await
            .unwrap_or_else(|e| panic!("rs42/{key} unreadable with m nodes down: {e}"));
        assert!(
            back == body(size, i as u8),
            "rs42/{key} read back wrong bytes"
        );
    }
    put(&client, "rs42", "after-loss", &body(9 * MIB, 3)).await;
    assert_eq!(get(&other, "rs42", "after-loss").await, body(9 * MIB, 3));

    // Invariant 4: no plaintext under any node's data directory.
    assert_no_plaintext(&dirs, MARKER);
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
