//! The shard store's durable put (hash check, temp file, fsync, rename, directory fsync,
//! index flush) on the real disk, with one writer and with four: what repair and client
//! PUTs can expect of one node. `cargo bench -p andromede-node --bench store`.

use std::time::{Duration, Instant};

use andromede_cluster::shard::hash::shard_id;
use andromede_node::store::{IndexOptions, ShardStore, StoreConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// The shard size of the default RS(4,2) with 8 MiB segments.
const SHARD_BYTES: usize = 2 << 20;

/// `count` distinct shards of `SHARD_BYTES`, each with its id.
fn shards(count: usize, seed: u64) -> Vec<(andromede_proto::ShardId, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64 + 1);
            let bytes: Vec<u8> = (0..SHARD_BYTES / 8)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()
                })
                .collect();
            (shard_id(&bytes), bytes)
        })
        .collect()
}

fn put(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_put_2MiB");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(SHARD_BYTES as u64));
    for writers in [1usize, 4] {
        group.bench_with_input(
            BenchmarkId::new("writers", writers),
            &writers,
            |b, &writers| {
                let mut seed = 0;
                b.iter_custom(|iters| {
                    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
                    let (store, _) = ShardStore::open(&StoreConfig {
                        root: dir.path().to_path_buf(),
                        capacity_bytes: u64::MAX / 2,
                        index: IndexOptions::default(),
                    })
                    .expect("open store");
                    seed += 1;
                    let count = usize::try_from(iters).expect("iterations fit usize");
                    let all = shards(count, seed);
                    let per = count.div_ceil(writers).max(1);
                    let start = Instant::now();
                    std::thread::scope(|scope| {
                        for part in all.chunks(per) {
                            let store = store.clone();
                            scope.spawn(move || {
                                for (id, bytes) in part {
                                    store.put(id, bytes).expect("put");
                                }
                            });
                        }
                    });
                    start.elapsed()
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, put);
criterion_main!(benches);
