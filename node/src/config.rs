//! A node's configuration file, `DIR/config.toml`: written by `andromede-node init`,
//! read by `run` and `status`. Every field is checked on load, with errors that name the
//! field and say what to write instead; unknown fields are refused (a typo must not be
//! silently ignored).

use std::net::SocketAddr;
use std::path::Path;

use andromede_cluster::net::Multiaddr;
use andromede_cluster::units::{parse_duration, parse_size};
use andromede_proto::limits::TAG_BYTES_MAX;
use serde::{Deserialize, Serialize};

use crate::daemon::DaemonConfig;
use crate::data_dir::DataDir;
use crate::service::dispatch::NodeTags;
use crate::workers::anti_entropy::AntiEntropyConfig;
use crate::workers::gc::GcConfig;
use crate::workers::orphans::OrphanConfig;
use crate::workers::repair::RepairConfig;
use crate::workers::scrub::ScrubConfig;

/// Default listen address of the first node on a machine.
pub const LISTEN_DEFAULT: &str = "/ip4/127.0.0.1/tcp/4100";
/// Default admin endpoint (loopback only).
pub const ADMIN_DEFAULT: &str = "127.0.0.1:4180";

/// The persisted configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Multiaddrs of members to join through.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Failure domain (a rack, a room, a site).
    #[serde(default)]
    pub zone: String,
    /// Legal jurisdiction, e.g. `FR`.
    #[serde(default)]
    pub jurisdiction: String,
    /// Most bytes of shards kept, e.g. `500GiB`.
    pub capacity: String,
    /// Admin endpoint, loopback only, e.g. `127.0.0.1:4180`.
    pub admin: String,
    /// Most bytes per second the background scrubber re-hashes.
    #[serde(default = "scrub_rate_default")]
    pub scrub_rate: String,
    /// Pause between scrub passes.
    #[serde(default = "scrub_interval_default")]
    pub scrub_interval: String,
    /// Pause between anti-entropy passes over the metadata this node replicates.
    #[serde(default = "anti_entropy_interval_default")]
    pub anti_entropy_interval: String,
    /// Pause between garbage-collection passes.
    #[serde(default = "gc_interval_default")]
    pub gc_interval: String,
    /// A peer unreachable this long is down: no new shards go to it and its shards are
    /// rebuilt elsewhere. Long enough that a reboot does not start a repair.
    #[serde(default = "down_after_default")]
    pub down_after: String,
    /// Pause between sweeps that check every version this node repairs with its holders.
    #[serde(default = "repair_sweep_interval_default")]
    pub repair_sweep_interval: String,
    /// Most bytes per second of rebuilt shards, so clients keep their share.
    #[serde(default = "repair_rate_default")]
    pub repair_rate: String,
    /// Most shard bytes one sweep moves toward the nodes that joined (0: never move
    /// healthy shards for balance; drains and doubled-up shards still move).
    #[serde(default = "rebalance_per_sweep_default")]
    pub rebalance_per_sweep: String,
    /// Age a shard no manifest references must reach before it is deleted (longer than
    /// any upload takes).
    #[serde(default = "orphan_grace_default")]
    pub orphan_grace: String,
    /// Pause between passes that look for such shards.
    #[serde(default = "orphan_interval_default")]
    pub orphan_interval: String,
}

fn orphan_grace_default() -> String {
    "24h".into()
}

fn orphan_interval_default() -> String {
    "1h".into()
}

fn down_after_default() -> String {
    "60s".into()
}

fn repair_sweep_interval_default() -> String {
    "1h".into()
}

fn repair_rate_default() -> String {
    "256MiB".into()
}

fn rebalance_per_sweep_default() -> String {
    "4GiB".into()
}

fn anti_entropy_interval_default() -> String {
    "10m".into()
}

fn gc_interval_default() -> String {
    "1m".into()
}

fn scrub_rate_default() -> String {
    "32MiB".into()
}

fn scrub_interval_default() -> String {
    "24h".into()
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: vec![LISTEN_DEFAULT.into()],
            bootstrap: Vec::new(),
            zone: String::new(),
            jurisdiction: String::new(),
            capacity: "10GiB".into(),
            admin: ADMIN_DEFAULT.into(),
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
        }
    }
}

/// A config that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong and what to do.
    pub reason: String,
}

impl NodeConfig {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable file, bad TOML, or a field that does not parse.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let error = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let config: Self = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        config.validate().map_err(error)?;
        Ok(config)
    }

    /// Writes the config to `path`, refusing to overwrite one.
    ///
    /// # Errors
    /// [`ConfigError`] if it exists or cannot be written.
    pub fn create(&self, path: &Path) -> Result<(), ConfigError> {
        let error = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        self.validate().map_err(error)?;
        let text = toml::to_string_pretty(self).map_err(|e| error(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    error("already exists: this data directory is initialised".into())
                }
                _ => error(e.to_string()),
            })?;
        use std::io::Write;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| error(e.to_string()))
    }

    /// Checks every field.
    ///
    /// # Errors
    /// A message naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addrs()?;
        self.bootstrap_addrs()?;
        self.admin_addr()?;
        parse_size(&self.capacity).map_err(|e| format!("capacity: {e}"))?;
        parse_size(&self.scrub_rate).map_err(|e| format!("scrub_rate: {e}"))?;
        parse_size(&self.rebalance_per_sweep).map_err(|e| format!("rebalance_per_sweep: {e}"))?;
        if parse_size(&self.repair_rate).map_err(|e| format!("repair_rate: {e}"))? == 0 {
            return Err("repair_rate must be more than 0".into());
        }
        parse_duration(&self.scrub_interval).map_err(|e| format!("scrub_interval: {e}"))?;
        for (field, value) in [
            ("anti_entropy_interval", &self.anti_entropy_interval),
            ("gc_interval", &self.gc_interval),
            ("down_after", &self.down_after),
            ("repair_sweep_interval", &self.repair_sweep_interval),
            ("orphan_grace", &self.orphan_grace),
            ("orphan_interval", &self.orphan_interval),
        ] {
            let interval = parse_duration(value).map_err(|e| format!("{field}: {e}"))?;
            if interval.is_zero() {
                return Err(format!("{field} must be longer than 0"));
            }
        }
        for (field, value) in [("zone", &self.zone), ("jurisdiction", &self.jurisdiction)] {
            if value.len() as u64 > TAG_BYTES_MAX {
                return Err(format!("{field} is longer than {TAG_BYTES_MAX} bytes"));
            }
        }
        Ok(())
    }

    fn multiaddrs(field: &str, values: &[String]) -> Result<Vec<Multiaddr>, String> {
        values
            .iter()
            .map(|v| {
                v.parse().map_err(|e| {
                    format!("{field}: '{v}' is not a multiaddr ({e}): write e.g. {LISTEN_DEFAULT}")
                })
            })
            .collect()
    }

    /// The listen addresses.
    ///
    /// # Errors
    /// A message naming the bad address.
    pub fn listen_addrs(&self) -> Result<Vec<Multiaddr>, String> {
        if self.listen.is_empty() {
            return Err(format!(
                "listen: give at least one address, e.g. {LISTEN_DEFAULT}"
            ));
        }
        Self::multiaddrs("listen", &self.listen)
    }

    /// The bootstrap addresses.
    ///
    /// # Errors
    /// A message naming the bad address.
    pub fn bootstrap_addrs(&self) -> Result<Vec<Multiaddr>, String> {
        Self::multiaddrs("bootstrap", &self.bootstrap)
    }

    /// The admin endpoint's address: loopback only, since it answers without a password.
    ///
    /// # Errors
    /// A message if it does not parse or is not a loopback address.
    pub fn admin_addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = self.admin.parse().map_err(|_| {
            format!(
                "admin: '{}' is not an address: write e.g. {ADMIN_DEFAULT}",
                self.admin
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "admin: {addr} is not a loopback address; the admin endpoint must stay on 127.0.0.1 or ::1"
            ));
        }
        Ok(addr)
    }

    /// The daemon's settings for the data directory `data`.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn daemon_config(&self, data: DataDir) -> Result<DaemonConfig, String> {
        self.validate()?;
        Ok(DaemonConfig {
            data,
            capacity_bytes: parse_size(&self.capacity)?,
            listen: self.listen_addrs()?,
            bootstrap: self.bootstrap_addrs()?,
            scrub: ScrubConfig {
                rate_bytes_per_sec: parse_size(&self.scrub_rate)?,
                interval: parse_duration(&self.scrub_interval)?,
            },
            anti_entropy: AntiEntropyConfig {
                interval: parse_duration(&self.anti_entropy_interval)?,
            },
            gc: GcConfig {
                interval: parse_duration(&self.gc_interval)?,
            },
            down_after: parse_duration(&self.down_after)?,
            repair: RepairConfig {
                sweep_interval: parse_duration(&self.repair_sweep_interval)?,
                bytes_per_sec: parse_size(&self.repair_rate)?,
                rebalance_bytes_per_sweep: parse_size(&self.rebalance_per_sweep)?,
                ..RepairConfig::default()
            },
            orphans: OrphanConfig {
                interval: parse_duration(&self.orphan_interval)?,
                grace: parse_duration(&self.orphan_grace)?,
            },
            tags: NodeTags {
                zone: self.zone.clone(),
                jurisdiction: self.jurisdiction.clone(),
            },
            admin: Some(self.admin_addr()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let config = NodeConfig {
            zone: "rack-2".into(),
            jurisdiction: "FR".into(),
            bootstrap: vec!["/ip4/127.0.0.1/tcp/4100".into()],
            ..NodeConfig::default()
        };
        config.create(&path).unwrap();
        assert_eq!(NodeConfig::load(&path).unwrap(), config);
        assert!(
            config
                .create(&path)
                .unwrap_err()
                .reason
                .contains("already exists")
        );

        let public_admin = NodeConfig {
            admin: "0.0.0.0:4180".into(),
            ..NodeConfig::default()
        };
        assert!(public_admin.validate().unwrap_err().contains("loopback"));
        let bad_listen = NodeConfig {
            listen: vec!["127.0.0.1:4100".into()],
            ..NodeConfig::default()
        };
        assert!(
            bad_listen
                .validate()
                .unwrap_err()
                .contains("not a multiaddr")
        );
        std::fs::write(
            &path,
            "listen = []\ncapacity = \"1GiB\"\nadmin = \"127.0.0.1:1\"\nsurprise = 1\n",
        )
        .unwrap();
        assert!(
            NodeConfig::load(&path)
                .unwrap_err()
                .reason
                .contains("surprise")
        );
    }
}
