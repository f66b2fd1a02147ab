//! The chaos workload: writers, overwriters, deleters and readers over a small key space,
//! with bodies derived from (key, sequence) so that every body is known, each operation
//! recorded in a [`History`] for the checkers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use andromede_client::{Client, ClientError, ListOptions, PutObjectOptions};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::checker::{History, Op, WriteOutcome, body_hash};

/// Marks every body: no data directory may ever contain it (invariant 4).
pub const PLAINTEXT_MARKER: &[u8] = b"ANDROMEDE-CHAOS-PLAINTEXT-MARKER";

/// Longest a single operation may take before it counts as timed out.
const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the workload does.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// The bucket it works in.
    pub bucket: String,
    /// Distinct keys.
    pub keys: usize,
    /// Tasks that write, overwrite and delete.
    pub writers: usize,
    /// Tasks that read and list.
    pub readers: usize,
    /// Largest body written.
    pub body_bytes_max: usize,
    /// Seed of every choice.
    pub seed: u64,
}

/// A body for `key`'s write number `seq`: the plaintext marker, then bytes no other
/// (key, seq) produces. Sizes cover inlined, one-segment and multi-segment objects.
pub fn body(key: &str, seq: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.as_bytes());
    hasher.update(&seq.to_le_bytes());
    let mut reader = hasher.finalize_xof();
    out.extend_from_slice(PLAINTEXT_MARKER);
    let mut block = [0u8; 4096];
    while out.len() < len {
        reader.fill(&mut block);
        out.extend_from_slice(&block);
        out.extend_from_slice(PLAINTEXT_MARKER);
    }
    out.truncate(len);
    out
}

/// The recorded history and its clock.
#[derive(Debug, Clone)]
pub struct Recorder {
    start: Instant,
    history: Arc<Mutex<History>>,
}

impl Recorder {
    /// A history whose clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            history: Arc::default(),
        }
    }

    /// Microseconds since the start.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn push(&self, key: &str, start: u64, op: Op) {
        let end = self.now();
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key, start, end, op);
    }

    /// A copy of everything recorded so far.
    pub fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads `key` once and records the answer.
    pub async fn get(&self, client: &Client, bucket: &str, key: &str) {
        let start = self.now();
        let found =
            match tokio::time::timeout(OP_TIMEOUT, client.get_object_bytes(bucket, key)).await {
                Ok(Ok(bytes)) => Some(Some(body_hash(&bytes))),
                Ok(Err(ClientError::NoSuchKey { .. })) => Some(None),
                Ok(Err(_)) | Err(_) => None,
            };
        self.push(key, start, Op::Get { found });
    }

    async fn put(&self, client: &Client, bucket: &str, key: &str, data: Vec<u8>) {
        let start = self.now();
        let hash = body_hash(&data);
        let options = PutObjectOptions {
            size_hint: Some(data.len() as u64),
            ..PutObjectOptions::default()
        };
        let outcome = match tokio::time::timeout(
            OP_TIMEOUT,
            client.put_object(bucket, key, &data[..], options),
        )
        .await
        {
            Ok(Ok(_)) => WriteOutcome::Acked,
            // A failed PUT may have reached some replicas: it may appear later.
            Ok(Err(_)) | Err(_) => WriteOutcome::Maybe,
        };
        self.push(
            key,
            start,
            Op::Put {
                body: hash,
                outcome,
            },
        );
    }

    async fn delete(&self, client: &Client, bucket: &str, key: &str) {
        let start = self.now();
        let outcome =
            match tokio::time::timeout(OP_TIMEOUT, client.delete_object(bucket, key)).await {
                Ok(Ok(())) => WriteOutcome::Acked,
                Ok(Err(_)) | Err(_) => WriteOutcome::Maybe,
            };
        self.push(key, start, Op::Delete { outcome });
    }

    async fn list(&self, client: &Client, bucket: &str) {
        let start = self.now();
        let mut keys = Vec::new();
        let mut options = ListOptions {
            max_keys: 1000,
            ..ListOptions::default()
        };
        let complete = loop {
            match tokio::time::timeout(OP_TIMEOUT, client.list_objects(bucket, &options)).await {
                Ok(Ok(page)) => {
                    keys.extend(page.objects.into_iter().map(|o| o.key));
                    if !page.is_truncated {
                        break true;
                    }
                    options.continuation_token = page.next_continuation_token;
                }
                Ok(Err(_)) | Err(_) => break false,
            }
        };
        self.push(
            "",
            start,
            Op::List {
                keys: complete.then_some(keys),
            },
        );
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// Key number `i`.
pub fn key_name(i: usize) -> String {
    format!("key-{i:04}")
}

/// Runs the workload until `cancel`, recording into `recorder`.
pub async fn run(
    client: Client,
    options: WorkloadOptions,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let next_seq = Arc::new(std::sync::atomic::AtomicU64::new(1));
    for w in 0..options.writers {
        let (client, options, recorder, cancel) = (
            client.clone(),
            options.clone(),
            recorder.clone(),
            cancel.clone(),
        );
        let next_seq = Arc::clone(&next_seq);
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(options.seed ^ ((w as u64 + 1) * 0x9E37));
            while !cancel.is_cancelled() {
                let key = key_name(rng.random_range(0..options.keys));
                if rng.random_range(0..10) == 0 {
                    recorder.delete(&client, &options.bucket, &key).await;
                } else {
                    let seq = next_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // A third inlined, a third one segment, a third up to the maximum.
                    let len = match rng.random_range(0..3) {
                        0 => rng.random_range(1..8 * 1024),
                        1 => rng.random_range(20 * 1024..400 * 1024),
                        _ => {
                            rng.random_range(400 * 1024..options.body_bytes_max.max(400 * 1024 + 1))
                        }
                    };
                    let data = body(&key, seq, len);
                    recorder.put(&client, &options.bucket, &key, data).await;
                }
            }
        });
    }
    for r in 0..options.readers {
        let (client, options, recorder, cancel) = (
            client.clone(),
            options.clone(),
            recorder.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(options.seed ^ ((r as u64 + 101) * 0x7F4A));
            while !cancel.is_cancelled() {
                if rng.random_range(0..20) == 0 {
                    recorder.list(&client, &options.bucket).await;
                } else {
                    let key = key_name(rng.random_range(0..options.keys));
                    recorder.get(&client, &options.bucket, &key).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
