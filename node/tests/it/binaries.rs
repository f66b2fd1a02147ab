//! The two binaries as a user runs them: `andromede-node init/invite/run/status` for two
//! nodes on 127.0.0.1, then the `andromede` command-line client against them (init from a
//! token, mb, ls, put, get, stat, rm, rb), bad arguments and tokens refused without
//! writing anything, a wrong master key reported as such, and a clean stop on SIGTERM.
#![allow(
    clippy::disallowed_methods,
    reason = "a synchronous test driving processes: there is no runtime to block"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const NODE: &str = env!("CARGO_BIN_EXE_andromede-node");

/// The `andromede` client binary, from the workspace's own test build (the CLI crate has
/// integration tests, so `cargo test --workspace` builds it next to this package's
/// binaries): `cargo test --workspace --no-run` once, which has nothing left to do
/// inside a `cargo test --workspace` run and builds it when this package is tested alone.
fn client_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["test", "--workspace", "--no-run", "--quiet"]);
            // Cargo sets these for the running test; build scripts that watch them (ring
            // watches CARGO_MANIFEST_DIR and CARGO_PKG_*) would rerun and relink the very
            // test binaries that are running (one of them respawns itself).
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_CRATE_",
                    "CARGO_BIN_",
                    "CARGO_PRIMARY_",
                    "CARGO_TARGET_TMPDIR",
                    "OUT_DIR",
                ]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                {
                    build.env_remove(name.as_ref());
                }
            }
            let status = build.status().unwrap();
            assert!(status.success(), "building the workspace's tests failed");
            let path = Path::new(NODE).parent().unwrap().join("andromede");
            assert!(path.is_file(), "no {} after the build", path.display());
            path
        })
        .clone()
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("ANDROMEDE_LOG", "error")
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn ok(program: &Path, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(program: &Path, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        !out.status.success(),
        "{} {args:?} should fail",
        program.display()
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A running `andromede-node run`, stopped with SIGTERM when dropped.
struct RunningNode(Child);

impl RunningNode {
    fn start(data: &Path) -> Self {
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let child = Command::new(NODE)
            .args(["run", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        assert!(Command::new("kill").arg(&pid).status().unwrap().success());
        for _ in 0..300 {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the node did not stop within 30 s of SIGTERM");
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `status --json` once the node answers and sees `peers` peers (up to 60 s).
fn status_with_peers(data: &Path, peers: usize) -> serde_json::Value {
    let data = data.to_str().unwrap();
    for _ in 0..600 {
        let out = run(Path::new(NODE), &["status", "--data", data, "--json"]);
        if out.status.success() {
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if status["peers"].as_array().map_or(0, Vec::len) >= peers {
                return status;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(Path::new(data).with_extension("log")).unwrap_or_default();
    panic!("node at {data} never reported {peers} peer(s); its log:\n{log}");
}

#[test]
fn node_and_client_binaries_work_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let node = Path::new(NODE);
    let client = client_binary();
    let d1 = root.path().join("n1");
    let d2 = root.path().join("n2");
    let (s1, s2) = (d1.to_str().unwrap(), d2.to_str().unwrap());
    let listen1 = format!("/ip4/127.0.0.1/tcp/{}", crate::free_port());
    let listen2 = format!("/ip4/127.0.0.1/tcp/{}", crate::free_port());
    let admin1 = format!("127.0.0.1:{}", crate::free_port());
    let admin2 = format!("127.0.0.1:{}", crate::free_port());

    // Bad arguments: a clear error, and nothing written.
    let bad = root.path().join("bad");
    let error = fails(
        node,
        &[
            "init",
            "--data",
            bad.to_str().unwrap(),
            "--capacity",
            "12XB",
        ],
    );
    assert!(
        error.contains("capacity") || error.contains("12XB"),
        "{error}"
    );
    let error = fails(
        node,
        &[
            "init",
            "--data",
            bad.to_str().unwrap(),
            "--admin",
            "10.1.2.3:4180",
        ],
    );
    assert!(error.contains("loopback"), "{error}");
    assert!(!bad.exists() || std::fs::read_dir(&bad).unwrap().next().is_none());

    // First node: a new cluster.
    let out = ok(
        node,
        &[
            "init", "--data", s1, "--listen", &listen1, "--admin", &admin1, "--zone", "a",
        ],
    );
    assert!(out.contains("peer id: 12D3Koo"), "{out}");
    let authority_key = d1.join("authority.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&authority_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the authority key is private");
    }
    assert!(
        !d1.join("cluster.secret").exists(),
        "no shared secret any more"
    );
    // Second node: joins with a token from the authority.
    let invite = |args: &[&str]| {
        let mut all = vec!["invite", "--data", s1];
        all.extend_from_slice(args);
        ok(node, &all).trim().to_owned()
    };
    let node_token = invite(&["--node", "n2", "--zone", "b", "--jurisdiction", "FR"]);
    let client_token = invite(&["--client", "laptop", "--grant", "*:all"]);
    // A client's token does not make a node, a damaged one is refused: nothing written.
    let error = fails(node, &["init", "--data", s2, "--join", &client_token]);
    assert!(error.contains("node was expected"), "{error}");
    let error = fails(node, &["init", "--data", s2, "--join", &node_token[..60]]);
    assert!(error.contains("join token"), "{error}");
    assert!(!d2.join("config.toml").exists());
    ok(
        node,
        &[
            "init",
            "--data",
            s2,
            "--listen",
            &listen2,
            "--admin",
            &admin2,
            "--join",
            &node_token,
        ],
    );
    let n1 = RunningNode::start(&d1);
    let n2 = RunningNode::start(&d2);
    let status = status_with_peers(&d1, 1);
    assert_eq!(status["zone"], "a");
    let status2 = status_with_peers(&d2, 1);
    assert_eq!(status["peers"][0]["peer"], status2["peer"]);
    // The certified place of the invited node, as both see it, and its certificate.
    assert_eq!(status2["jurisdiction"], "FR");
    assert_eq!(status2["certificate"]["name"], "n2");
    assert_eq!(status2["revocations_version"], 0);
    let text = ok(node, &["status", "--data", s2]);
    assert!(text.contains("certified as \"n2\""), "{text}");
    assert_eq!(status["peers"][0]["zone"], "b");
    assert_eq!(status["peers"][0]["jurisdiction"], "FR");

    // The command-line client.
    let config = root.path().join("client.toml");
    let cfg = config.to_str().unwrap();
    let client_init =
        |token: &str, out: &str| run(&client, &["init", "--join", token, "--out", out]);
    let error = String::from_utf8_lossy(&client_init(&node_token, cfg).stderr).into_owned();
    assert!(error.contains("client was expected"), "{error}");
    assert!(!config.exists());
    assert!(client_init(&client_token, cfg).status.success());
    let again = client_init(&client_token, cfg);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("refusing to overwrite"), "{error}");
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", cfg];
        all.extend_from_slice(args);
        ok(&client, &all)
    };
    cli(&["mb", "photos", "--k", "1", "--m", "1"]);
    assert!(cli(&["ls"]).contains("photos"));
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let source = root.path().join("source.bin");
    std::fs::write(&source, &body).unwrap();
    let put = cli(&["put", source.to_str().unwrap(), "photos/2026/a.bin"]);
    assert!(
        put.contains("on 2 node(s): survives 1 node failure(s)"),
        "{put}"
    );
    let back = root.path().join("back.bin");
    cli(&["get", "photos/2026/a.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), body);
    let stat = cli(&["stat", "photos/2026/a.bin"]);
    assert!(stat.contains("3000000 bytes"), "{stat}");
    assert!(stat.contains("2 node(s)"), "{stat}");
    let listing = cli(&["ls", "photos/2026/"]);
    assert!(listing.contains("2026/a.bin"), "{listing}");
    // Where it lives: both holders, with their certified places; a clean audit exits 0.
    let audit = cli(&["audit", "photos/2026/"]);
    assert!(audit.contains("2026/a.bin"), "{audit}");
    assert!(audit.contains("FR/b") && audit.contains("/a "), "{audit}");
    assert!(audit.contains("clean"), "{audit}");
    let json: serde_json::Value =
        serde_json::from_str(&cli(&["audit", "photos", "--json"])).unwrap();
    assert_eq!(json["summary"]["objects"], 1);
    assert_eq!(json["summary"]["shards_outside_policy"], 0);
    let error = fails(&client, &["--config", cfg, "audit", "nothere"]);
    assert!(error.contains("nothere"), "{error}");

    // Another tenant's master key cannot read it.
    let other = root.path().join("other.toml");
    let other_token = invite(&["--client", "other-tenant", "--grant", "*:all"]);
    assert!(
        client_init(&other_token, other.to_str().unwrap())
            .status
            .success()
    );
    let error = fails(
        &client,
        &[
            "--config",
            other.to_str().unwrap(),
            "get",
            "photos/2026/a.bin",
            "-",
        ],
    );
    assert!(error.contains("master key"), "{error}");

    // Grants: a client is certified for what it may do; a reader cannot write.
    let error = fails(node, &["invite", "--data", s1, "--client", "nogrant"]);
    assert!(error.contains("needs at least one --grant"), "{error}");
    let error = fails(
        node,
        &[
            "invite",
            "--data",
            s1,
            "--client",
            "bad",
            "--grant",
            "photos:admin",
        ],
    );
    assert!(error.contains("unknown right"), "{error}");
    let reader_token = invite(&["--client", "reader", "--grant", "photos:read"]);
    let reader = root.path().join("reader.toml");
    assert!(
        run(
            &client,
            &[
                "init",
                "--join",
                &reader_token,
                "--out",
                reader.to_str().unwrap(),
                "--master-key",
                &format!("{cfg}.master.key"),
            ],
        )
        .status
        .success()
    );
    let rcfg = reader.to_str().unwrap();
    let copy = root.path().join("reader-copy.bin");
    ok(
        &client,
        &[
            "--config",
            rcfg,
            "get",
            "photos/2026/a.bin",
            copy.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&copy).unwrap(), body);
    let error = fails(
        &client,
        &[
            "--config",
            rcfg,
            "put",
            source.to_str().unwrap(),
            "photos/2026/b.bin",
        ],
    );
    assert!(
        error.contains("this client may not write bucket photos"),
        "{error}"
    );
    assert!(!cli(&["ls", "photos/2026/"]).contains("b.bin"));

    // Errors that name the problem.
    let error = fails(&client, &["--config", cfg, "get", "nothere/x", "-"]);
    assert!(error.contains("nothere"), "{error}");
    let error = fails(&client, &["--config", cfg, "rb", "photos"]);
    assert!(error.contains("not empty"), "{error}");
    cli(&["rm", "photos/2026/a.bin"]);
    let error = fails(&client, &["--config", cfg, "get", "photos/2026/a.bin", "-"]);
    assert!(error.contains("2026/a.bin"), "{error}");
    cli(&["rb", "photos"]);
    assert!(!cli(&["ls"]).contains("photos"));

    // Retiring node 2: drain follows the hand-over and says when it is safe to stop.
    let error = fails(node, &["drain", "--data", s2, "--timeout-secs", "soon"]);
    assert!(error.contains("invalid value"), "{error}");
    let drained = ok(node, &["drain", "--data", s2, "--timeout-secs", "120"]);
    assert!(drained.contains("safe to stop"), "{drained}");
    let status: serde_json::Value =
        serde_json::from_str(&ok(node, &["status", "--data", s2, "--json"])).unwrap();
    assert_eq!(status["draining"], true);
    let text = ok(node, &["status", "--data", s1]);
    assert!(text.contains("roster: 2 member(s), 2 reachable"), "{text}");

    // Then retired where the authority key is (a client cannot be): it leaves the
    // roster of node 1, which is a cluster of one again and says so.
    let error = fails(node, &["retire", "--data", s1, "laptop"]);
    assert!(error.contains("is a client, not a node"), "{error}");
    let retired = ok(node, &["retire", "--data", s1, "n2"]);
    assert!(retired.contains("retired"), "{retired}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&ok(node, &["status", "--data", s1, "--json"])).unwrap();
        if status["roster_members"] == 1 && status["minority"].is_null() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 1 still counts the retired node: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // SIGTERM stops both cleanly.
    assert!(n2.terminate().success());
    assert!(n1.terminate().success());
}
