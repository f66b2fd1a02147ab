//! The metadata replica's holder index (peer → manifests with a shard on it), as repair
//! uses it: it follows the winning manifest record, forgets collected versions, and is
//! rebuilt from the records when it is missing.

use andromede_cluster::meta::hlc::Timestamp;
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{Record, Version, WriterId};
use andromede_node::meta::MetaStore;
use andromede_node::meta::replica::SledMetaStore;
use andromede_node::store::IndexOptions;
use bytes::Bytes;

fn version(wall_ms: u64) -> Version {
    Version {
        timestamp: Timestamp {
            wall_ms,
            logical: 0,
        },
        writer: WriterId::new(Bytes::from_static(b"writer")).unwrap(),
    }
}

fn open(dir: &std::path::Path) -> SledMetaStore {
    SledMetaStore::open(
        dir,
        IndexOptions {
            cache_bytes: 1 << 20,
            flush_every_ms: 100,
        },
    )
    .unwrap()
}

/// A two-segment RS(2,1) manifest placed on `holders` (three peer names).
fn manifest_on(holders: [&'static [u8]; 3]) -> Bytes {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let shards = andromede_client::MemoryShards::new();
    let config = andromede_client::CodecConfig {
        segment_bytes: 64 * 1024,
        inline_bytes_max: 16 * 1024,
        pipeline_depth: 1,
        memory: None,
    };
    let options = andromede_client::PutOptions {
        params: andromede_client::ErasureParams::new(2, 1).unwrap(),
        ..Default::default()
    };
    let data = vec![7u8; 100 * 1024];
    let mut manifest = rt
        .block_on(andromede_client::encode_object(
            &config,
            &andromede_client::MasterKey::generate(),
            &andromede_client::ObjectName::new("b", "k"),
            &options,
            &data[..],
            &shards,
        ))
        .unwrap()
        .manifest;
    let row: Vec<Bytes> = holders.iter().map(|h| Bytes::from_static(h)).collect();
    manifest.set_holders(&[row.clone(), row]).unwrap();
    Bytes::from(manifest.encode())
}

#[test]
fn the_holder_index_follows_the_winning_manifest_and_is_rebuilt_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let key = RecordKey {
        table: Table::Manifest,
        partition: "b".into(),
        sort: b"version-1".to_vec(),
    };
    let other = RecordKey {
        sort: b"version-2".to_vec(),
        ..key.clone()
    };
    let held_by = |store: &SledMetaStore, peer: &[u8]| {
        store
            .versions_held_by(peer, None, 10)
            .unwrap()
            .into_iter()
            .map(|k| k.sort)
            .collect::<Vec<_>>()
    };
    {
        let store = open(dir.path());
        store
            .apply(&[
                (
                    key.clone(),
                    Record::live(version(1), manifest_on([b"A", b"B", b"C"])),
                ),
                (
                    other.clone(),
                    Record::live(version(1), manifest_on([b"A", b"E", b"F"])),
                ),
            ])
            .unwrap();
        assert_eq!(
            held_by(&store, b"A"),
            [b"version-1".to_vec(), b"version-2".to_vec()]
        );
        assert_eq!(
            store.versions_held_by(b"A", Some(&key), 10).unwrap(),
            vec![other.clone()]
        );
        assert_eq!(held_by(&store, b"C"), [b"version-1".to_vec()]);
        // Repair moved C's shards to D: the newer manifest wins, the index follows.
        store
            .apply(&[(
                key.clone(),
                Record::live(version(2), manifest_on([b"A", b"B", b"D"])),
            )])
            .unwrap();
        assert!(held_by(&store, b"C").is_empty());
        assert_eq!(held_by(&store, b"D"), [b"version-1".to_vec()]);
        // An older manifest changes nothing.
        store
            .apply(&[(
                key.clone(),
                Record::live(version(1), manifest_on([b"A", b"B", b"C"])),
            )])
            .unwrap();
        assert!(held_by(&store, b"C").is_empty());
        // A collected version leaves the index.
        store
            .apply(&[(other.clone(), Record::tombstone(version(3)))])
            .unwrap();
        assert_eq!(held_by(&store, b"A"), [b"version-1".to_vec()]);
        assert!(held_by(&store, b"E").is_empty());
    }
    // A store from before the index (or a lost index) is rebuilt on open.
    {
        let db = sled::open(dir.path()).unwrap();
        assert!(db.drop_tree("holders").unwrap());
        db.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(held_by(&store, b"D"), [b"version-1".to_vec()]);
    assert_eq!(held_by(&store, b"B"), [b"version-1".to_vec()]);
    assert!(held_by(&store, b"C").is_empty());
    assert!(held_by(&store, b"").is_empty());
}
