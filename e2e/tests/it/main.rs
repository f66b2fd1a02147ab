//! End-to-end tests: node daemons and clients in one process, on loopback.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test data generators truncate integers on purpose"
)]

mod cluster;
mod copy;
mod grants;
mod holder_index;
mod maintenance;
mod multipart;
mod objects;
mod orphans;
mod places;
mod rebalance;
mod repair;
mod roster;
mod signatures;
mod store;

#[path = "../../../node/tests/daemons.rs"]
mod daemons;
use daemons::{client_identity, daemon_config, files_under, listen_addr, passes, start_daemon};

/// A client of the test clusters: a fresh identity certified by the test authority.
fn client_config(
    bootstrap: Vec<andromede_cluster::net::Multiaddr>,
    master: andromede_client::MasterKey,
) -> andromede_client::ClientConfig {
    let (identity, admission) = client_identity();
    andromede_client::ClientConfig::new(bootstrap, identity, admission, master)
}

/// A client of the cluster at `addr`, once it sees `nodes` nodes.
async fn connected_client(
    addr: andromede_cluster::net::Multiaddr,
    nodes: usize,
) -> andromede_client::Client {
    let client = andromede_client::Client::connect(client_config(
        vec![addr],
        andromede_client::MasterKey::generate(),
    ))
    .await
    .unwrap();
    client
        .wait_for_nodes(nodes, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    client
}

/// Whether `worker` of every running daemon ran `more` passes after `before` (one count
/// per running daemon, in order), waiting up to 30 s.
async fn ran_passes(
    daemons: &[Option<andromede_node::daemon::Daemon>],
    worker: &str,
    before: &[u64],
    more: u64,
) -> bool {
    eventually(std::time::Duration::from_secs(30), async || {
        daemons
            .iter()
            .flatten()
            .zip(before)
            .all(|(d, before)| passes(d, worker) >= before + more)
    })
    .await
}

/// Invariant 4: no file under any of `dirs` contains `marker`.
fn assert_no_plaintext(dirs: &[tempfile::TempDir], marker: &[u8]) {
    for dir in dirs {
        for file in files_under(dir.path(), "") {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "plaintext found in {}",
                file.display()
            );
        }
    }
}

/// Polls `check` every 200 ms for up to `within`; true once it holds.
async fn eventually(within: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    check().await
}

/// A client of the cluster at `addr` that keeps replaced versions for one second, once
/// it sees `nodes` nodes.
async fn hasty_client(
    addr: andromede_cluster::net::Multiaddr,
    nodes: usize,
) -> andromede_client::Client {
    let mut config = client_config(vec![addr], andromede_client::MasterKey::generate());
    config.gc_grace = std::time::Duration::from_secs(1);
    let client = andromede_client::Client::connect(config).await.unwrap();
    client
        .wait_for_nodes(nodes, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    client
}

/// Shard files under the test nodes' stores.
fn shard_files(dirs: &[tempfile::TempDir]) -> usize {
    dirs.iter()
        .map(|d| files_under(&d.path().join("store").join("shards"), ".shard").len())
        .sum()
}

/// A garbage record for `version` of `bucket/key`, due at once, written as an admitted
/// client could, straight to every running daemon (no quorum, no checks): what the
/// collectors must refuse when it names something still in use.
async fn apply_forged_garbage(
    client: &andromede_client::Client,
    daemons: &[Option<andromede_node::daemon::Daemon>],
    bucket: &str,
    key: &str,
    version: &andromede_proto::VersionId,
) {
    use andromede_cluster::meta::record::Record;
    use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse, decode_meta_response};
    let garbage_key = andromede_cluster::meta::key::RecordKey {
        table: andromede_cluster::meta::key::Table::Garbage,
        partition: bucket.into(),
        sort: version.as_bytes().to_vec(),
    };
    let record = Record::live(
        client.meta().version_after(None),
        andromede_cluster::meta::values::GarbageEntry {
            due_ms: 0,
            key: key.into(),
            upload: false,
        }
        .encode(),
    );
    // Signed by the client, as any admitted client with the right grant could.
    let signed = client
        .meta()
        .sign(&garbage_key, record, Vec::new())
        .unwrap();
    let forged = (garbage_key, signed);
    for daemon in daemons.iter().flatten() {
        let request = MetaRequest::Apply(vec![forged.clone()]);
        let answer = client
            .net()
            .request(
                daemon.net().local_peer_id(),
                andromede_cluster::net::Protocol::Meta,
                request.encode(),
            )
            .await
            .unwrap();
        assert!(matches!(
            decode_meta_response(&request, &answer).unwrap(),
            MetaResponse::Apply { .. }
        ));
    }
}
