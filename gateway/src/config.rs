//! The gateway's config file (`andromede-gateway init` writes it, `run` and `key` read
//! it): which client config to reach the cluster with, where to listen, the root domains
//! of virtual-hosted-style addressing, the region it answers for, how long incomplete
//! multipart uploads are kept, and TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

/// Where the gateway listens unless told otherwise: loopback only.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9000";
/// The region the gateway answers for (SDKs sign with it).
pub const REGION_DEFAULT: &str = "us-east-1";

/// `gateway.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// The client config the gateway reaches the cluster with (its own identity: give
    /// each gateway its own, `andromede init --join TOKEN`).
    pub client_config: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Root domains for virtual-hosted-style requests (`BUCKET.DOMAIN`); path-style
    /// requests work always.
    #[serde(default)]
    pub domains: Vec<String>,
    /// The region requests are signed for.
    #[serde(default = "region_default")]
    pub region: String,
    /// How long an incomplete multipart upload is kept before its parts are collected
    /// ("7d", "12h", ...).
    #[serde(
        default = "multipart_expiry_default",
        with = "andromede_cluster::units::serde_duration"
    )]
    pub multipart_expiry: Duration,
    /// PEM certificate chain: serve HTTPS (with `tls_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of `tls_certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

fn multipart_expiry_default() -> Duration {
    andromede_client::api::MULTIPART_EXPIRY_DEFAULT
}

fn region_default() -> String {
    REGION_DEFAULT.to_owned()
}

impl GatewayFile {
    /// Reads `path`; relative paths inside are taken from the file's directory.
    ///
    /// # Errors
    /// Unreadable or malformed file, or half a TLS setting.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the gateway config {}: create one with `andromede-gateway init`",
                path.display()
            )
        })?;
        let mut file: Self =
            toml::from_str(&text).map_err(|e| anyhow!("gateway config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.client_config = base.join(&file.client_config);
        file.tls_certificate = file.tls_certificate.map(|p| base.join(p));
        file.tls_key = file.tls_key.map(|p| base.join(p));
        file.check()
            .with_context(|| format!("gateway config {}", path.display()))?;
        Ok(file)
    }

    /// Checks the fields that depend on each other.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.tls_certificate.is_some() != self.tls_key.is_some() {
            bail!("tls_certificate and tls_key go together: give both or neither");
        }
        if self.multipart_expiry < Duration::from_secs(2 * 3600) {
            bail!("multipart_expiry must be at least 2h (uploads are refused an hour before it)");
        }
        for domain in &self.domains {
            if domain.is_empty() || domain.contains(['/', ':', ' ']) {
                bail!("domain {domain:?} is not a host name");
            }
        }
        Ok(())
    }

    /// Writes a new file at `path`, never over an existing one.
    ///
    /// # Errors
    /// The file exists or cannot be written.
    pub fn create(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        let text = toml::to_string_pretty(self)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| {
                format!(
                    "creating {} (an existing config is never overwritten)",
                    path.display()
                )
            })?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(())
    }
}
