//! The store's epoch: a random number written once, when the store is created, and read
//! at every open. An empty store that comes back under the same node identity (a wiped or
//! replaced disk) has a new one, which is how its peers learn that its shards are gone.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::StoreError;

use super::layout::Layout;
use super::write::write_durable;

/// Reads the epoch file, or creates it (durably) with a fresh random value. Returns the
/// epoch and whether it was created now.
pub(super) fn read_or_create(layout: &Layout) -> Result<(u64, bool), StoreError> {
    let path = layout.epoch_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(epoch) if epoch != 0 => Ok((epoch, false)),
            _ => Err(StoreError::io("read store epoch", &path)(
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} does not hold a store epoch (a non-zero decimal number); restore it or delete it to draw a new one",
                        path.display()
                    ),
                ),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let epoch = fresh();
            write_durable(&layout.tmp_dir(), &path, epoch.to_string().as_bytes(), None)?;
            Ok((epoch, true))
        }
        Err(e) => Err(StoreError::io("read store epoch", &path)(e)),
    }
}

/// A value unlikely to repeat: the clock (ns) and the process id, hashed. Not secret.
fn fresh() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = blake3::Hasher::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(out).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back_and_new_for_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        super::super::write::create_dir_durable(&layout.tmp_dir()).unwrap();
        let (first, created) = read_or_create(&layout).unwrap();
        assert!(created);
        assert_ne!(first, 0);
        assert_eq!(read_or_create(&layout).unwrap(), (first, false));
        let other = tempfile::tempdir().unwrap();
        let layout = Layout::new(other.path());
        super::super::write::create_dir_durable(&layout.tmp_dir()).unwrap();
        assert_ne!(read_or_create(&layout).unwrap().0, first);
    }

    #[test]
    fn a_damaged_epoch_file_is_an_error_not_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::write(layout.epoch_file(), "not a number").unwrap();
        let err = read_or_create(&layout).unwrap_err();
        assert!(err.to_string().contains("epoch"), "{err}");
    }
}
