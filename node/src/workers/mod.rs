//! Background workers: bounded, rate-limited, stoppable. The scrubber checks shards; the
//! anti-entropy worker keeps metadata replicas in step; the collector removes replaced and
//! deleted versions.

pub mod anti_entropy;
pub mod gc;
pub mod rate;
pub mod scrub;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::meta::{MetaStore, RecordKey, Table};
use andromede_client::meta::record::Record;
use bytes::Bytes;

/// Runs `pass` every `interval` (the first after one interval) until `cancel`.
pub(crate) async fn every<F, Fut>(interval: Duration, cancel: &CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        pass().await;
    }
}

/// One page of `table` across partitions after `after`, read on a blocking thread.
///
/// # Errors
/// A description of the store failure.
pub(crate) async fn table_page(
    store: &Arc<dyn MetaStore>,
    table: Table,
    after: Option<&RecordKey>,
    limit: usize,
    bytes_max: usize,
) -> Result<Vec<(RecordKey, Record<Bytes>)>, String> {
    let store = Arc::clone(store);
    let after = after.cloned();
    tokio::task::spawn_blocking(move || store.scan_table(table, after.as_ref(), limit, bytes_max))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
