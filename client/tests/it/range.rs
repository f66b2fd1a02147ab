//! Range reads equal the matching slice and fetch only the segments they touch.

use std::sync::Arc;

use andromede_client::{MasterKey, MemoryShards};
use proptest::prelude::*;

use crate::helpers::*;

#[test]
fn edge_ranges() {
    let rt = runtime();
    let master = MasterKey::generate();
    rt.block_on(async {
        let size = 3 * SEGMENT + 17;
        let input = data(size, 5);
        let shards = Arc::new(MemoryShards::new());
        let manifest = encode(&master, &input, 4, 2, &shards)
            .await
            .manifest
            .encode();
        for (start, end) in [
            (0, 0),
            (size, size),
            (size - 1, size),
            (size - 17, size + 1000),
            (SEGMENT - 1, SEGMENT + 1),
            (SEGMENT, 2 * SEGMENT),
            (size + 5, size + 10),
        ] {
            let got = decode(&master, &manifest, Some(start..end), Arc::clone(&shards))
                .await
                .unwrap();
            let end_clamped = end.min(size) as usize;
            let start_clamped = (start as usize).min(end_clamped);
            assert_eq!(
                got,
                &input[start_clamped..end_clamped],
                "range {start}..{end}"
            );
        }
        // A range inside one segment fetches that segment's data shards only.
        shards.reset_fetch_count();
        decode(
            &master,
            &manifest,
            Some(SEGMENT + 10..SEGMENT + 20),
            Arc::clone(&shards),
        )
        .await
        .unwrap();
        assert_eq!(shards.fetch_count(), 4);
        // An empty range fetches nothing.
        shards.reset_fetch_count();
        decode(&master, &manifest, Some(5..5), Arc::clone(&shards))
            .await
            .unwrap();
        assert_eq!(shards.fetch_count(), 0);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_ranges_equal_the_slice(
        size in 0u64..(3 * SEGMENT + 50),
        a in any::<proptest::sample::Index>(),
        b in any::<proptest::sample::Index>(),
        code in proptest::sample::select(PARAMS),
    ) {
        let rt = runtime();
        let master = MasterKey::generate();
        let input = data(size, size);
        let shards = Arc::new(MemoryShards::new());
        let manifest = rt.block_on(encode(&master, &input, code.0, code.1, &shards)).manifest.encode();
        let (x, y) = (a.index(size as usize + 1), b.index(size as usize + 1));
        let (start, end) = (x.min(y), x.max(y));
        let got = rt.block_on(decode(&master, &manifest, Some(start as u64..end as u64), shards)).unwrap();
        prop_assert_eq!(got, &input[start..end]);
    }
}
