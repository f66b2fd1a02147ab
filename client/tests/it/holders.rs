//! Repair rewrites where shards are: the holder matrix of a manifest survives a rewrite
//! through `set_holders`, encodes with the fewest moves, and the etag (which does not
//! cover placement) still verifies after a round trip through the wire form.

use std::sync::Arc;

use andromede_client::{MasterKey, MemoryShards};
use andromede_cluster::manifest::Manifest;
use bytes::Bytes;

use crate::helpers::*;

fn peer(n: u8) -> Bytes {
    Bytes::from(vec![n; 8])
}

#[test]
fn a_rewritten_placement_round_trips_with_the_fewest_moves() {
    let rt = runtime();
    let shards = Arc::new(MemoryShards::new());
    // Four segments of RS(2,1): three shards each.
    let input = data(3 * SEGMENT + 10, 7);
    let mut manifest = rt
        .block_on(encode(&MasterKey::generate(), &input, 2, 1, &shards))
        .manifest;
    assert_eq!(manifest.segment_count(), 4);
    let mut matrix: Vec<Vec<Bytes>> = vec![vec![peer(0), peer(1), peer(2)]; 4];
    manifest.set_holders(&matrix).unwrap();
    assert!(manifest.moves.is_empty(), "one holder per index: no move");
    assert_eq!(manifest.distinct_holders(), [peer(0), peer(1), peer(2)]);

    // Shard 1 of segments 1 and 2 went to peer 9, shard 2 of segment 3 to peer 8.
    matrix[1][1] = peer(9);
    matrix[2][1] = peer(9);
    matrix[3][2] = peer(8);
    manifest.set_holders(&matrix).unwrap();
    // 9 from segment 1, back to 1 from segment 3, 8 from segment 3.
    assert_eq!(manifest.moves.len(), 3);
    let again = Manifest::decode(&manifest.encode()).unwrap();
    let expected: Vec<Vec<Option<Bytes>>> = matrix
        .iter()
        .map(|row| row.iter().cloned().map(Some).collect())
        .collect();
    assert_eq!(again.holder_matrix(), expected);
    assert_eq!(
        again.distinct_holders(),
        [peer(0), peer(1), peer(2), peer(8), peer(9)]
    );

    // A matrix of the wrong shape is refused and changes nothing.
    let before = again.clone();
    let mut bad = again;
    assert!(bad.set_holders(&matrix[..3]).is_err());
    assert!(bad.set_holders(&vec![vec![peer(0)]; 4]).is_err());
    assert!(bad == before);
}
