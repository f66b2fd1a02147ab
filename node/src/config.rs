//! A node's configuration file, `DIR/config.toml`: written by `andromede-node init`,
//! read by `run` and `status`. Every field is checked on load, with errors that name the
//! field and say what to write instead; unknown fields are refused (a typo must not be
//! silently ignored).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use andromede_client::net::Multiaddr;
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

/// Parses sizes such as `4096`, `64KiB`, `10GiB`, `1.5TB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size: write e.g. 512MiB or 10GiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "t" | "tb" => 1000u64.pow(4),
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}': use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
            ));
        }
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size '{text}' is out of range"));
    }
    #[allow(clippy::cast_possible_truncation, reason = "range checked just above")]
    Ok(bytes as u64)
}

/// Parses durations such as `90s`, `30m`, `24h`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write e.g. 90s, 30m or 24h"))?;
    let unit_secs = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => {
            return Err(format!(
                "unknown duration unit '{other}': use ms, s, m, h or d"
            ));
        }
    };
    number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration '{text}' is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_or_fail_clearly() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("1.5kb"), Ok(1500));
        assert!(parse_size("ten").unwrap_err().contains("not a size"));
        assert!(parse_size("5XB").unwrap_err().contains("unknown size unit"));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("").is_err());
    }

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
