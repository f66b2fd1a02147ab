//! The client's config file: which cluster (its authority), where to reach it, and where
//! the client's identity, certificate and master key are.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

/// `andromede init --out CONFIG` writes this; every other command reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFile {
    /// The cluster's identity: its authority's public key.
    pub(crate) authority: String,
    /// Nodes to join through.
    pub(crate) bootstrap: Vec<String>,
    /// This client's identity key (mode 0600).
    pub(crate) identity_file: PathBuf,
    /// This client's certificate from the cluster authority.
    pub(crate) certificate_file: PathBuf,
    /// The tenant master key: without it, objects cannot be read. Back it up.
    pub(crate) master_key_file: PathBuf,
}

impl ClientFile {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the client config {}: create one with `andromede init`",
                path.display()
            )
        })?;
        toml::from_str(&text).map_err(|e| anyhow!("client config {}: {e}", path.display()))
    }

    pub(crate) fn create(&self, path: &Path) -> anyhow::Result<()> {
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
