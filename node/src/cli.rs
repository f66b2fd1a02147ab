//! Command-line interface of `andromede-node`.

use std::path::PathBuf;
use std::time::Duration;

use andromede_client::net::Multiaddr;
use clap::{Parser, Subcommand};

/// The Andromède node daemon.
#[derive(Debug, Parser)]
#[command(name = "andromede-node", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the node: open (and recover) the shard store, join the cluster, serve shards,
    /// scrub in the background; stop cleanly on Ctrl-C or SIGTERM.
    Run {
        #[command(flatten)]
        store: StoreArgs,
        /// Address to listen on (repeatable).
        #[arg(long, default_value = "/ip4/127.0.0.1/tcp/4100")]
        listen: Vec<Multiaddr>,
        /// A member to join the cluster through (repeatable), e.g.
        /// /ip4/10.0.0.5/tcp/4100. Needs this node's DIR/cluster.secret copied from it.
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        /// Most bytes per second the background scrubber re-hashes (e.g. 32MiB).
        #[arg(long, default_value = "32MiB", value_parser = parse_size)]
        scrub_rate: u64,
        /// Pause between scrub passes (e.g. 24h, 30m, 90s).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        scrub_interval: Duration,
    },
    /// Re-hash every shard once now (progress bar), quarantine any that fail, and report.
    Scrub {
        #[command(flatten)]
        store: StoreArgs,
        /// Most bytes per second re-hashed.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        rate: u64,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// The node's data directory (created if missing).
    #[arg(long, env = "ANDROMEDE_DATA", default_value = "andromede-data")]
    pub(crate) data: PathBuf,
    /// Most bytes of shards this node keeps (e.g. 500GiB).
    #[arg(long, default_value = "10GiB", value_parser = parse_size)]
    pub(crate) capacity: u64,
}

/// Parses sizes such as `4096`, `64KiB`, `10GiB`, `1.5TB`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
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
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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
}
