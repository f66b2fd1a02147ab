//! Crash safety: a write interrupted at every step, and damage done while the node was
//! down, leave a store that reopens consistent — no partial shard is ever served, every
//! complete shard is kept, and the index agrees with the files.

use andromede_node::StoreError;
use andromede_node::store::CrashPoint;

use crate::{files_under, open, shard, try_open};

#[test]
fn a_crash_at_every_step_of_a_write_reopens_consistent() {
    for (point, survives) in [
        (CrashPoint::MidTempWrite, false),
        (CrashPoint::AfterTempFsync, false),
        (CrashPoint::AfterRename, true),
        (CrashPoint::BeforeIndex, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (kept, kept_bytes) = shard(9, 3000);
        let (id, bytes) = shard(1, 4000);
        {
            let store = open(dir.path(), 1 << 20);
            store.put(&kept, &kept_bytes).unwrap();
            let err = store.put_crashing_at(&id, &bytes, point).unwrap_err();
            assert!(matches!(err, StoreError::InjectedCrash(p) if p == point));
        }
        let (store, report) = try_open(dir.path(), 1 << 20).unwrap();
        assert!(
            files_under(&dir.path().join("tmp"), "").is_empty(),
            "{point:?}: temp left"
        );
        assert_eq!(store.get(&kept).unwrap(), kept_bytes, "{point:?}");
        if survives {
            assert_eq!(report.adopted, 1, "{point:?}");
            assert_eq!(store.get(&id).unwrap(), bytes, "{point:?}");
            assert_eq!(store.usage().used_bytes, 7000, "{point:?}");
        } else {
            assert_eq!(report.temp_files_removed, 1, "{point:?}");
            assert!(
                matches!(store.get(&id), Err(StoreError::NotFound { .. })),
                "{point:?}"
            );
            assert_eq!(store.have(&[id]).unwrap(), [false]);
            assert_eq!(store.usage().used_bytes, 3000, "{point:?}");
        }
        // Whatever happened, a retried put succeeds and the shard is whole.
        store.put(&id, &bytes).unwrap();
        assert_eq!(store.get(&id).unwrap(), bytes);
    }
}

#[test]
fn a_truncated_shard_file_is_quarantined_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (id, bytes) = shard(4, 5000);
    {
        let store = open(dir.path(), 1 << 20);
        store.put(&id, &bytes).unwrap();
    }
    let path = files_under(dir.path(), ".shard").pop().unwrap();
    std::fs::write(&path, &bytes[..2500]).unwrap();
    let (store, report) = try_open(dir.path(), 1 << 20).unwrap();
    assert_eq!(report.quarantined, 1);
    assert_eq!(store.have(&[id]).unwrap(), [false]);
    assert!(matches!(store.get(&id), Err(StoreError::NotFound { .. })));
    assert_eq!(store.usage().used_bytes, 0);
}

#[test]
fn an_index_entry_without_its_file_is_dropped_and_an_orphan_file_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let (gone, gone_bytes) = shard(5, 100);
    let (orphan, orphan_bytes) = shard(6, 200);
    {
        let store = open(dir.path(), 1 << 20);
        store.put(&gone, &gone_bytes).unwrap();
        store.put(&orphan, &orphan_bytes).unwrap();
    }
    // Lose one file, and the whole index (as if it were wiped).
    let gone_path = files_under(dir.path(), &format!("{gone}.shard"))
        .pop()
        .unwrap();
    std::fs::remove_file(gone_path).unwrap();
    {
        let (store, report) = try_open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report.entries_dropped, 1);
        assert_eq!(store.have(&[gone, orphan]).unwrap(), [false, true]);
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (store, report) = try_open(dir.path(), 1 << 20).unwrap();
    assert_eq!(report.adopted, 1);
    assert_eq!(report.shard_count, 1);
    assert_eq!(store.get(&orphan).unwrap(), orphan_bytes);
    assert_eq!(store.usage().used_bytes, 200);
}

#[test]
fn a_stray_file_in_the_shard_tree_is_quarantined_not_served() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 1 << 20));
    let stray_dir = dir.path().join("shards/00/00");
    std::fs::create_dir_all(&stray_dir).unwrap();
    std::fs::write(stray_dir.join("notes.txt"), b"hello").unwrap();
    // A valid shard placed in the wrong fan-out directory.
    let (id, bytes) = shard(7, 300);
    std::fs::write(stray_dir.join(format!("{id}.shard")), &bytes).unwrap();
    let (store, report) = try_open(dir.path(), 1 << 20).unwrap();
    assert_eq!(report.quarantined, 2);
    assert_eq!(store.usage().shard_count, 0);
}

/// A real crash: a child process writes shards in a loop and is killed with SIGKILL at a
/// random moment; the store must reopen with only whole, verified shards.
#[test]
fn a_killed_writer_process_leaves_only_whole_shards() {
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    if let Ok(root) = std::env::var("ANDROMEDE_CRASH_CHILD_DIR") {
        // Child: write shards until killed (bounded, in case nobody kills us).
        let store = open(std::path::Path::new(&root), 1 << 30);
        for i in 0..10_000u32 {
            let (id, bytes) = shard((i % 251) as u8, 50_000 + (i as usize % 977));
            store.put(&id, &bytes).unwrap();
        }
        return;
    }
    for round in 0..3u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "store_crash::a_killed_writer_process_leaves_only_whole_shards",
                "--nocapture",
            ])
            .env("ANDROMEDE_CRASH_CHILD_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it write for a while: poll until a few shards exist (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while files_under(&dir.path().join("shards"), ".shard").len() < 5 * (round as usize + 1)
            && std::time::Instant::now() < deadline
        {
            #[allow(
                clippy::disallowed_methods,
                reason = "a synchronous test polling a child process"
            )]
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let (store, _report) = try_open(dir.path(), 1 << 30).unwrap();
        let mut after = None;
        let mut count = 0;
        loop {
            let page = store.list(after.as_ref(), 100).unwrap();
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            for (id, meta) in page {
                let bytes = store.get(&id).unwrap();
                assert_eq!(bytes.len() as u64, meta.size_bytes);
                count += 1;
            }
        }
        assert!(count >= 5, "round {round}: only {count} shards");
        assert!(files_under(&dir.path().join("tmp"), "").is_empty());
    }
}
