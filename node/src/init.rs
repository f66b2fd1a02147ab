//! `andromede-node init`: a data directory made ready to run — its identity key, its
//! cluster secret (new, or copied from an existing member's file), then `config.toml`
//! last, so that an interrupted init can simply be run again.

use std::path::Path;

use andromede_cluster::net::{self, ClusterSecret, PeerId};

use crate::config::{ConfigError, NodeConfig};
use crate::data_dir::DataDir;
use crate::error::DaemonError;

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initialised {
    /// The node's peer id.
    pub peer: PeerId,
    /// Whether a new cluster secret was created (other members then need a copy).
    pub new_cluster: bool,
}

/// Why a data directory could not be initialised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// Keys or the directory.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The directory or the secret copy.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: String,
        /// Why it failed.
        error: std::io::Error,
    },
}

/// Initialises `data` with `config`. With `secret_from`, the node joins the cluster whose
/// secret that file holds; without, an existing `cluster.secret` in the directory is kept,
/// or a new cluster is started.
///
/// # Errors
/// [`InitError`]: the directory is already initialised, a key cannot be created, or the
/// given secret file is not a valid cluster secret (nothing is written then).
pub fn init_data_dir(
    data: &DataDir,
    config: &NodeConfig,
    secret_from: Option<&Path>,
) -> Result<Initialised, InitError> {
    let config_path = data.config();
    config.check(&config_path)?;
    if config_path.exists() {
        return Err(ConfigError::AlreadyExists {
            path: config_path.display().to_string(),
        }
        .into());
    }
    // Load first: a file that is not a cluster secret is refused before anything is written.
    if let Some(source) = secret_from {
        ClusterSecret::load_file(source).map_err(DaemonError::from)?;
    }
    std::fs::create_dir_all(data.root()).map_err(|error| InitError::Io {
        what: "create data directory",
        path: data.root().display().to_string(),
        error,
    })?;
    let secret_path = data.cluster_secret();
    let new_cluster = match secret_from {
        Some(source) => {
            if source != secret_path {
                std::fs::copy(source, &secret_path).map_err(|error| InitError::Io {
                    what: "copy cluster secret to",
                    path: secret_path.display().to_string(),
                    error,
                })?;
            }
            ClusterSecret::load_file(&secret_path).map_err(DaemonError::from)?;
            false
        }
        None if secret_path.exists() => {
            ClusterSecret::load_file(&secret_path).map_err(DaemonError::from)?;
            false
        }
        None => {
            ClusterSecret::create_file(&secret_path).map_err(DaemonError::from)?;
            true
        }
    };
    let identity = net::load_or_create_identity(&data.identity_key()).map_err(DaemonError::from)?;
    config.create(&config_path)?;
    Ok(Initialised {
        peer: PeerId::from(identity.public()),
        new_cluster,
    })
}
