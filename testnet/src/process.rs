//! Node processes: where the `andromede-node` binary is, starting it, signalling it, and
//! telling whether a pid still runs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use andromede_cluster::faults::PLANTED_BUG_ENV;
use anyhow::{Context, anyhow};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The `andromede-node` binary: `explicit` if given, else `$ANDROMEDE_NODE_BIN`, else the
/// one next to this program (cargo builds both into the same directory).
///
/// # Errors
/// When none exists, saying how to build it.
pub fn node_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os("ANDROMEDE_NODE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating this program")?;
    // Next to this binary, or one level up when this is a test binary in `deps/`.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("andromede-node");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(anyhow!(
        "no andromede-node binary next to {}: build it with `cargo build -p andromede-node --features fault-injection` (or pass --node-bin / set ANDROMEDE_NODE_BIN)",
        exe.display()
    ))
}

/// Builds the workspace's tests (`cargo test --workspace --no-run`: inside a
/// `cargo test --workspace` run it has nothing left to do) and returns the node binary
/// that build made. For test binaries that start node processes: the binary is then the
/// one of this very source tree, never a stale one.
///
/// Cargo's per-test variables are removed from the build's environment: build scripts
/// that watch them (ring watches `CARGO_MANIFEST_DIR` and `CARGO_PKG_*`) would rerun and
/// relink the test binaries that are running.
///
/// # Errors
/// The build fails, or leaves no node binary.
pub fn build_workspace_node() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["test", "--workspace", "--no-run", "--quiet"]);
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
    let status = build.status().context("running cargo")?;
    if !status.success() {
        anyhow::bail!("building the workspace's tests failed");
    }
    node_binary(None)
}

/// A node's data directory as the node binary lays it out (README, "Configuration"):
/// the testnet reads and edits these files as an operator would.
pub mod data_files {
    /// The configuration file `andromede-node init` writes.
    pub const CONFIG: &str = "config.toml";
    /// The cluster authority's key, in the directory of the node that created the cluster.
    pub const AUTHORITY_KEY: &str = "authority.key";
    /// The shard store.
    pub const STORE: &str = "store";
    /// The metadata replica's records.
    pub const META: &str = "meta";
}

/// What `andromede-node init` is given for one node of a testnet.
#[derive(Debug, Clone)]
pub struct NodeInit<'a> {
    /// Its listen multiaddr.
    pub listen: &'a str,
    /// Its admin endpoint.
    pub admin: std::net::SocketAddr,
    /// Members it joins through.
    pub bootstrap: Vec<String>,
    /// Its capacity, as the config writes it (`100GiB`).
    pub capacity: &'a str,
    /// How it comes in: a new cluster's first node, or a join token from [`invite`].
    pub joining: Joining<'a>,
    /// Further `config.toml` settings (name, value as written in the file), such as
    /// short intervals for tests.
    pub settings: Vec<(&'static str, toml::Value)>,
}

/// How a testnet node comes into its cluster.
#[derive(Debug, Clone)]
pub enum Joining<'a> {
    /// It creates the cluster (and its authority key), certified with this place.
    NewCluster {
        /// Its certified name.
        name: &'a str,
        /// Its certified zone.
        zone: &'a str,
        /// Its certified jurisdiction.
        jurisdiction: &'a str,
    },
    /// It joins with this token.
    Token(String),
}

/// Who `invite` certifies.
#[derive(Debug, Clone, Copy)]
pub enum Invitee<'a> {
    /// A node in a zone and a jurisdiction.
    Node {
        /// Its failure domain.
        zone: &'a str,
        /// Its legal jurisdiction.
        jurisdiction: &'a str,
    },
    /// A client with these grants (`BUCKET:RIGHTS`).
    Client {
        /// What it may do.
        grants: &'a [&'a str],
    },
}

/// Runs `andromede-node invite --data AUTHORITY_DIR` for `who` named `name`, and
/// returns the token.
///
/// # Errors
/// When the command fails (its output is in the message).
pub fn invite(
    binary: &Path,
    authority_dir: &Path,
    name: &str,
    who: Invitee<'_>,
) -> anyhow::Result<String> {
    let mut command = Command::new(binary);
    command.arg("invite").arg("--data").arg(authority_dir);
    match who {
        Invitee::Node { zone, jurisdiction } => command
            .args(["--node", name])
            .args(["--zone", zone])
            .args(["--jurisdiction", jurisdiction]),
        Invitee::Client { grants } => {
            command.args(["--client", name]);
            for grant in grants {
                command.args(["--grant", grant]);
            }
            &mut command
        }
    };
    run_to_end(
        command,
        &format!("andromede-node invite --data {}", authority_dir.display()),
    )
}

/// Runs `command` (`what` names it in errors) to its end and returns its standard output,
/// trimmed.
///
/// # Errors
/// When it cannot start or fails; its output is in the message.
pub fn run_to_end(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{what}`"))?;
    if !output.status.success() {
        return Err(anyhow!(
            "`{what}` failed: {}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Initialises `dir` with `andromede-node init`, then writes `init.settings` into its
/// `config.toml`, as an operator edits the file before the first start.
///
/// # Errors
/// When init fails (its output is in the message) or the config cannot be edited.
pub fn init_node(binary: &Path, dir: &Path, init: &NodeInit<'_>) -> anyhow::Result<()> {
    let mut command = Command::new(binary);
    command
        .arg("init")
        .arg("--data")
        .arg(dir)
        .args(["--listen", init.listen])
        .args(["--admin", &init.admin.to_string()])
        .args(["--capacity", init.capacity]);
    for peer in &init.bootstrap {
        command.args(["--bootstrap", peer]);
    }
    match &init.joining {
        Joining::NewCluster {
            name,
            zone,
            jurisdiction,
        } => command
            .args(["--name", name])
            .args(["--zone", zone])
            .args(["--jurisdiction", jurisdiction]),
        Joining::Token(token) => command.args(["--join", token]),
    };
    run_to_end(
        command,
        &format!("andromede-node init --data {}", dir.display()),
    )?;
    let path = dir.join(data_files::CONFIG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    for (name, value) in &init.settings {
        config.insert((*name).to_owned(), value.clone());
    }
    std::fs::write(&path, config.to_string()).with_context(|| format!("writing {}", path.display()))
}

/// Starts `andromede-node run --data DIR` in its own process group (so a terminal's Ctrl-C
/// does not reach it and it outlives `up`), its log in `DIR/node.log`, with `planted_bug`
/// (or none, whatever this process's environment says) in `ANDROMEDE_PLANTED_BUG`.
///
/// # Errors
/// When the log cannot be opened or the process cannot start.
pub fn spawn_node(binary: &Path, dir: &Path, planted_bug: Option<&str>) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .with_context(|| format!("opening {}/node.log", dir.display()))?;
    Command::new(binary)
        .args(["run", "--data"])
        .arg(dir)
        .env(
            "RUST_LOG",
            std::env::var("ANDROMEDE_TESTNET_NODE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env(PLANTED_BUG_ENV, planted_bug.unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

fn pid(raw: u32) -> anyhow::Result<Pid> {
    i32::try_from(raw)
        .map(Pid::from_raw)
        .map_err(|_| anyhow!("pid {raw} out of range"))
}

/// Whether `raw` is a running (not zombie) process.
pub fn running(raw: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{raw}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Sends `signal` to process `raw` (nothing if it is gone).
///
/// # Errors
/// When the signal cannot be sent to a process that exists.
pub fn signal(raw: u32, signal: Signal) -> anyhow::Result<()> {
    match kill(pid(raw)?, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(error) => Err(anyhow!("signalling process {raw}: {error}")),
    }
}

/// Waits up to `timeout` for process `raw` to end, reaping it through `child` when this
/// process started it. Returns whether it ended.
pub fn wait_gone(raw: u32, child: Option<&mut Child>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut child = child;
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Ok(Some(_)) = child.try_wait()
        {
            return true;
        }
        if !running(raw) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Peak resident set of a process (VmHWM), in bytes.
pub fn peak_rss(raw: u32) -> Option<u64> {
    proc_status_kib(raw, "VmHWM:").map(|kib| kib * 1024)
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(raw: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{raw}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports in clock ticks, 100 per second on every platform we run on.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn proc_status_kib(raw: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{raw}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
