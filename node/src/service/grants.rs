//! Grants enforced on clients' metadata requests (DESIGN.md, "Trust model": every node
//! checks every request against the requester's certificate).
//!
//! What each written record needs is [`andromede_cluster::meta::authorship`]'s rule (the
//! same rule checks its author's seal); the requester of a write needs it too. Reads:
//! - reading (get, scan) any of the bucket's records: any right on it — a writer reads the
//!   entry it replaces, an owner checks the bucket is empty; object contents stay sealed
//!   under the tenant's master key whatever the grants;
//! - listing the bucket directory: allowed, and answered with only the buckets the client
//!   holds a right on;
//! - client-private values (the S3 gateway's access keys): a client holding `owner` on
//!   some buckets (a program that administers the tenant's buckets, not a mere reader or
//!   writer).
//!
//! Nodes are not bound by grants: what their jobs may write is bounded by the jobs
//! (the records' seals, [`andromede_cluster::meta::authorship`]).

use andromede_cluster::authority::{Grant, Rights, grant::rights_on};
use andromede_cluster::meta::authorship::{administers, client_refusal};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::net::message::ShardRequest;
use andromede_cluster::net::meta_message::MetaRequest;

/// Why a client's request is refused, in words the CLI shows as they are.
pub(crate) fn refusal(request: &MetaRequest, grants: &[Grant]) -> Option<String> {
    match request {
        MetaRequest::Apply(records) => records
            .iter()
            .find_map(|(key, record)| client_refusal(key, record.is_tombstone(), grants)),
        MetaRequest::Get(key) => refused_read(key.table, &key.partition, key_bucket(key), grants),
        MetaRequest::Scan {
            table, partition, ..
        } => refused_read(*table, partition, None, grants),
        _ => None,
    }
}

/// Why a client's shard request is refused: shards are named by their content, not by
/// bucket, so storing one needs the `write` right on some bucket, and fetching or asking
/// for one some right on some bucket (a client certified for nothing gets nothing).
pub(crate) fn shard_refusal(request: &ShardRequest, grants: &[Grant]) -> Option<String> {
    match request {
        ShardRequest::Put { .. } => (!grants.iter().any(|g| g.rights.contains(Rights::WRITE)))
            .then(|| "this client may not store shards (it may write no bucket)".to_owned()),
        _ => grants
            .is_empty()
            .then(|| "this client may not fetch shards (it holds no grant)".to_owned()),
    }
}

/// Whether a client holding `grants` sees `bucket` in the bucket directory.
pub(crate) fn sees_bucket(grants: &[Grant], bucket: &[u8]) -> bool {
    std::str::from_utf8(bucket).is_ok_and(|b| !rights_on(grants, b).is_empty())
}

/// The bucket a bucket-directory key names.
fn key_bucket(key: &RecordKey) -> Option<&[u8]> {
    (key.table == Table::Bucket).then_some(key.sort.as_slice())
}

fn refused_read(
    table: Table,
    partition: &str,
    bucket: Option<&[u8]>,
    grants: &[Grant],
) -> Option<String> {
    match table {
        Table::Private => (!administers(grants)).then(|| {
            "this client may not read client-private values (it needs the owner right on some bucket)".to_owned()
        }),
        // The directory is listed (filtered), and a bucket's own record read, by any
        // client with a right on it.
        Table::Bucket => match bucket {
            Some(name) if !sees_bucket(grants, name) => Some(format!(
                "this client may not read bucket {}",
                String::from_utf8_lossy(name)
            )),
            _ => None,
        },
        _ => rights_on(grants, partition)
            .is_empty()
            .then(|| format!("this client may not read bucket {partition}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andromede_cluster::meta::hlc::Timestamp;
    use andromede_cluster::meta::record::{Record, Version, WriterId};
    use andromede_cluster::net::meta_message::KeyedRecord;
    use bytes::Bytes;

    fn grants(text: &[&str]) -> Vec<Grant> {
        text.iter().map(|g| g.parse().unwrap()).collect()
    }

    fn record(table: Table, partition: &str, sort: &str, live: bool) -> KeyedRecord {
        let version = Version {
            timestamp: Timestamp {
                wall_ms: 1,
                logical: 0,
            },
            writer: WriterId::new(Bytes::from_static(b"writer")).unwrap(),
        };
        let key = RecordKey {
            table,
            partition: partition.to_owned(),
            sort: sort.as_bytes().to_vec(),
        };
        let record = if live {
            Record::live(version, Bytes::from_static(b"v"))
        } else {
            Record::tombstone(version)
        };
        (key, record)
    }

    fn apply(records: Vec<KeyedRecord>) -> MetaRequest {
        MetaRequest::Apply(records)
    }

    #[test]
    fn each_record_needs_its_right_on_its_bucket() {
        let reader = grants(&["photos:read"]);
        let writer = grants(&["photos:write"]);
        let deleter = grants(&["photos:delete"]);
        let owner = grants(&["photos*:all"]);
        let put = apply(vec![
            record(Table::Manifest, "photos", "v1", true),
            record(Table::ObjectIndex, "photos", "cat.jpg", true),
        ]);
        let delete = apply(vec![
            record(Table::Garbage, "photos", "v1", true),
            record(Table::ObjectIndex, "photos", "cat.jpg", false),
        ]);
        let create = apply(vec![record(Table::Bucket, "", "photos", true)]);
        assert_eq!(
            refusal(&put, &reader).as_deref(),
            Some("this client may not write bucket photos")
        );
        assert_eq!(refusal(&put, &writer), None);
        assert_eq!(
            refusal(&delete, &writer).as_deref(),
            Some("this client may not delete from bucket photos")
        );
        assert_eq!(refusal(&delete, &deleter), None);
        assert!(refusal(&create, &writer).is_some());
        assert_eq!(refusal(&create, &owner), None);
        // Another bucket: nothing.
        let elsewhere = apply(vec![record(Table::ObjectIndex, "docs", "a", true)]);
        assert_eq!(
            refusal(&elsewhere, &owner).as_deref(),
            Some("this client may not write bucket docs")
        );
        // One refused record refuses the batch.
        let mixed = apply(vec![
            record(Table::ObjectIndex, "photos", "a", true),
            record(Table::ObjectIndex, "docs", "a", true),
        ]);
        assert!(refusal(&mixed, &writer).is_some());
    }

    #[test]
    fn reads_need_a_right_on_the_bucket_and_the_directory_shows_only_those() {
        let reader = grants(&["photos:read"]);
        let scan = |table, partition: &str| MetaRequest::Scan {
            table,
            partition: partition.to_owned(),
            prefix: Vec::new(),
            start_after: None,
            limit: 10,
        };
        assert_eq!(refusal(&scan(Table::ObjectIndex, "photos"), &reader), None);
        assert_eq!(
            refusal(&scan(Table::ObjectIndex, "docs"), &reader).as_deref(),
            Some("this client may not read bucket docs")
        );
        assert_eq!(refusal(&scan(Table::Bucket, ""), &reader), None);
        assert!(sees_bucket(&reader, b"photos"));
        assert!(!sees_bucket(&reader, b"docs"));
        let get = |sort: &str| {
            MetaRequest::Get(RecordKey {
                table: Table::Bucket,
                partition: String::new(),
                sort: sort.as_bytes().to_vec(),
            })
        };
        assert_eq!(refusal(&get("photos"), &reader), None);
        assert!(refusal(&get("docs"), &reader).is_some());
        assert!(refusal(&scan(Table::Private, ""), &reader).is_some());
        assert_eq!(
            refusal(&scan(Table::Private, ""), &grants(&["photos:owner"])),
            None
        );
        // No grant at all: nothing but an empty directory.
        assert!(refusal(&scan(Table::ObjectIndex, "photos"), &[]).is_some());
    }

    #[test]
    fn storing_shards_needs_a_write_right_somewhere() {
        let put = ShardRequest::Put {
            id: andromede_cluster::shard_id(b"x"),
            data: Bytes::from_static(b"x"),
        };
        let get = ShardRequest::Get {
            id: andromede_cluster::shard_id(b"x"),
        };
        assert!(shard_refusal(&put, &grants(&["photos:read"])).is_some());
        assert_eq!(shard_refusal(&put, &grants(&["photos:write"])), None);
        assert_eq!(shard_refusal(&get, &grants(&["photos:read"])), None);
        assert!(shard_refusal(&get, &[]).is_some());
    }
}
