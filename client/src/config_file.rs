//! The client config file (`andromede init --out client.toml` writes it): which cluster
//! (its authority), where to reach it, and where this client's identity, certificate and
//! master key are. Every program that acts as a client — the CLI, the S3 gateway — reads
//! the same file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::ClientConfig;
use crate::keys::MasterKey;
use andromede_cluster::authority::{AuthorityKey, Certificate, Trust};
use andromede_cluster::net::{self, Admission, Multiaddr, PeerId, PeerRole};

/// The file's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// The cluster's identity: its authority's public key.
    pub authority: String,
    /// Nodes to join through.
    pub bootstrap: Vec<String>,
    /// This client's identity key (mode 0600).
    pub identity_file: PathBuf,
    /// This client's certificate from the cluster authority.
    pub certificate_file: PathBuf,
    /// The tenant master key: without it, objects cannot be read. Back it up.
    pub master_key_file: PathBuf,
}

/// Why a client config could not be read or used; each message names the file and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file is missing or unreadable.
    #[error("reading the client config {path}: {source}; create one with `andromede init`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A field is missing, unknown or malformed.
    #[error("client config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file exists already (a config is never overwritten).
    #[error("creating {path}: {source} (an existing config is never overwritten)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ClientFile {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// [`ConfigFileError::Read`] or [`ConfigFileError::Invalid`].
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigFileError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Writes a new file at `path` (fsynced), never over an existing one.
    ///
    /// # Errors
    /// [`ConfigFileError::Write`].
    pub fn create(&self, path: &Path) -> Result<(), ConfigFileError> {
        use std::io::Write;
        let write = |source| ConfigFileError::Write {
            path: path.to_owned(),
            source,
        };
        let text = toml::to_string_pretty(self)
            .map_err(|e| write(std::io::Error::other(e.to_string())))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(write)?;
        file.write_all(text.as_bytes()).map_err(write)?;
        file.sync_all().map_err(write)
    }

    /// Loads what the file points at — identity, certificate (checked against the
    /// authority), master key — into a [`ClientConfig`] with default tuning. `path` is the
    /// file's own path, for messages.
    ///
    /// # Errors
    /// [`ConfigFileError::Invalid`] naming the field or file that is wrong.
    pub fn client_config(&self, path: &Path) -> Result<ClientConfig, ConfigFileError> {
        let invalid = |message: String| ConfigFileError::Invalid {
            path: path.to_owned(),
            message,
        };
        let bootstrap = self
            .bootstrap
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>()
                    .map_err(|e| invalid(format!("bootstrap address '{a}': {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let authority: AuthorityKey = self
            .authority
            .parse()
            .map_err(|e| invalid(format!("authority: {e}")))?;
        let identity = net::load_or_create_identity(&self.identity_file)
            .map_err(|e| invalid(e.to_string()))?;
        let peer = PeerId::from(identity.public());
        let certificate =
            Certificate::read_file(&self.certificate_file).map_err(|e| invalid(e.to_string()))?;
        let admission = Admission::new(certificate, Trust::new(authority), &peer, PeerRole::Client)
            .map_err(|e| {
                invalid(format!(
                    "{}: {e}; ask for a new one with `andromede-node invite --peer {peer} --client NAME`",
                    self.certificate_file.display(),
                ))
            })?;
        let master =
            MasterKey::load_file(&self.master_key_file).map_err(|e| invalid(e.to_string()))?;
        Ok(ClientConfig::new(bootstrap, identity, admission, master))
    }
}
