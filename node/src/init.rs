//! `andromede-node init`: a data directory made ready to run — its identity key, its
//! certificate, then `config.toml` last, so that an interrupted init can simply be run
//! again. A node either starts a new cluster (it creates the authority key, in
//! `DIR/authority.key`, and certifies itself) or joins one with a token from
//! `andromede-node invite`.

use std::net::SocketAddr;
use std::time::Duration;

use andromede_cluster::authority::{
    Authority, AuthorityKey, Certificate, CertificateSpec, JoinToken, PeerRole, Trust, unix_now,
};
use andromede_cluster::net::{self, Keypair, Multiaddr, PeerId};

use crate::config::{ConfigError, NodeConfig};
use crate::data_dir::DataDir;
use crate::error::DaemonError;

/// How long the certificates `init` and `invite` sign are valid by default.
pub const CERTIFICATE_VALIDITY_DEFAULT: Duration = Duration::from_secs(365 * 86_400);

/// The settings `init` writes (the rest of `config.toml` takes its defaults).
#[derive(Debug, Clone)]
pub struct InitSettings {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Members to join through, besides those a join token names.
    pub bootstrap: Vec<Multiaddr>,
    /// Most bytes of shards kept.
    pub capacity: u64,
    /// Admin endpoint (loopback).
    pub admin: SocketAddr,
}

/// How the node comes into a cluster.
#[derive(Debug)]
pub enum Joining {
    /// It starts a new cluster: it creates the authority key and certifies itself.
    NewCluster {
        /// Its certified name.
        name: String,
        /// Its certified zone.
        zone: String,
        /// Its certified jurisdiction.
        jurisdiction: String,
    },
    /// It joins with a token from `andromede-node invite --node`.
    Token(Box<JoinToken>),
}

/// What `init` did.
#[derive(Debug, Clone)]
pub struct Initialised {
    /// The node's peer id.
    pub peer: PeerId,
    /// Its certificate.
    pub certificate: Certificate,
    /// The cluster's identity.
    pub authority: AuthorityKey,
    /// Whether it started a new cluster (its directory then holds the authority key).
    pub new_cluster: bool,
    /// The config written.
    pub config: NodeConfig,
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
    /// The directory.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: String,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The token or certificate does not fit this directory.
    #[error("{0}")]
    Certificate(String),
}

fn credentials(e: impl std::fmt::Display) -> InitError {
    InitError::Certificate(e.to_string())
}

/// Initialises `data`.
///
/// # Errors
/// [`InitError`]: the directory is already initialised, a key cannot be created, or the
/// token does not admit a node here (a client token, expired, for another identity);
/// nothing is written in the last case.
pub fn init_data_dir(
    data: &DataDir,
    settings: InitSettings,
    joining: Joining,
) -> Result<Initialised, InitError> {
    let config_path = data.config();
    if config_path.exists() {
        return Err(ConfigError::AlreadyExists {
            path: config_path.display().to_string(),
        }
        .into());
    }
    // Everything is checked before anything is written: the token, then the settings.
    let (authority, new_authority) = match &joining {
        Joining::Token(token) => {
            let certificate = token.certificate();
            Trust::new(token.authority().clone())
                .verify_role(certificate, &certificate.peer(), PeerRole::Node, unix_now())
                .map_err(|e| credentials(format!("the join token: {e}")))?;
            (token.authority().clone(), None)
        }
        Joining::NewCluster { .. } => {
            let key_path = data.authority_key();
            if key_path.exists() {
                // An init that was interrupted: the same cluster.
                let authority = Authority::load_file(&key_path).map_err(DaemonError::from)?;
                (authority.public(), Some((authority, false)))
            } else {
                let authority = Authority::generate();
                (authority.public(), Some((authority, true)))
            }
        }
    };
    let mut config = NodeConfig {
        listen: settings.listen,
        bootstrap: settings.bootstrap,
        capacity: settings.capacity,
        admin: settings.admin,
        ..NodeConfig::new(authority.clone())
    };
    config.check(&config_path)?;
    std::fs::create_dir_all(data.root()).map_err(|error| InitError::Io {
        what: "create data directory",
        path: data.root().display().to_string(),
        error,
    })?;
    let new_cluster = matches!(joining, Joining::NewCluster { .. });
    let (identity, certificate) = match (joining, new_authority) {
        (
            Joining::NewCluster {
                name,
                zone,
                jurisdiction,
            },
            Some((authority, write)),
        ) => {
            if write {
                authority
                    .write_file(&data.authority_key())
                    .map_err(DaemonError::from)?;
            }
            let identity =
                net::load_or_create_identity(&data.identity_key()).map_err(DaemonError::from)?;
            let spec = CertificateSpec::new(
                PeerId::from(identity.public()),
                PeerRole::Node,
                &name,
                CERTIFICATE_VALIDITY_DEFAULT,
            )
            .placed(&zone, &jurisdiction);
            let certificate = authority.certify(spec).map_err(credentials)?;
            (identity, certificate)
        }
        (Joining::Token(token), _) => {
            let identity = join_identity(data, &token)?;
            // The token's members first, then those given on the command line.
            let mut bootstrap = token.bootstrap().to_vec();
            for addr in std::mem::take(&mut config.bootstrap) {
                if !bootstrap.contains(&addr) {
                    bootstrap.push(addr);
                }
            }
            config.bootstrap = bootstrap;
            (identity, token.certificate().clone())
        }
        (Joining::NewCluster { .. }, None) => {
            return Err(credentials("a new cluster without its authority"));
        }
    };
    certificate
        .write_file(&data.certificate())
        .map_err(credentials)?;
    config.create(&config_path)?;
    Ok(Initialised {
        peer: PeerId::from(identity.public()),
        certificate,
        authority,
        new_cluster,
        config,
    })
}

/// The identity a token certifies: written from the token when it carries it, else the
/// one already in the directory, which must be the certified peer.
fn join_identity(data: &DataDir, token: &JoinToken) -> Result<Keypair, InitError> {
    let path = data.identity_key();
    let certified = token.certificate().peer();
    let identity = match token.identity_secret() {
        Some(secret) if !path.exists() => {
            net::create_identity_file(&path, secret).map_err(DaemonError::from)?
        }
        Some(_) => net::load_or_create_identity(&path).map_err(DaemonError::from)?,
        None if path.exists() => net::load_or_create_identity(&path).map_err(DaemonError::from)?,
        None => {
            return Err(credentials(format!(
                "the join token certifies peer {certified} but {} has no identity yet: run `andromede-node init` without --join first to create it, or ask for a token that carries an identity (`invite` without --peer)",
                data.root().display()
            )));
        }
    };
    if PeerId::from(identity.public()) != certified {
        return Err(credentials(format!(
            "the join token certifies peer {certified}, but {} holds identity {}: use a fresh directory, or a token made with `invite --peer {}`",
            data.root().display(),
            PeerId::from(identity.public()),
            PeerId::from(identity.public())
        )));
    }
    Ok(identity)
}
