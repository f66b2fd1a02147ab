//! Open-time reconciliation of the index with the shard files, after a crash or an
//! operator's hands in the directory:
//! 1. temp files (writes that never completed) are removed;
//! 2. a shard file without a matching index entry (crash between rename and index
//!    update, or a lost index) is re-hashed: adopted if intact, quarantined if not (a
//!    truncated or damaged file); badly named or misplaced files are quarantined;
//! 3. an index entry without its file is dropped.
//!
//! Cost: one `stat` per file and per entry, and one hash per file the index did not
//! vouch for. Bounded memory: neither pass holds more than a page of ids.

use std::fs;
use std::path::Path;

use tracing::{info, warn};

use super::index::{ShardIndex, ShardMeta, now_unix_secs};
use super::layout::Layout;
use super::quarantine::quarantine_file;
use crate::error::StoreError;
use andromede_cluster::shard::hash::verify_shard;

const INDEX_PAGE: usize = 1024;

/// What reconciliation found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Leftover temp files removed.
    pub temp_files_removed: u64,
    /// Intact shard files without an index entry, now indexed.
    pub adopted: u64,
    /// Files moved to quarantine (damaged, truncated, misnamed).
    pub quarantined: u64,
    /// Index entries whose file was gone, dropped.
    pub entries_dropped: u64,
    /// Shards held after reconciliation.
    pub shard_count: u64,
    /// Bytes held after reconciliation.
    pub used_bytes: u64,
}

pub(super) fn reconcile(layout: &Layout, index: &ShardIndex) -> Result<RecoveryReport, StoreError> {
    let mut report = RecoveryReport {
        temp_files_removed: clean_temp(&layout.tmp_dir())?,
        ..RecoveryReport::default()
    };
    for level1 in read_dir(&layout.shards_dir())? {
        for level2 in read_dir(&level1)? {
            for file in read_dir(&level2)? {
                reconcile_file(layout, index, &file, &mut report)?;
            }
        }
    }
    drop_missing_entries(layout, index, &mut report)?;
    index.flush()?;
    if report.temp_files_removed + report.adopted + report.quarantined + report.entries_dropped > 0
    {
        warn!(?report, "shard store reconciled after an unclean stop");
    } else {
        info!(
            shards = report.shard_count,
            bytes = report.used_bytes,
            "shard store opened"
        );
    }
    Ok(report)
}

fn read_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let entries = fs::read_dir(dir).map_err(StoreError::io("list directory", dir))?;
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(StoreError::io("list directory", dir))?.path());
    }
    out.sort();
    Ok(out)
}

fn clean_temp(tmp: &Path) -> Result<u64, StoreError> {
    let mut removed = 0;
    for path in read_dir(tmp)? {
        let result = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(StoreError::io("remove temp file", &path))?;
        removed += 1;
    }
    if removed > 0 {
        super::write::fsync_dir(tmp)?;
    }
    Ok(removed)
}

fn reconcile_file(
    layout: &Layout,
    index: &ShardIndex,
    path: &Path,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let id = Layout::parse_shard_file_name(name).filter(|id| layout.shard_path(id) == path);
    let Some(id) = id else {
        warn!(path = %path.display(), "unexpected file in the shard tree; quarantined");
        quarantine_file(path, &layout.quarantine_dir())?;
        report.quarantined += 1;
        return Ok(());
    };
    let size = fs::metadata(path)
        .map_err(StoreError::io("stat shard", path))?
        .len();
    if index.get(&id)?.is_some_and(|meta| meta.size_bytes == size) {
        return Ok(());
    }
    let bytes = fs::read(path).map_err(StoreError::io("read shard", path))?;
    if verify_shard(&id, &bytes) {
        index.insert(
            &id,
            ShardMeta {
                size_bytes: size,
                verified_at_unix_secs: now_unix_secs(),
            },
        )?;
        report.adopted += 1;
    } else {
        warn!(shard = %id.short(), size, "shard file does not match its id; quarantined");
        quarantine_file(path, &layout.quarantine_dir())?;
        index.remove(&id)?;
        report.quarantined += 1;
    }
    Ok(())
}

fn drop_missing_entries(
    layout: &Layout,
    index: &ShardIndex,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = index.page(after.as_ref(), INDEX_PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(*last);
        for (id, meta) in page {
            match meta {
                Some(meta) if layout.shard_path(&id).is_file() => {
                    report.shard_count += 1;
                    report.used_bytes += meta.size_bytes;
                }
                _ => {
                    index.remove(&id)?;
                    report.entries_dropped += 1;
                }
            }
        }
    }
}
