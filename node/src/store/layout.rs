//! Where everything lives under a store's root. Persisted format:
//!
//! ```text
//! ROOT/shards/ab/cd/abcd…(64 hex).shard   one file per shard, named by its id
//! ROOT/tmp/                              writes in progress (removed at open)
//! ROOT/quarantine/                       shards that failed verification
//! ROOT/index/                            sled: id → (size, last verified); a cache
//! ROOT/epoch                             random u64 (decimal) drawn when the store was
//!                                        created: a new one tells peers the disk was
//!                                        wiped or replaced
//! ```
//!
//! The fan-out (two levels of 256 directories) keeps directories small up to ~10^8 shards.
//! Shard files are the source of truth; the index is rebuilt from them when it disagrees.

use std::path::{Path, PathBuf};

use andromede_proto::ShardId;

const SHARD_SUFFIX: &str = ".shard";

/// Paths of one store.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub(crate) fn shards_dir(&self) -> PathBuf {
        self.root.join("shards")
    }

    pub(crate) fn epoch_file(&self) -> PathBuf {
        self.root.join("epoch")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub(crate) fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    /// The fan-out directory of `id`.
    pub(crate) fn shard_dir(&self, id: &ShardId) -> PathBuf {
        let hex = id.to_string();
        self.shards_dir().join(&hex[..2]).join(&hex[2..4])
    }

    pub(crate) fn shard_path(&self, id: &ShardId) -> PathBuf {
        self.shard_dir(id).join(format!("{id}{SHARD_SUFFIX}"))
    }

    /// The id a file in the shard tree is named after, if its name is well formed.
    pub(crate) fn parse_shard_file_name(name: &str) -> Option<ShardId> {
        ShardId::from_hex(name.strip_suffix(SHARD_SUFFIX)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_paths_fan_out_and_parse_back() {
        let layout = Layout::new(Path::new("/r"));
        let id = ShardId([0xab; 32]);
        let path = layout.shard_path(&id);
        assert!(path.starts_with("/r/shards/ab/ab"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(Layout::parse_shard_file_name(name), Some(id));
        assert_eq!(Layout::parse_shard_file_name("zz.shard"), None);
        assert_eq!(Layout::parse_shard_file_name(&id.to_string()), None);
    }
}
