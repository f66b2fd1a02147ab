#![allow(
    missing_docs,
    clippy::cast_possible_truncation,
    reason = "benchmark harness; data generators truncate on purpose"
)]
//! Codec benchmarks: the primitives (XChaCha20-Poly1305, Reed-Solomon encode and
//! reconstruct, blake3) on one 8 MiB segment, and the whole encode and decode pipeline on
//! a 64 MiB object with RS(4,2), on one core (pipeline depth 1) and on two (depth 2).
//!
//! Run: `cargo bench -p andromede-client` (add `-- --quick` for a short run).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use andromede_client::{
    BoxError, CodecConfig, EncodedShard, MasterKey, MemoryShards, ObjectName, PutOptions,
    ShardSink, encode_object, open_manifest,
};
use andromede_cluster::shard::{Erasure, ErasureParams, shard_id};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

const SEGMENT: usize = 8 * 1024 * 1024;
const OBJECT: usize = 64 * 1024 * 1024;

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn primitives(c: &mut Criterion) {
    let segment = data(SEGMENT);
    let mut group = c.benchmark_group("primitives");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(SEGMENT as u64));

    let cipher = XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng));
    let mut buf = segment.clone();
    group.bench_function("xchacha20poly1305_seal_8MiB", |b| {
        b.iter(|| {
            let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
            cipher
                .encrypt_in_place_detached(&nonce, b"aad", &mut buf)
                .unwrap()
        })
    });

    let erasure = Erasure::new(ErasureParams::DEFAULT).unwrap();
    group.bench_function("rs_4_2_encode_8MiB", |b| {
        b.iter(|| erasure.encode_parity(&segment).unwrap())
    });

    let shard_bytes = SEGMENT / 4;
    let parity = erasure.encode_parity(&segment).unwrap();
    let all: Vec<Vec<u8>> = segment
        .chunks(shard_bytes)
        .map(<[u8]>::to_vec)
        .chain(parity)
        .collect();
    group.bench_function("rs_4_2_reconstruct_2_data_8MiB", |b| {
        b.iter_batched(
            || {
                let mut shards: Vec<Option<Vec<u8>>> = all.iter().cloned().map(Some).collect();
                shards[0] = None;
                shards[2] = None;
                shards
            },
            |mut shards| erasure.reconstruct(&mut shards, shard_bytes).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });

    group.bench_function("blake3_8MiB", |b| b.iter(|| shard_id(&segment)));
    group.finish();
}

/// A sink that drops shards: measures the codec, not a store.
#[derive(Default)]
struct NullSink(AtomicU64);

impl ShardSink for NullSink {
    async fn put_segment(&self, _segment: u64, shards: &[EncodedShard]) -> Result<(), BoxError> {
        let bytes: usize = shards.iter().map(|s| s.bytes.len()).sum();
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The default codec with `depth` segments in flight (1: one core, 2: both cores).
fn with_depth(depth: usize) -> CodecConfig {
    CodecConfig {
        pipeline_depth: depth,
        ..CodecConfig::default()
    }
}

fn pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let object = data(OBJECT);
    let master = MasterKey::generate();
    let name = ObjectName::new("bench", "object");
    let options = PutOptions::default();
    let mut group = c.benchmark_group("pipeline_64MiB_rs_4_2");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(OBJECT as u64));

    for depth in [1usize, 2] {
        let config = with_depth(depth);
        group.bench_function(format!("encode_depth_{depth}"), |b| {
            b.iter(|| {
                let sink = NullSink::default();
                runtime
                    .block_on(encode_object(
                        &config,
                        &master,
                        &name,
                        &options,
                        &object[..],
                        &sink,
                    ))
                    .unwrap()
            })
        });
    }

    let shards = Arc::new(MemoryShards::new());
    let config = CodecConfig::default();
    let encoded = runtime
        .block_on(encode_object(
            &config,
            &master,
            &name,
            &options,
            &object[..],
            shards.as_ref(),
        ))
        .unwrap();
    let opened = Arc::new(open_manifest(&master, &name, encoded.manifest).unwrap());
    for depth in [1usize, 2] {
        let config = with_depth(depth);
        group.bench_function(format!("decode_depth_{depth}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut stream = Arc::clone(&opened).read(&config, None, Arc::clone(&shards));
                    let mut total = 0usize;
                    while let Some(chunk) = stream.next().await {
                        total += chunk.unwrap().len();
                    }
                    assert_eq!(total, OBJECT);
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, primitives, pipeline);
criterion_main!(benches);
