//! Helpers for tests that run node daemons in the test process, on loopback: shared by
//! the node's own integration tests and by `andromede-e2e` (which includes this file by
//! path), so that both start daemons the same way.
#![allow(dead_code, reason = "each test binary uses its own subset")]

/// The files under `dir` (recursively) whose names end with `suffix`; none if `dir` is
/// missing (or vanishes while listed).
pub(crate) fn files_under(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out
}

/// The authority of every cluster a test binary starts (tests' clusters are kept apart
/// by their addresses; certificates of one authority admit peers to any of them).
pub(crate) fn test_authority() -> &'static andromede_cluster::authority::Authority {
    static AUTHORITY: std::sync::OnceLock<andromede_cluster::authority::Authority> =
        std::sync::OnceLock::new();
    AUTHORITY.get_or_init(andromede_cluster::authority::Authority::generate)
}

/// Certifies the node whose data is in `dir` (creating its identity if needed) with
/// `zone` and `jurisdiction`, unless it already has a certificate.
pub(crate) fn certify_node(dir: &std::path::Path, zone: &str, jurisdiction: &str) {
    let data = andromede_node::data_dir::DataDir::new(dir);
    if data.certificate().exists() {
        return;
    }
    std::fs::create_dir_all(dir).unwrap();
    let identity = andromede_cluster::net::load_or_create_identity(&data.identity_key()).unwrap();
    let spec = andromede_cluster::authority::CertificateSpec::new(
        identity.public().to_peer_id(),
        andromede_cluster::authority::PeerRole::Node,
        "test-node",
        std::time::Duration::from_secs(86_400),
    )
    .placed(zone, jurisdiction);
    test_authority()
        .certify(spec)
        .unwrap()
        .write_file(&data.certificate())
        .unwrap();
}

/// A fresh identity certified as a client by [`test_authority`].
pub(crate) fn client_identity() -> (
    andromede_cluster::net::Keypair,
    andromede_cluster::net::Admission,
) {
    client_identity_granted(&["*:all"])
}

/// A client identity certified by the test authority with `grants` (`BUCKET:RIGHTS`).
pub(crate) fn client_identity_granted(
    grants: &[&str],
) -> (
    andromede_cluster::net::Keypair,
    andromede_cluster::net::Admission,
) {
    let key = andromede_cluster::net::Keypair::generate_ed25519();
    let spec = andromede_cluster::authority::CertificateSpec::new(
        key.public().to_peer_id(),
        andromede_cluster::authority::PeerRole::Client,
        "test-client",
        std::time::Duration::from_secs(86_400),
    )
    .granted(grants.iter().map(|g| g.parse().unwrap()).collect());
    let admission = andromede_cluster::net::Admission::issued(test_authority(), spec).unwrap();
    (key, admission)
}

/// A node daemon on an ephemeral loopback port, with its data in `dir`.
pub(crate) async fn start_daemon(dir: &std::path::Path) -> andromede_node::daemon::Daemon {
    andromede_node::daemon::Daemon::start(daemon_config(dir, Vec::new(), "FR"))
        .await
        .unwrap()
}

/// A node's config: data in `dir`, an ephemeral loopback port, joining through
/// `bootstrap`, certified in `jurisdiction` with its zone named after its directory
/// (unless `dir` already holds a certificate).
pub(crate) fn daemon_config(
    dir: &std::path::Path,
    bootstrap: Vec<andromede_cluster::net::Multiaddr>,
    jurisdiction: &str,
) -> andromede_node::daemon::DaemonConfig {
    certify_node(dir, &dir.display().to_string(), jurisdiction);
    andromede_node::daemon::DaemonConfig {
        data: andromede_node::data_dir::DataDir::new(dir),
        capacity_bytes: 1 << 30,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap,
        scrub: andromede_node::workers::scrub::ScrubConfig::default(),
        anti_entropy: andromede_node::workers::anti_entropy::AntiEntropyConfig {
            interval: std::time::Duration::from_secs(2),
        },
        gc: andromede_node::workers::gc::GcConfig {
            interval: std::time::Duration::from_secs(1),
        },
        down_after: std::time::Duration::from_secs(3),
        // Long: uploads in these tests must never see their shards collected mid-way.
        orphans: andromede_node::workers::orphans::OrphanConfig::default(),
        repair: andromede_node::workers::repair::RepairConfig {
            tick: std::time::Duration::from_millis(500),
            sweep_interval: std::time::Duration::from_secs(3),
            ..Default::default()
        },
        authority: test_authority().public(),
        admin: None,
        // Test speed: views refresh every second (the default is 5 s).
        membership: andromede_cluster::MembershipConfig {
            refresh_every: std::time::Duration::from_secs(1),
            info_timeout: std::time::Duration::from_secs(2),
        },
        meta_request_timeout: std::time::Duration::from_secs(5),
        shard_request_timeout: std::time::Duration::from_secs(10),
        min_parity: 1,
    }
}

/// The daemon's listen address, once it has one (polled for up to 4 s).
pub(crate) async fn listen_addr(
    daemon: &andromede_node::daemon::Daemon,
) -> andromede_cluster::net::Multiaddr {
    for _ in 0..200 {
        if let Some(addr) = daemon
            .net()
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .next()
        {
            return addr;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("node never listened");
}

/// Passes `worker` of `daemon` has finished (see `Daemon::worker_statuses`): tests that
/// check that nothing happened first wait for the worker to have run.
pub(crate) fn passes(daemon: &andromede_node::daemon::Daemon, worker: &str) -> u64 {
    daemon
        .worker_statuses()
        .iter()
        .find(|s| s.name == worker)
        .map_or(0, |s| s.passes)
}
