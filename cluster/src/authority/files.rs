//! Certificates and revocation lists kept in files: one armoured line each
//! (`andromede-certificate-v1:...`, `andromede-revocations-v1:...`), replaced atomically
//! (write to a temporary file, fsync, rename, fsync the directory) so that a renewal or a
//! newer list never leaves a half-written file behind. Neither is secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use andromede_proto::limits::{CERTIFICATE_BYTES_MAX, REVOCATION_LIST_BYTES_MAX};

use super::certificate::{Certificate, CertificateError};
use super::keys::AuthorityKey;
use super::revocation::{RevocationError, RevocationList};
use super::text::{armour, dearmour};

const CERTIFICATE_KIND: &str = "andromede-certificate-v1";
const REVOCATIONS_KIND: &str = "andromede-revocations-v1";

/// Why a certificate or revocation file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityFileError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file holds no valid certificate.
    #[error("{path}: {error}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        error: CertificateError,
    },
    /// The file holds no valid revocation list of this cluster.
    #[error("{path}: {error}")]
    Revocations {
        /// The file.
        path: PathBuf,
        /// Why.
        error: RevocationError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthorityFileError + '_ {
    move |error| AuthorityFileError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Writes `text` to `path` atomically and durably.
///
/// # Errors
/// [`AuthorityFileError::Io`].
pub fn replace_file(path: &Path, text: &str) -> Result<(), AuthorityFileError> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    replace_file_bytes(path, &bytes)
}

/// Writes `bytes` to `path` atomically and durably (a temporary file, fsync, rename,
/// fsync of the directory).
///
/// # Errors
/// [`AuthorityFileError::Io`].
pub fn replace_file_bytes(path: &Path, bytes: &[u8]) -> Result<(), AuthorityFileError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn read_text(path: &Path, bytes_max: u64) -> Result<String, AuthorityFileError> {
    let len = std::fs::metadata(path).map_err(io(path))?.len();
    // Base64 grows by a third; allow a header and a newline.
    if len > bytes_max / 3 * 4 + 256 {
        return Err(AuthorityFileError::Io {
            path: path.to_owned(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, "file too large"),
        });
    }
    std::fs::read_to_string(path).map_err(io(path))
}

impl Certificate {
    /// The one-line text form.
    pub fn to_text(&self) -> String {
        armour(CERTIFICATE_KIND, &self.encoded())
    }

    /// Reads the text form (shape only; verify with `Trust::verify`).
    ///
    /// # Errors
    /// [`CertificateError::Malformed`].
    pub fn from_text(text: &str) -> Result<Self, CertificateError> {
        let bytes = dearmour(
            CERTIFICATE_KIND,
            "a certificate",
            text,
            CERTIFICATE_BYTES_MAX,
        )
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        Self::decode(&bytes)
    }

    /// Writes it to `path`, atomically.
    ///
    /// # Errors
    /// [`AuthorityFileError::Io`].
    pub fn write_file(&self, path: &Path) -> Result<(), AuthorityFileError> {
        replace_file(path, &self.to_text())
    }

    /// Reads a certificate file (shape only).
    ///
    /// # Errors
    /// [`AuthorityFileError`].
    pub fn read_file(path: &Path) -> Result<Self, AuthorityFileError> {
        let text = read_text(path, CERTIFICATE_BYTES_MAX)?;
        Self::from_text(&text).map_err(|error| AuthorityFileError::Certificate {
            path: path.to_owned(),
            error,
        })
    }
}

impl RevocationList {
    /// Writes it to `path`, atomically (version 0 writes an empty list marker).
    ///
    /// # Errors
    /// [`AuthorityFileError::Io`].
    pub fn write_file(&self, path: &Path) -> Result<(), AuthorityFileError> {
        replace_file(path, &armour(REVOCATIONS_KIND, &self.encode()))
    }

    /// Reads a list written by [`RevocationList::write_file`], verified against
    /// `authority`; a missing file is version 0.
    ///
    /// # Errors
    /// [`AuthorityFileError`].
    pub fn read_file(path: &Path, authority: &AuthorityKey) -> Result<Self, AuthorityFileError> {
        if !path.exists() {
            return Ok(Self::empty());
        }
        let text = read_text(path, REVOCATION_LIST_BYTES_MAX + 256)?;
        let bad = |error| AuthorityFileError::Revocations {
            path: path.to_owned(),
            error,
        };
        let bytes = dearmour(
            REVOCATIONS_KIND,
            "a revocation list",
            &text,
            REVOCATION_LIST_BYTES_MAX + 256,
        )
        .map_err(|e| bad(RevocationError::Malformed(e.to_string())))?;
        if bytes.is_empty() {
            return Ok(Self::empty());
        }
        Self::decode(&bytes, authority).map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::super::certificate::{CertificateSpec, PeerRole};
    use super::super::keys::Authority;
    use super::*;

    #[test]
    fn files_round_trip_and_refuse_other_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::generate();
        let peer = libp2p::PeerId::random();
        let cert = authority
            .certify(CertificateSpec::new(
                peer,
                PeerRole::Node,
                "n",
                std::time::Duration::from_secs(60),
            ))
            .unwrap();
        let cert_path = dir.path().join("certificate");
        cert.write_file(&cert_path).unwrap();
        assert_eq!(Certificate::read_file(&cert_path).unwrap(), cert);

        let list_path = dir.path().join("revocations");
        assert_eq!(
            RevocationList::read_file(&list_path, &authority.public())
                .unwrap()
                .version(),
            0
        );
        let list = authority.revoke(&RevocationList::empty(), peer, 1).unwrap();
        list.write_file(&list_path).unwrap();
        assert_eq!(
            RevocationList::read_file(&list_path, &authority.public()).unwrap(),
            list
        );
        assert!(RevocationList::read_file(&list_path, &Authority::generate().public()).is_err());
        assert!(Certificate::read_file(&list_path).is_err());
    }
}
