//! Secret files: a 32-byte secret (the master key, the authority key, a peer's identity
//! seed) as a header line, hex and a hex checksum, mode 0600, created once and never
//! overwritten, fsynced with its directory. Loading refuses files that other users can
//! read, or that are of another kind or damaged.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Length of every secret kept in a secret file.
pub const SECRET_BYTES: usize = 32;

/// Why a secret file (master key, authority key, identity) could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// Reading or writing the file failed.
    #[error("{what} file {path}: {error}")]
    Io {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Refusing to overwrite an existing secret: data or membership depends on it.
    #[error(
        "{what} file {path} already exists: refusing to overwrite it (what was made with it would become unusable)"
    )]
    AlreadyExists {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file is not a secret file of this kind, or its checksum does not match.
    #[error(
        "{what} file {path} is corrupted or of another kind ({reason}): restore it from your backup"
    )]
    Corrupted {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// Group or other users can read the file.
    #[error(
        "{what} file {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`"
    )]
    Permissions {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// What a secret file holds: its name in messages and its header line.
#[derive(Debug, Clone, Copy)]
pub struct SecretFileKind {
    /// Its name in messages, e.g. `master key`.
    pub what: &'static str,
    /// Its first line, which tells the kinds apart.
    pub header: &'static str,
}

/// Writes a 32-byte secret as `header`, hex, hex checksum; mode 0600, `create_new`,
/// fsynced with its directory.
pub fn write_secret_file(
    path: &Path,
    kind: SecretFileKind,
    secret: &[u8; SECRET_BYTES],
) -> Result<(), SecretFileError> {
    let io = |error| SecretFileError::Io {
        what: kind.what,
        path: path.to_owned(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => SecretFileError::AlreadyExists {
                what: kind.what,
                path: path.to_owned(),
            },
            _ => io(e),
        })?;
    let text = Zeroizing::new(format!(
        "{}\n{}\n{}\n",
        kind.header,
        hex::encode(secret),
        hex::encode(secret_checksum(secret))
    ));
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// Reads a secret written by [`write_secret_file`], refusing files others can read.
pub fn read_secret_file(
    path: &Path,
    kind: SecretFileKind,
) -> Result<Zeroizing<[u8; SECRET_BYTES]>, SecretFileError> {
    let io = |error| SecretFileError::Io {
        what: kind.what,
        path: path.to_owned(),
        error,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions {
            what: kind.what,
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    let corrupted = |reason| SecretFileError::Corrupted {
        what: kind.what,
        path: path.to_owned(),
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some(kind.header) {
        return Err(corrupted("missing header line"));
    }
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    hex::decode_to_slice(lines.next().unwrap_or(""), secret.as_mut())
        .map_err(|_| corrupted("key line is not 64 hex characters"))?;
    let mut checksum = [0u8; 4];
    hex::decode_to_slice(lines.next().unwrap_or(""), &mut checksum)
        .map_err(|_| corrupted("checksum line is not 8 hex characters"))?;
    if checksum != secret_checksum(&secret) {
        return Err(corrupted("checksum does not match the key"));
    }
    Ok(secret)
}

fn secret_checksum(secret: &[u8; SECRET_BYTES]) -> [u8; 4] {
    let hash = blake3::hash(secret);
    let mut out = [0u8; 4];
    out.copy_from_slice(&hash.as_bytes()[..4]);
    out
}
