//! The layout of a node's data directory: every path computed here, nowhere else.
//!
//! ```text
//! DIR/config.toml      the node's configuration (see config)
//! DIR/identity.key     ed25519 identity (0600): the node's peer id
//! DIR/certificate      the node's certificate from the cluster authority (not secret)
//! DIR/revocations      the newest revocation list the node has seen (not secret)
//! DIR/authority.key    the cluster authority's private key (0600), only in the directory
//!                      of the node that created the cluster, until moved elsewhere
//! DIR/store/           the shard store (see store::layout)
//! DIR/meta/            the metadata replica's records (sled)
//! DIR/draining         present while the node is drained (`andromede-node drain`)
//! ```

use std::path::{Path, PathBuf};

use crate::store::{IndexOptions, StoreConfig};

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's configuration file.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The node's identity key.
    pub fn identity_key(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// The node's certificate.
    pub fn certificate(&self) -> PathBuf {
        self.root.join("certificate")
    }

    /// The newest revocation list seen.
    pub fn revocations(&self) -> PathBuf {
        self.root.join("revocations")
    }

    /// The authority key, where the cluster was created (it may have been moved away).
    pub fn authority_key(&self) -> PathBuf {
        self.root.join("authority.key")
    }

    /// The metadata store.
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta")
    }

    /// The shard store's root.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The nodes that must answer before an unreferenced shard is deleted: kept with the
    /// shards (lost with them, never with the metadata alone).
    pub fn orphans_roster(&self) -> PathBuf {
        self.store().join("roster.json")
    }

    /// The cluster's roster as this node last knew it (certified members and their
    /// addresses): a restart finds its peers through it.
    pub fn roster(&self) -> PathBuf {
        self.root.join("roster.pb")
    }

    /// Present while the node's metadata store is new and still being filled from the
    /// other replicas, so a node restarted half-way keeps catching up.
    pub fn catch_up_marker(&self) -> PathBuf {
        self.root.join("catching-up")
    }

    /// Present while the node is being drained (it holds the time the drain began), so a
    /// restarted node keeps draining.
    pub fn drain_marker(&self) -> PathBuf {
        self.root.join("draining")
    }

    /// How this data directory's shard store is opened.
    pub fn store_config(&self, capacity_bytes: u64) -> StoreConfig {
        StoreConfig {
            root: self.store(),
            capacity_bytes,
            index: IndexOptions::default(),
        }
    }
}

/// Replaces `path` with `bytes` atomically and durably: temporary file, fsync, rename,
/// fsync of the directory.
///
/// # Errors
/// The I/O error, with the path in its message.
pub fn write_file_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let context =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(context)?;
    file.write_all(bytes).map_err(context)?;
    file.sync_all().map_err(context)?;
    std::fs::rename(&tmp, path).map_err(context)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(context)?;
    }
    Ok(())
}
