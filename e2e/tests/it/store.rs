//! The node's shard store holds what the client's codec produces.

use andromede_node::store::{IndexOptions, ShardStore, StoreConfig};

#[test]
fn store_holds_exactly_the_shards_the_codec_produces() {
    // Every shard of an encoded object goes in, comes out verified, and decodes back.
    use andromede_client::{CodecConfig, MasterKey, MemoryShards, ObjectName, PutOptions};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ShardStore::open(&StoreConfig {
        root: dir.path().to_owned(),
        capacity_bytes: 64 << 20,
        index: IndexOptions {
            cache_bytes: 4 * 1024 * 1024,
            flush_every_ms: 100,
        },
    })
    .unwrap()
    .0;
    let shards = MemoryShards::new();
    let master = MasterKey::generate();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let config = CodecConfig {
        segment_bytes: 64 * 1024,
        ..CodecConfig::default()
    };
    let encoded = rt
        .block_on(andromede_client::encode_object(
            &config,
            &master,
            &ObjectName::new("b", "k"),
            &PutOptions::default(),
            &data[..],
            &shards,
        ))
        .unwrap();
    let andromede_cluster::Body::Segments(segments) = &encoded.manifest.body else {
        panic!()
    };
    for segment in segments {
        for (i, id) in segment.shard_ids.iter().enumerate() {
            let bytes = shards.get(u8::try_from(i).unwrap(), id).unwrap();
            store.put(id, &bytes).unwrap();
            assert_eq!(store.get(id).unwrap(), bytes);
        }
    }
    assert_eq!(store.usage().shard_count, segments.len() as u64 * 6);
}
