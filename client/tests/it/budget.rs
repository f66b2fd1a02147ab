//! A memory budget shared by concurrent encodes: no more segment buffers are alive at
//! once than the budget holds, whatever the number of objects in flight, and every
//! object still round-trips.

use std::sync::Arc;

use andromede_client::{CodecConfig, MasterKey, MemoryBudget, MemoryShards};
use bytes::Bytes;
use futures::TryStreamExt;

use crate::helpers::{SEGMENT, config, data, object, options, runtime};

#[test]
fn concurrent_encodes_stay_within_a_shared_budget() {
    runtime().block_on(async {
        let master = MasterKey::generate();
        // RS(2,1) segments of 64 KiB: a segment in flight counts ~196 KiB; room for two.
        let budget = MemoryBudget::new(2 * 200 * 1024);
        let config = CodecConfig {
            pipeline_depth: 4,
            memory: Some(budget.clone()),
            ..config()
        };
        let shards = Arc::new(MemoryShards::default());
        let bodies: Vec<Vec<u8>> = (0..6).map(|i| data(7 * SEGMENT + 99, i)).collect();
        let encodes = bodies.iter().map(|body| {
            let (config, master, shards) = (config.clone(), master.clone(), Arc::clone(&shards));
            async move {
                andromede_client::encode_object(
                    &config,
                    &master,
                    &object(),
                    &options(2, 1),
                    body.as_slice(),
                    shards.as_ref(),
                )
                .await
                .unwrap()
            }
        });
        let encoded = futures::future::join_all(encodes).await;
        // The budget holds two segments: no encode ever holds more (without it, each
        // reads ahead up to depth + 2 = 6).
        let peak: usize = encoded
            .iter()
            .map(|e| e.peak_buffered_segments)
            .max()
            .unwrap();
        assert!(peak <= 2, "one encode held {peak} segments");
        assert_eq!(budget.available(), budget.bytes(), "every permit came back");
        for (body, encoded) in bodies.iter().zip(encoded) {
            let opened = Arc::new(
                andromede_client::open_manifest(&master, &object(), encoded.manifest).unwrap(),
            );
            let chunks: Vec<Bytes> = opened
                .read(&config, None, Arc::clone(&shards))
                .try_collect()
                .await
                .unwrap();
            assert_eq!(&chunks.concat(), body);
        }
        assert_eq!(budget.available(), budget.bytes());
    });
}
