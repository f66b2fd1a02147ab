//! What a power cut would take from the shard store (DESIGN.md, "Testnet"): killing a
//! process leaves the page cache behind, so a file written but never fsynced survives a
//! SIGKILL and a missing fsync goes unseen. In fault-injection builds the write path
//! reports every step here; `cut` then undoes what was not yet durable, as the kernel
//! would on power loss (a file whose contents were not fsynced comes back empty; a
//! directory entry whose directory was not fsynced is gone), and the node aborts.
//! Without the feature every hook is empty and compiles away.
//!
//! Only shard files are modelled: they are the data whose durability the node orders by
//! hand. sled orders its own flushes.

use std::path::Path;

#[cfg(feature = "fault-injection")]
mod model {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use andromede_cluster::faults::{PLANTED_BUG_ENV, PlantedBug};

    /// Paths remembered at most (a planted bug that never fsyncs would grow it forever).
    const PENDING_MAX: usize = 1_000_000;

    #[derive(Default)]
    struct Pending {
        /// Files whose contents were written and not fsynced since.
        contents: BTreeSet<PathBuf>,
        /// Files renamed into a directory that was not fsynced since.
        entries: BTreeSet<PathBuf>,
    }

    static PENDING: Mutex<Pending> = Mutex::new(Pending {
        contents: BTreeSet::new(),
        entries: BTreeSet::new(),
    });

    fn pending() -> MutexGuard<'static, Pending> {
        // Sets of paths, each change one call: a panic cannot tear them.
        PENDING.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(set: &mut BTreeSet<PathBuf>, path: &Path) {
        if set.len() < PENDING_MAX {
            set.insert(path.to_owned());
        }
    }

    pub(crate) fn wrote(path: &Path) {
        remember(&mut pending().contents, path);
    }

    pub(crate) fn synced(path: &Path) {
        pending().contents.remove(path);
    }

    pub(crate) fn renamed(from: &Path, to: &Path) {
        let mut pending = pending();
        if pending.contents.remove(from) {
            remember(&mut pending.contents, to);
        }
        remember(&mut pending.entries, to);
    }

    pub(crate) fn dir_synced(dir: &Path) {
        pending().entries.retain(|p| p.parent() != Some(dir));
    }

    /// The bug this process was started with, from `ANDROMEDE_PLANTED_BUG`.
    ///
    /// # Errors
    /// A message naming the valid bugs when the variable holds something else.
    pub fn planted_bug() -> Result<Option<PlantedBug>, String> {
        static BUG: OnceLock<Result<Option<PlantedBug>, String>> = OnceLock::new();
        BUG.get_or_init(|| match std::env::var(PLANTED_BUG_ENV) {
            Ok(name) if !name.is_empty() => name.parse().map(Some),
            _ => Ok(None),
        })
        .clone()
    }

    pub(crate) fn skip_fsync() -> bool {
        planted_bug() == Ok(Some(PlantedBug::AckBeforeFsync))
    }

    /// Undoes every write that was not durable yet; returns how many files it emptied or
    /// removed. The caller aborts the process right after.
    pub fn cut() -> usize {
        let mut pending = pending();
        let mut undone = 0;
        for path in std::mem::take(&mut pending.entries) {
            if std::fs::remove_file(&path).is_ok() {
                undone += 1;
            }
        }
        for path in std::mem::take(&mut pending.contents) {
            let emptied = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0));
            if emptied.is_ok() {
                undone += 1;
            }
        }
        undone
    }
}

#[cfg(feature = "fault-injection")]
pub use model::{cut, planted_bug};

/// `path` holds written bytes that are not durable yet.
pub(crate) fn wrote(_path: &Path) {
    #[cfg(feature = "fault-injection")]
    model::wrote(_path);
}

/// `path`'s contents are durable.
pub(crate) fn synced(_path: &Path) {
    #[cfg(feature = "fault-injection")]
    model::synced(_path);
}

/// `from` was renamed to `to`: its contents keep their state, the new entry is not
/// durable until its directory is fsynced.
pub(crate) fn renamed(_from: &Path, _to: &Path) {
    #[cfg(feature = "fault-injection")]
    model::renamed(_from, _to);
}

/// The entries of `dir` are durable.
pub(crate) fn dir_synced(_dir: &Path) {
    #[cfg(feature = "fault-injection")]
    model::dir_synced(_dir);
}

/// Whether the planted "ack before fsync" bug is on (never in a normal build): shard
/// writes then skip their fsyncs.
pub(crate) fn skip_fsync() -> bool {
    #[cfg(feature = "fault-injection")]
    return model::skip_fsync();
    #[cfg(not(feature = "fault-injection"))]
    false
}
