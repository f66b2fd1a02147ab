//! Quarantine: a shard file that no longer matches its id is moved aside (never deleted:
//! an operator may want it for forensics) and forgotten by the index, so it is a missing
//! shard for repair and is never served.

use std::path::Path;

use crate::error::StoreError;
use crate::store::write::{create_dir_durable, fsync_dir};

/// Moves `file` into `quarantine_dir` under a unique name.
pub(crate) fn quarantine_file(file: &Path, quarantine_dir: &Path) -> Result<(), StoreError> {
    create_dir_durable(quarantine_dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".into());
    let stamp = crate::store::index::now_unix_secs();
    let mut dest = quarantine_dir.join(format!("{name}.{stamp}"));
    let mut n = 0u32;
    while dest.exists() && n < 1000 {
        n += 1;
        dest = quarantine_dir.join(format!("{name}.{stamp}.{n}"));
    }
    std::fs::rename(file, &dest).map_err(StoreError::io("quarantine", file))?;
    fsync_dir(quarantine_dir)?;
    if let Some(dir) = file.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}
