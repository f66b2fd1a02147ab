//! The durable write: temp file → write → fsync → rename → fsync directory. A crash at any
//! point leaves either no shard (a temp file, removed at the next open) or a whole one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::power;
use crate::error::StoreError;

/// Steps of a write at which the fault-injection build can simulate a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Half the bytes written to the temp file, not fsynced.
    MidTempWrite,
    /// Temp file complete and fsynced, not renamed.
    AfterTempFsync,
    /// Renamed into place, directory not fsynced.
    AfterRename,
    /// Durable in place, index entry not written.
    BeforeIndex,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))?;
    power::dir_synced(dir);
    Ok(())
}

/// Creates `dir` and any missing parents, fsyncing each parent whose entries changed.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(StoreError::io("create directory", dir)(e)),
    }
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` to `dest` durably through a temp file in `tmp_dir` (same filesystem).
pub(crate) fn write_durable(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    crash: Option<CrashPoint>,
) -> Result<(), StoreError> {
    write_file(tmp_dir, dest, bytes, crash, true)
}

/// [`write_durable`] for a shard about to be acknowledged, where the planted "ack before
/// fsync" bug (fault-injection builds only, see [`power`]) skips both fsyncs.
pub(crate) fn write_shard(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    crash: Option<CrashPoint>,
) -> Result<(), StoreError> {
    write_file(tmp_dir, dest, bytes, crash, !power::skip_fsync())
}

fn write_file(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    crash: Option<CrashPoint>,
    fsync: bool,
) -> Result<(), StoreError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tmp_dir.join(format!(
        "{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_steps(&tmp, dest, bytes, crash, fsync);
    if result.is_err() && crash.is_none() {
        // Best effort: a leftover temp file is also removed at the next open.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_steps(
    tmp: &Path,
    dest: &Path,
    bytes: &[u8],
    crash: Option<CrashPoint>,
    fsync: bool,
) -> Result<(), StoreError> {
    let hit = |point| crash == Some(point);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(StoreError::io("create temp file", tmp))?;
    if hit(CrashPoint::MidTempWrite) {
        let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
        file.write_all(half)
            .map_err(StoreError::io("write temp file", tmp))?;
        return Err(injected(CrashPoint::MidTempWrite));
    }
    file.write_all(bytes)
        .map_err(StoreError::io("write temp file", tmp))?;
    power::wrote(tmp);
    if fsync {
        file.sync_all()
            .map_err(StoreError::io("fsync temp file", tmp))?;
        power::synced(tmp);
    }
    drop(file);
    if hit(CrashPoint::AfterTempFsync) {
        return Err(injected(CrashPoint::AfterTempFsync));
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    create_dir_durable(dir)?;
    fs::rename(tmp, dest).map_err(StoreError::io("rename into place", dest))?;
    power::renamed(tmp, dest);
    if hit(CrashPoint::AfterRename) {
        return Err(injected(CrashPoint::AfterRename));
    }
    if fsync { fsync_dir(dir) } else { Ok(()) }
}

use super::crash_error as injected;
