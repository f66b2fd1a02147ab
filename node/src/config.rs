//! A node's configuration file, `DIR/config.toml`: written by `andromede-node init`,
//! read by `run` and `status`. It is parsed once, at load, into typed values (addresses,
//! byte sizes, durations); every value is then checked against its allowed range, with an
//! error that names the field and says what to write instead. Unknown fields are refused
//! (a typo must not be silently ignored).
//!
//! The timings that decide how fast a cluster reacts (membership refresh, request
//! timeouts, worker intervals) are settings too, so that tests can run a cluster at test
//! speed with the same code as production.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use andromede_cluster::MembershipConfig;
use andromede_cluster::authority::AuthorityKey;
use andromede_cluster::net::Multiaddr;
use andromede_cluster::units::{format_duration, format_size, serde_duration, serde_size};
use serde::{Deserialize, Serialize};

use crate::daemon::DaemonConfig;
use crate::data_dir::DataDir;
use crate::workers::anti_entropy::AntiEntropyConfig;
use crate::workers::gc::GcConfig;
use crate::workers::orphans::OrphanConfig;
use crate::workers::repair::RepairConfig;
use crate::workers::scrub::ScrubConfig;

/// Default listen address of the first node on a machine.
pub const LISTEN_DEFAULT: &str = "/ip4/127.0.0.1/tcp/4100";
/// Default admin endpoint (loopback only).
pub const ADMIN_DEFAULT: &str = "127.0.0.1:4180";

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const PIB: u64 = 1 << 50;
const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// The persisted configuration, as typed values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The cluster's identity: its authority's public key. Certificates it signed admit
    /// peers; the node's own zone and jurisdiction are those of its certificate.
    pub authority: AuthorityKey,
    /// Multiaddrs to listen on.
    #[serde(with = "multiaddrs")]
    pub listen: Vec<Multiaddr>,
    /// Multiaddrs of members to join through.
    #[serde(default, with = "multiaddrs")]
    pub bootstrap: Vec<Multiaddr>,
    /// Most bytes of shards kept, e.g. `500GiB`.
    #[serde(with = "serde_size")]
    pub capacity: u64,
    /// Admin endpoint, loopback only, e.g. `127.0.0.1:4180`.
    pub admin: SocketAddr,
    /// Most bytes per second the background scrubber re-hashes.
    #[serde(default = "scrub_rate_default", with = "serde_size")]
    pub scrub_rate: u64,
    /// Pause between scrub passes.
    #[serde(default = "scrub_interval_default", with = "serde_duration")]
    pub scrub_interval: Duration,
    /// Pause between anti-entropy passes over the metadata this node replicates.
    #[serde(default = "anti_entropy_interval_default", with = "serde_duration")]
    pub anti_entropy_interval: Duration,
    /// Pause between garbage-collection passes.
    #[serde(default = "gc_interval_default", with = "serde_duration")]
    pub gc_interval: Duration,
    /// A peer unreachable this long is down: no new shards go to it and its shards are
    /// rebuilt elsewhere. Long enough that a reboot does not start a repair.
    #[serde(default = "down_after_default", with = "serde_duration")]
    pub down_after: Duration,
    /// Pause between sweeps that check every version this node repairs with its holders.
    #[serde(default = "repair_sweep_interval_default", with = "serde_duration")]
    pub repair_sweep_interval: Duration,
    /// Most bytes per second of rebuilt shards, so clients keep their share.
    #[serde(default = "repair_rate_default", with = "serde_size")]
    pub repair_rate: u64,
    /// Most shard bytes one sweep moves toward the nodes that joined (0: never move
    /// healthy shards for balance; drains and doubled-up shards still move).
    #[serde(default = "rebalance_per_sweep_default", with = "serde_size")]
    pub rebalance_per_sweep: u64,
    /// Age a shard no manifest references must reach before it is deleted (longer than
    /// any upload takes).
    #[serde(default = "orphan_grace_default", with = "serde_duration")]
    pub orphan_grace: Duration,
    /// Pause between passes that look for such shards.
    #[serde(default = "orphan_interval_default", with = "serde_duration")]
    pub orphan_interval: Duration,
    /// Pause between refreshes of the node's view of the cluster (who is there, who
    /// answers, who is catching up).
    #[serde(default = "membership_refresh_default", with = "serde_duration")]
    pub membership_refresh: Duration,
    /// Time a peer has to answer a request for its node information.
    #[serde(default = "info_timeout_default", with = "serde_duration")]
    pub info_timeout: Duration,
    /// Time a metadata replica has to answer a request.
    #[serde(default = "meta_request_timeout_default", with = "serde_duration")]
    pub meta_request_timeout: Duration,
    /// Time a holder has to answer a shard request (a shard is up to 64 MiB).
    #[serde(default = "shard_request_timeout_default", with = "serde_duration")]
    pub shard_request_timeout: Duration,
    /// The cluster's minimum redundancy: parity shards (`m`, the node failures an object
    /// survives) a bucket's policy keeps at least. This node, as a metadata replica,
    /// refuses a bucket record below it. Set the same on every node.
    #[serde(default = "min_parity_default")]
    pub min_parity: u8,
}

fn min_parity_default() -> u8 {
    1
}

fn orphan_grace_default() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn orphan_interval_default() -> Duration {
    Duration::from_secs(3600)
}

fn down_after_default() -> Duration {
    Duration::from_secs(60)
}

fn repair_sweep_interval_default() -> Duration {
    Duration::from_secs(3600)
}

fn repair_rate_default() -> u64 {
    256 * MIB
}

fn rebalance_per_sweep_default() -> u64 {
    4 * GIB
}

fn anti_entropy_interval_default() -> Duration {
    Duration::from_secs(600)
}

fn gc_interval_default() -> Duration {
    Duration::from_secs(60)
}

fn scrub_rate_default() -> u64 {
    32 * MIB
}

fn scrub_interval_default() -> Duration {
    DAY
}

fn membership_refresh_default() -> Duration {
    MembershipConfig::default().refresh_every
}

fn info_timeout_default() -> Duration {
    MembershipConfig::default().info_timeout
}

fn meta_request_timeout_default() -> Duration {
    Duration::from_secs(10)
}

fn shard_request_timeout_default() -> Duration {
    Duration::from_secs(30)
}

impl NodeConfig {
    /// Defaults for a node of the cluster whose authority is `authority`.
    pub fn new(authority: AuthorityKey) -> Self {
        Self {
            authority,
            listen: vec![
                LISTEN_DEFAULT
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            capacity: 10 * GIB,
            admin: SocketAddr::from(([127, 0, 0, 1], 4180)),
            scrub_rate: scrub_rate_default(),
            scrub_interval: scrub_interval_default(),
            anti_entropy_interval: anti_entropy_interval_default(),
            gc_interval: gc_interval_default(),
            down_after: down_after_default(),
            repair_sweep_interval: repair_sweep_interval_default(),
            repair_rate: repair_rate_default(),
            rebalance_per_sweep: rebalance_per_sweep_default(),
            orphan_grace: orphan_grace_default(),
            orphan_interval: orphan_interval_default(),
            membership_refresh: membership_refresh_default(),
            info_timeout: info_timeout_default(),
            meta_request_timeout: meta_request_timeout_default(),
            shard_request_timeout: shard_request_timeout_default(),
            min_parity: min_parity_default(),
        }
    }
}

/// Why a config cannot be used. Each message names the file and the field and says what
/// to write instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown field, or a value that does not parse.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, which names the field.
        message: String,
    },
    /// A value outside its allowed range.
    #[error("{path}: {field} = {value} is out of range: allowed {allowed}")]
    OutOfRange {
        /// The file.
        path: String,
        /// The field.
        field: &'static str,
        /// The value, as written in the file.
        value: String,
        /// The allowed range, as written in the file.
        allowed: String,
    },
    /// A value of the right type that cannot be used.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The field.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Refusing to overwrite an existing config.
    #[error("{path}: already exists: this data directory is initialised")]
    AlreadyExists {
        /// The file.
        path: String,
    },
}

/// A field whose value is checked: its name, then the problem.
type FieldProblem = (&'static str, Problem);

/// What is wrong with one field.
#[derive(Debug)]
enum Problem {
    OutOfRange { value: String, allowed: String },
    Invalid(String),
}

/// Checks that `value` of `field` lies in `range`; `show` writes values as the file does.
fn within<T: PartialOrd + Copy>(
    field: &'static str,
    value: T,
    range: RangeInclusive<T>,
    show: fn(T) -> String,
) -> Result<(), FieldProblem> {
    if range.contains(&value) {
        return Ok(());
    }
    Err((
        field,
        Problem::OutOfRange {
            value: show(value),
            allowed: format!("{} to {}", show(*range.start()), show(*range.end())),
        },
    ))
}

fn size_in(
    field: &'static str,
    value: u64,
    range: RangeInclusive<u64>,
) -> Result<(), FieldProblem> {
    within(field, value, range, format_size)
}

fn duration_in(
    field: &'static str,
    value: Duration,
    range: RangeInclusive<Duration>,
) -> Result<(), FieldProblem> {
    within(field, value, range, format_duration)
}

impl NodeConfig {
    /// Reads `path`, parses it into typed values and checks every range.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable file, bad TOML, an unknown field, a value that
    /// does not parse or is out of range.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.display().to_string(),
            error,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    /// Writes the config to `path` (fsynced), refusing to overwrite one.
    ///
    /// # Errors
    /// [`ConfigError`] if a value is out of range, or the file exists or cannot be written.
    pub fn create(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write;
        self.check(path)?;
        let io = |error| ConfigError::Io {
            path: path.display().to_string(),
            error,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => ConfigError::AlreadyExists {
                    path: path.display().to_string(),
                },
                _ => io(e),
            })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)
    }

    /// Checks every value against its allowed range; `path` names the file in errors.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] or [`ConfigError::Invalid`] for the first bad field.
    pub fn check(&self, path: &Path) -> Result<(), ConfigError> {
        self.problem().map_err(|(field, problem)| {
            let path = path.display().to_string();
            match problem {
                Problem::OutOfRange { value, allowed } => ConfigError::OutOfRange {
                    path,
                    field,
                    value,
                    allowed,
                },
                Problem::Invalid(reason) => ConfigError::Invalid {
                    path,
                    field,
                    reason,
                },
            }
        })
    }

    fn problem(&self) -> Result<(), FieldProblem> {
        if self.listen.is_empty() {
            return Err((
                "listen",
                Problem::Invalid(format!("give at least one address, e.g. {LISTEN_DEFAULT}")),
            ));
        }
        if !self.admin.ip().is_loopback() {
            return Err((
                "admin",
                Problem::Invalid(format!(
                    "{} is not a loopback address; the admin endpoint answers without a password, so it must stay on 127.0.0.1 or ::1",
                    self.admin
                )),
            ));
        }
        size_in("capacity", self.capacity, MIB..=PIB)?;
        size_in("scrub_rate", self.scrub_rate, KIB..=100 * GIB)?;
        size_in("repair_rate", self.repair_rate, KIB..=100 * GIB)?;
        size_in("rebalance_per_sweep", self.rebalance_per_sweep, 0..=PIB)?;
        // Short intervals are for tests; below 100 ms a worker would spin.
        let interval = 100 * MS..=30 * DAY;
        duration_in("scrub_interval", self.scrub_interval, interval.clone())?;
        duration_in(
            "anti_entropy_interval",
            self.anti_entropy_interval,
            interval.clone(),
        )?;
        duration_in("gc_interval", self.gc_interval, interval.clone())?;
        duration_in(
            "repair_sweep_interval",
            self.repair_sweep_interval,
            interval.clone(),
        )?;
        duration_in("orphan_interval", self.orphan_interval, interval)?;
        // A peer is down only after it missed several refreshes' worth of requests.
        duration_in("down_after", self.down_after, SEC..=30 * DAY)?;
        duration_in("orphan_grace", self.orphan_grace, SEC..=365 * DAY)?;
        duration_in(
            "membership_refresh",
            self.membership_refresh,
            100 * MS..=10 * MIN,
        )?;
        duration_in("info_timeout", self.info_timeout, 100 * MS..=10 * MIN)?;
        duration_in(
            "meta_request_timeout",
            self.meta_request_timeout,
            100 * MS..=10 * MIN,
        )?;
        duration_in(
            "shard_request_timeout",
            self.shard_request_timeout,
            SEC..=10 * MIN,
        )?;
        // One parity shard at least (a code without parity survives nothing); at most
        // what a Reed-Solomon code over GF(2^8) can have beside one data shard.
        within("min_parity", u64::from(self.min_parity), 1..=254, |v| {
            v.to_string()
        })?;
        Ok(())
    }

    /// The daemon's settings for the data directory `data`.
    ///
    /// # Errors
    /// As [`NodeConfig::check`].
    pub fn daemon_config(&self, data: DataDir) -> Result<DaemonConfig, ConfigError> {
        self.check(&data.config())?;
        Ok(DaemonConfig {
            data,
            capacity_bytes: self.capacity,
            listen: self.listen.clone(),
            bootstrap: self.bootstrap.clone(),
            scrub: ScrubConfig {
                rate_bytes_per_sec: self.scrub_rate,
                interval: self.scrub_interval,
            },
            anti_entropy: AntiEntropyConfig {
                interval: self.anti_entropy_interval,
            },
            gc: GcConfig {
                interval: self.gc_interval,
            },
            down_after: self.down_after,
            repair: RepairConfig {
                sweep_interval: self.repair_sweep_interval,
                bytes_per_sec: self.repair_rate,
                rebalance_bytes_per_sweep: self.rebalance_per_sweep,
                ..RepairConfig::default()
            },
            orphans: OrphanConfig {
                interval: self.orphan_interval,
                grace: self.orphan_grace,
            },
            membership: MembershipConfig {
                refresh_every: self.membership_refresh,
                info_timeout: self.info_timeout,
            },
            meta_request_timeout: self.meta_request_timeout,
            shard_request_timeout: self.shard_request_timeout,
            min_parity: self.min_parity,
            authority: self.authority.clone(),
            admin: Some(self.admin),
        })
    }
}

/// Serde for a list of multiaddrs written as strings.
mod multiaddrs {
    use andromede_cluster::net::Multiaddr;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::LISTEN_DEFAULT;

    pub(super) fn serialize<S: Serializer>(
        addrs: &[Multiaddr],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(addrs.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Multiaddr>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| {
                text.parse().map_err(|e| {
                    serde::de::Error::custom(format!(
                        "'{text}' is not a multiaddr ({e}): write e.g. {LISTEN_DEFAULT}"
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        NodeConfig::load(&path)
    }

    fn authority() -> AuthorityKey {
        andromede_cluster::authority::Authority::generate().public()
    }

    fn minimal() -> String {
        format!(
            "authority = \"{}\"\nlisten = [\"/ip4/127.0.0.1/tcp/4100\"]\ncapacity = \"1GiB\"\nadmin = \"127.0.0.1:4180\"\n",
            authority()
        )
    }

    #[test]
    fn config_round_trips_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let config = NodeConfig {
            bootstrap: vec!["/ip4/127.0.0.1/tcp/4100".parse().unwrap()],
            down_after: Duration::from_millis(1500),
            ..NodeConfig::new(authority())
        };
        config.create(&path).unwrap();
        assert_eq!(NodeConfig::load(&path).unwrap(), config);
        assert!(matches!(
            config.create(&path),
            Err(ConfigError::AlreadyExists { .. })
        ));

        let public_admin = NodeConfig {
            admin: "0.0.0.0:4180".parse().unwrap(),
            ..NodeConfig::new(authority())
        };
        let error = public_admin.check(&path).unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");

        let error =
            load_text(&minimal().replace("/ip4/127.0.0.1/tcp/4100", "127.0.0.1:4100")).unwrap_err();
        assert!(error.to_string().contains("not a multiaddr"), "{error}");
        let error = load_text(&format!("{}surprise = 1\n", minimal())).unwrap_err();
        assert!(error.to_string().contains("surprise"), "{error}");
        let error = load_text(&format!("{}gc_interval = \"soon\"\n", minimal())).unwrap_err();
        assert!(error.to_string().contains("not a duration"), "{error}");
    }

    #[test]
    fn values_out_of_range_are_refused_with_the_allowed_range() {
        for (line, field, allowed) in [
            ("capacity = \"0\"", "capacity", "1MiB to"),
            ("scrub_rate = \"0\"", "scrub_rate", "1KiB to"),
            ("down_after = \"1ms\"", "down_after", "1s to 30d"),
            ("gc_interval = \"0s\"", "gc_interval", "100ms to 30d"),
            (
                "shard_request_timeout = \"1h\"",
                "shard_request_timeout",
                "1s to 10m",
            ),
        ] {
            let text = minimal().replace("capacity = \"1GiB\"\n", "") + line + "\n";
            let text = if field == "capacity" {
                text
            } else {
                text + "capacity = \"1GiB\"\n"
            };
            match load_text(&text) {
                Err(ConfigError::OutOfRange {
                    field: named,
                    allowed: range,
                    ..
                }) => {
                    assert_eq!(named, field);
                    assert!(range.starts_with(allowed), "{field}: {range}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        assert!(load_text(&format!("{}rebalance_per_sweep = \"0\"\n", minimal())).is_ok());
    }
}
