//! Any flipped byte — in a shard, in the manifest, in an inlined body — is detected:
//! decoding returns the original bytes or an error, never other bytes. Wrong keys and
//! misplaced manifests give clear errors.

use std::sync::Arc;

use andromede_client::{CodecError, MasterKey, MemoryShards, ObjectName, open_manifest};
use andromede_cluster::Body;
use andromede_proto::{Message, pb};
use proptest::prelude::*;

use crate::helpers::*;

/// Every byte of the manifest, flipped two ways: never wrong bytes.
fn flip_every_manifest_byte(size: u64) {
    let rt = runtime();
    let master = MasterKey::generate();
    let input = data(size, 1);
    let shards = Arc::new(MemoryShards::new());
    let manifest = rt
        .block_on(encode(&master, &input, 2, 1, &shards))
        .manifest
        .encode();
    let mut detected = 0;
    for at in 0..manifest.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = manifest.clone();
            bad[at] ^= mask;
            match rt.block_on(decode(&master, &bad, None, Arc::clone(&shards))) {
                Ok(output) => assert_eq!(output, input, "flip at {at} returned other bytes"),
                Err(_) => detected += 1,
            }
        }
    }
    // Every byte of the manifest is covered by the etag or the wrapped key's binding.
    assert_eq!(detected, manifest.len() * 2, "some flips went unnoticed");
}

#[test]
fn flipping_any_manifest_byte_of_an_inlined_object_is_detected() {
    flip_every_manifest_byte(1000);
}

#[test]
fn flipping_any_manifest_byte_of_a_segmented_object_is_detected() {
    flip_every_manifest_byte(2 * SEGMENT + 3);
}

#[test]
fn a_valid_shard_in_the_wrong_place_is_detected() {
    let rt = runtime();
    let master = MasterKey::generate();
    let input = data(2 * SEGMENT, 2);
    let shards = Arc::new(MemoryShards::new());
    let encoded = rt.block_on(encode(&master, &input, 2, 1, &shards));
    let Body::Segments(segments) = &encoded.manifest.body else {
        unreachable!()
    };
    // Store segment 1's first shard under segment 0's first shard id.
    let other = shards.get(0, &segments[1].shard_ids[0]).unwrap();
    shards.replace(0, &segments[0].shard_ids[0], other);
    let output = rt
        .block_on(decode(&master, &encoded.manifest.encode(), None, shards))
        .unwrap();
    assert_eq!(output, input);
}

#[test]
fn wrong_master_key_and_misplaced_manifest_give_clear_errors() {
    let rt = runtime();
    let master = MasterKey::generate();
    let shards = Arc::new(MemoryShards::new());
    let encoded = rt.block_on(encode(&master, &data(100, 3), 2, 1, &shards));
    let err =
        open_manifest(&MasterKey::generate(), &object(), encoded.manifest.clone()).unwrap_err();
    assert!(matches!(err, CodecError::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("another master key"));
    let elsewhere = ObjectName::new("bucket", "another/key");
    let err = open_manifest(&master, &elsewhere, encoded.manifest.clone()).unwrap_err();
    assert!(matches!(err, CodecError::ManifestCorrupt { .. }), "{err}");
}

#[test]
fn inconsistent_manifests_are_refused() {
    let rt = runtime();
    let master = MasterKey::generate();
    let shards = Arc::new(MemoryShards::new());
    let encoded = rt.block_on(encode(&master, &data(2 * SEGMENT, 4), 4, 2, &shards));
    let good = pb::Manifest::from(&encoded.manifest);
    type Mutation = Box<dyn Fn(&mut pb::Manifest)>;
    let variants: Vec<(&str, Mutation)> = vec![
        (
            "k and m swapped",
            Box::new(|p| std::mem::swap(&mut p.k, &mut p.m)),
        ),
        ("k = 0", Box::new(|p| p.k = 0)),
        (
            "k + m = 256",
            Box::new(|p| {
                p.k = 200;
                p.m = 56;
            }),
        ),
        (
            "a shard id missing",
            Box::new(|p| {
                if let Some(pb::manifest::Body::Segments(s)) = &mut p.body {
                    s.segments[0].shard_ids.pop();
                }
            }),
        ),
        (
            "a short shard id",
            Box::new(|p| {
                if let Some(pb::manifest::Body::Segments(s)) = &mut p.body {
                    s.segments[1].shard_ids[0].truncate(31);
                }
            }),
        ),
        ("size too large", Box::new(|p| p.size += 1)),
        (
            "a segment dropped",
            Box::new(|p| {
                if let Some(pb::manifest::Body::Segments(s)) = &mut p.body {
                    s.segments.pop();
                }
            }),
        ),
        ("unknown format", Box::new(|p| p.format_version = 2)),
        ("tiny segments", Box::new(|p| p.segment_bytes = 10)),
        ("no body", Box::new(|p| p.body = None)),
        ("no key", Box::new(|p| p.wrapped_key = None)),
    ];
    for (what, mutate) in variants {
        let mut bad = good.clone();
        mutate(&mut bad);
        let result = andromede_cluster::Manifest::decode(&bad.encode_to_vec());
        assert!(result.is_err(), "{what} was accepted");
    }
    let err = andromede_cluster::Manifest::decode(&{
        let mut v = good.clone();
        v.format_version = 2;
        v.encode_to_vec()
    })
    .unwrap_err();
    assert!(matches!(
        err,
        andromede_cluster::ManifestError::UnsupportedVersion { found: 2, .. }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the manifest decoder.
    #[test]
    fn arbitrary_manifest_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = andromede_cluster::Manifest::decode(&bytes);
    }

    /// Any byte of any shard, flipped: decode still returns exactly the input.
    #[test]
    fn flipping_any_shard_byte_is_detected(
        shard in any::<proptest::sample::Index>(),
        at in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let rt = runtime();
        let master = MasterKey::generate();
        let input = data(2 * SEGMENT + 5, 6);
        let shards = Arc::new(MemoryShards::new());
        let encoded = rt.block_on(encode(&master, &input, 3, 1, &shards));
        let Body::Segments(segments) = &encoded.manifest.body else { unreachable!() };
        let slots: Vec<_> = segments
            .iter()
            .flat_map(|s| s.shard_ids.iter().enumerate().map(|(i, id)| (u8::try_from(i).unwrap(), *id)))
            .collect();
        let (slot, id) = slots[shard.index(slots.len())];
        let mut bytes = shards.get(slot, &id).unwrap().to_vec();
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        shards.replace(slot, &id, bytes.into());
        let output = rt.block_on(decode(&master, &encoded.manifest.encode(), None, shards)).unwrap();
        prop_assert_eq!(output, input);
    }
}

/// An assembled (multipart) manifest: every flipped byte fails to decode or to open.
#[test]
fn flipping_any_byte_of_an_assembled_manifest_is_detected() {
    let master = MasterKey::generate();
    let parts = vec![
        andromede_cluster::manifest::PartRef {
            version_id: andromede_proto::VersionId([1; 16]),
            size: 5 << 20,
        },
        andromede_cluster::manifest::PartRef {
            version_id: andromede_proto::VersionId([2; 16]),
            size: 123,
        },
    ];
    let manifest = andromede_client::codec::assemble_manifest(
        &master,
        &object(),
        andromede_proto::VersionId([3; 16]),
        &options(2, 1),
        SEGMENT,
        parts,
    )
    .unwrap();
    assert_eq!(manifest.size, (5 << 20) + 123);
    let bytes = manifest.encode();
    let opens = |bytes: &[u8]| {
        andromede_cluster::Manifest::decode(bytes)
            .ok()
            .and_then(|m| open_manifest(&master, &object(), m).ok())
    };
    assert!(opens(&bytes).is_some());
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            assert!(opens(&bad).is_none(), "flip at {at} went unnoticed");
        }
    }
    // Another object's name does not open it.
    assert!(open_manifest(&master, &ObjectName::new("bucket", "other"), manifest).is_err());
}

/// A copy made in place (the data key re-wrapped for a new name, the shards reused)
/// reads back the same bytes under its own name only; any flipped byte of it, its
/// `sealed_as` included, gives the original bytes or an error.
#[test]
fn a_rewrapped_copy_reads_the_same_shards_and_is_bound_to_its_name() {
    let rt = runtime();
    let master = MasterKey::generate();
    let input = data(2 * SEGMENT + 7, 5);
    let shards = Arc::new(MemoryShards::new());
    let encoded = rt.block_on(encode(&master, &input, 2, 1, &shards));
    let source = open_manifest(&master, &object(), encoded.manifest.clone()).unwrap();
    let copy_name = ObjectName::new("elsewhere", "copied");
    let copy = source
        .rewrap(
            &master,
            &copy_name,
            andromede_proto::VersionId([9; 16]),
            "text/x-copy",
            &std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        )
        .unwrap();
    assert_eq!(copy.sealed_as, Some(encoded.manifest.version_id));
    let read = |bytes: &[u8], name: &ObjectName| -> Result<Vec<u8>, String> {
        let manifest = andromede_cluster::Manifest::decode(bytes).map_err(|e| e.to_string())?;
        let opened = Arc::new(open_manifest(&master, name, manifest).map_err(|e| e.to_string())?);
        let chunks: Vec<bytes::Bytes> = rt
            .block_on(futures::TryStreamExt::try_collect(opened.read(
                &config(),
                None,
                Arc::clone(&shards),
            )))
            .map_err(|e: CodecError| e.to_string())?;
        Ok(chunks.concat())
    };
    let bytes = copy.encode();
    assert_eq!(read(&bytes, &copy_name).unwrap(), input);
    assert!(
        read(&bytes, &object()).is_err(),
        "the copy opened under the source's name"
    );
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        if let Ok(output) = read(&bad, &copy_name) {
            assert_eq!(output, input, "flip at {at} returned other bytes");
        }
    }
    // Only a segmented version is copied in place.
    let small = rt.block_on(encode(&master, b"tiny", 2, 1, &shards));
    let small = open_manifest(&master, &object(), small.manifest).unwrap();
    assert!(
        small
            .rewrap(
                &master,
                &copy_name,
                andromede_proto::VersionId([8; 16]),
                "t",
                &Default::default()
            )
            .is_err()
    );
}
