//! Round trips over sizes, erasure codes and losses; the memory bound; unknown lengths.

use std::sync::Arc;

use andromede_client::{CodecError, MasterKey, MemoryShards};
use andromede_cluster::Body;
use bytes::Bytes;
use proptest::prelude::*;

use crate::helpers::*;

#[test]
fn every_interesting_size_round_trips_for_every_code() {
    let rt = runtime();
    let master = MasterKey::generate();
    for &(k, m) in PARAMS {
        for &size in INTERESTING_SIZES {
            rt.block_on(async {
                let input = data(size, size ^ u64::from(k));
                let shards = Arc::new(MemoryShards::new());
                let encoded = encode(&master, &input, k, m, &shards).await;
                assert_eq!(encoded.manifest.size, size);
                let inline = matches!(encoded.manifest.body, Body::Inline(_));
                assert_eq!(inline, size <= INLINE, "size {size}");
                let expected_shards = size.div_ceil(SEGMENT) * u64::from(k + m);
                if !inline {
                    assert_eq!(shards.len() as u64, expected_shards, "size {size}");
                }
                let output = decode(&master, &encoded.manifest.encode(), None, shards)
                    .await
                    .unwrap();
                assert_eq!(output, input, "size {size}, RS({k},{m})");
            });
        }
    }
}

#[test]
fn all_data_shards_present_means_no_parity_fetched() {
    let rt = runtime();
    let master = MasterKey::generate();
    rt.block_on(async {
        let input = data(3 * SEGMENT + 1, 7);
        let shards = Arc::new(MemoryShards::new());
        let encoded = encode(&master, &input, 4, 2, &shards).await;
        shards.reset_fetch_count();
        let output = decode(
            &master,
            &encoded.manifest.encode(),
            None,
            Arc::clone(&shards),
        )
        .await
        .unwrap();
        assert_eq!(output, input);
        // 4 segments × k = 4 data shards, and not one parity shard.
        assert_eq!(shards.fetch_count(), 16);
    });
}

#[test]
fn memory_is_bounded_by_pipeline_depth_not_object_size() {
    let rt = runtime();
    let master = MasterKey::generate();
    rt.block_on(async {
        let input = data(40 * SEGMENT + 3, 9);
        let shards = MemoryShards::new();
        let encoded = encode(&master, &input, 4, 2, &shards).await;
        assert_eq!(encoded.manifest.segment_count(), 41);
        // depth 2 in coding + 1 waiting for the sink + 1 being read.
        let depth = config().pipeline_depth;
        assert!(
            encoded.peak_buffered_segments <= depth + 2,
            "peak {} segments buffered with depth {depth}",
            encoded.peak_buffered_segments
        );
        assert!(encoded.peak_buffered_segments >= 1);
    });
}

#[test]
fn unknown_length_input_in_small_chunks_round_trips() {
    let rt = runtime();
    let master = MasterKey::generate();
    rt.block_on(async {
        let input = data(2 * SEGMENT + 999, 3);
        // 1000-byte chunks from a stream: the encoder never learns the length up front.
        let chunks: Vec<std::io::Result<Bytes>> = input
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let reader = tokio_util::io::StreamReader::new(futures::stream::iter(chunks));
        let shards = Arc::new(MemoryShards::new());
        let encoded = andromede_client::encode_object(
            &config(),
            &master,
            &object(),
            &options(2, 1),
            reader,
            shards.as_ref(),
        )
        .await
        .unwrap();
        assert_eq!(encoded.manifest.segment_count(), 3);
        let output = decode(&master, &encoded.manifest.encode(), None, shards)
            .await
            .unwrap();
        assert_eq!(output, input);
    });
}

#[test]
fn user_metadata_and_content_type_survive_and_are_sealed() {
    let rt = runtime();
    let master = MasterKey::generate();
    rt.block_on(async {
        let mut options = options(2, 1);
        options.content_type = "text/plain".into();
        options
            .user_metadata
            .insert("secret-owner".into(), "PLAINTEXT-MARKER-42".into());
        let shards = MemoryShards::new();
        let encoded = encode_with(&config(), &master, &object(), &options, b"hello", &shards)
            .await
            .unwrap();
        let bytes = encoded.manifest.encode();
        let marker = b"PLAINTEXT-MARKER-42";
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
        assert!(!bytes.windows(5).any(|w| w == b"hello"));
        let manifest = andromede_cluster::Manifest::decode(&bytes).unwrap();
        assert_eq!(manifest.content_type, "text/plain");
        let opened = andromede_client::open_manifest(&master, &object(), manifest).unwrap();
        assert_eq!(opened.user_metadata().unwrap(), options.user_metadata);
    });
}

#[test]
fn oversize_names_and_metadata_are_refused_before_reading() {
    let rt = runtime();
    let master = MasterKey::generate();
    rt.block_on(async {
        let shards = MemoryShards::new();
        let long_key = andromede_client::ObjectName::new("b", "k".repeat(1025));
        let err = encode_with(&config(), &master, &long_key, &options(2, 1), b"x", &shards)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            CodecError::TooLarge {
                field: "object key",
                ..
            }
        ));
        let mut big_meta = options(2, 1);
        big_meta.user_metadata.insert("k".into(), "v".repeat(9000));
        let err = encode_with(&config(), &master, &object(), &big_meta, b"x", &shards)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            CodecError::TooLarge {
                field: "user metadata",
                ..
            }
        ));
        let mut bad_config = config();
        bad_config.segment_bytes = 1000;
        let err = encode_with(
            &bad_config,
            &master,
            &object(),
            &options(2, 1),
            b"x",
            &shards,
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidParameter {
                field: "segment_bytes",
                ..
            }
        ));
        assert!(shards.is_empty());
    });
}

/// What happens to one shard in a loss schedule.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Lose,
    Corrupt(usize),
    Truncate,
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::Lose),
        any::<usize>().prop_map(Damage::Corrupt),
        Just(Damage::Truncate),
    ]
}

fn apply(
    shards: &MemoryShards,
    segment: &andromede_cluster::SegmentEntry,
    index: usize,
    damage: Damage,
) {
    let (slot, id) = (u8::try_from(index).unwrap(), &segment.shard_ids[index]);
    match damage {
        Damage::Lose => {
            assert!(shards.remove(slot, id));
        }
        Damage::Corrupt(at) => {
            let mut bytes = shards.get(slot, id).unwrap().to_vec();
            let at = at % bytes.len();
            bytes[at] ^= 0x5a;
            shards.replace(slot, id, bytes.into());
        }
        Damage::Truncate => {
            let bytes = shards.get(slot, id).unwrap();
            shards.replace(slot, id, bytes.slice(..bytes.len() - 1));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Up to m damaged shards in every segment: decode equals the input.
    #[test]
    fn decode_survives_up_to_m_damaged_shards_per_segment(
        size in 0u64..(4 * SEGMENT + 100),
        code in proptest::sample::select(PARAMS),
        picks in proptest::collection::vec((any::<proptest::sample::Index>(), damage_strategy()), 0..8),
        seed in any::<u64>(),
    ) {
        let (k, m) = code;
        let rt = runtime();
        let master = MasterKey::generate();
        let input = data(size, seed);
        let shards = Arc::new(MemoryShards::new());
        let encoded = rt.block_on(encode(&master, &input, k, m, &shards));
        if let Body::Segments(segments) = &encoded.manifest.body {
            for segment in segments {
                // Damage at most m distinct shards of this segment.
                let mut chosen: Vec<usize> = picks.iter().map(|(i, _)| i.index(segment.shard_ids.len())).collect();
                chosen.sort_unstable();
                chosen.dedup();
                for (shard, (_, damage)) in chosen.iter().zip(&picks).take(m as usize) {
                    apply(&shards, segment, *shard, *damage);
                }
            }
        }
        let output = rt.block_on(decode(&master, &encoded.manifest.encode(), None, shards)).unwrap();
        prop_assert_eq!(output, input);
    }

    /// m+1 damaged shards in one segment: a clear error naming that segment, never bytes
    /// of that segment.
    #[test]
    fn decode_fails_clearly_with_m_plus_one_damaged_shards(
        segments_count in 1u64..4,
        code in proptest::sample::select(PARAMS),
        victim in any::<proptest::sample::Index>(),
        damages in proptest::collection::vec(damage_strategy(), 8),
        first in any::<proptest::sample::Index>(),
    ) {
        let (k, m) = code;
        let rt = runtime();
        let master = MasterKey::generate();
        let input = data(segments_count * SEGMENT - 10, 11);
        let shards = Arc::new(MemoryShards::new());
        let encoded = rt.block_on(encode(&master, &input, k, m, &shards));
        let Body::Segments(segments) = &encoded.manifest.body else { unreachable!() };
        let victim = victim.index(segments.len());
        let count = segments[victim].shard_ids.len();
        let start = first.index(count);
        for (n, damage) in damages.iter().take(m as usize + 1).enumerate() {
            apply(&shards, &segments[victim], (start + n) % count, *damage);
        }
        let err = rt.block_on(decode(&master, &encoded.manifest.encode(), None, shards)).unwrap_err();
        let is_unrecoverable = matches!(
            err,
            CodecError::SegmentUnrecoverable { segment, needed, .. }
                if segment == victim as u64 && u32::from(needed) == k
        );
        prop_assert!(is_unrecoverable, "unexpected error: {err}");
    }
}
