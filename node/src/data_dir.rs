//! The layout of a node's data directory: every path computed here, nowhere else.
//!
//! ```text
//! DIR/config.toml      the node's configuration (see config)
//! DIR/identity.key     ed25519 identity (0600): the node's peer id
//! DIR/cluster.secret   the cluster's admission secret (0600), same on every member
//! DIR/store/           the shard store (see store::layout)
//! DIR/meta/            the metadata replica's records (sled)
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

    /// The cluster secret.
    pub fn cluster_secret(&self) -> PathBuf {
        self.root.join("cluster.secret")
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
    pub fn roster(&self) -> PathBuf {
        self.store().join("roster.json")
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
