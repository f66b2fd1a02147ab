//! What an author may write (DESIGN.md, "Trust model" and "Metadata"). Checked by every
//! replica before it applies a record and by every reader before it believes one, from
//! the record's own seal, so no replica has to be trusted for it.
//!
//! A **client** writes what its grants allow, per bucket:
//! - the bucket's own record (create, delete, policy): `owner`;
//! - an object index entry: `write`, or `delete` for a tombstone (a deletion);
//! - manifests, multipart uploads and parts, shared-seal marks: `write`;
//! - garbage records (written by a replacing PUT and by a deletion): `write` or `delete`;
//! - client-private values (the S3 gateway's access keys): `owner` on some bucket.
//!
//! A **node** writes only what its jobs need, each justified by client-signed records it
//! carries as causes:
//! - repair's and rebalance's holder updates: a manifest whose content (everything but
//!   its holders: geometry, shard ids, etag, wrapped key...) is the client-signed
//!   manifest's of the same version;
//! - the collector's tombstones, each after a client-signed garbage record: of that
//!   garbage record; of the manifest it names (or, with that version's client-signed
//!   manifest, of a part version it lists); of a multipart upload it names, with its
//!   part records and (with the client-signed part record) their versions' manifests.
//!
//! A node never writes buckets, index entries or client-private values: a bucket's policy
//! changes only through its owner. Whether the version a garbage record names is still
//! current is the collector's check at quorum (DESIGN.md); the rule here bounds what a
//! node can do at all to what some client of the bucket asked for.

use crate::authority::grant::rights_on;
use crate::authority::{Grant, Rights};
use crate::manifest::Manifest;
use crate::meta::key::{RecordKey, Table};
use crate::meta::record::Record;
use crate::meta::values::{GarbageEntry, PartEntry};
use bytes::Bytes;

/// Bytes of an upload id (the sort key of an upload's garbage record).
const UPLOAD_ID_BYTES: usize = 16;

/// Why a client holding `grants` may not write the record at `key` (a deletion when
/// `tombstone`), in words the CLI shows as they are; `None` when it may.
pub fn client_refusal(key: &RecordKey, tombstone: bool, grants: &[Grant]) -> Option<String> {
    if key.table == Table::Private {
        return (!administers(grants)).then(|| {
            "this client may not write client-private values (it needs the owner right on some bucket)"
                .to_owned()
        });
    }
    let (bucket, wanted, what) = match key.table {
        Table::Bucket => (
            String::from_utf8_lossy(&key.sort).into_owned(),
            Rights::OWNER,
            "create, delete or set the policy of",
        ),
        Table::ObjectIndex if tombstone => (key.partition.clone(), Rights::DELETE, "delete from"),
        Table::Garbage => {
            let rights = rights_on(grants, &key.partition);
            if rights.contains(Rights::WRITE) || rights.contains(Rights::DELETE) {
                return None;
            }
            (key.partition.clone(), Rights::WRITE, "write")
        }
        _ => (key.partition.clone(), Rights::WRITE, "write"),
    };
    (!rights_on(grants, &bucket).contains(wanted))
        .then(|| format!("this client may not {what} bucket {bucket}"))
}

/// Whether a client administers some of the tenant's buckets.
pub fn administers(grants: &[Grant]) -> bool {
    grants.iter().any(|g| g.rights.contains(Rights::OWNER))
}

/// Why a node may not write `record` at `key` with `causes` (already verified as
/// client-signed and within their authors' grants); `None` when its job allows it.
pub fn node_refusal(
    key: &RecordKey,
    record: &Record<Bytes>,
    causes: &[(&RecordKey, &Record<Bytes>)],
) -> Option<String> {
    let allowed = match (key.table, &record.value) {
        (Table::Manifest, Some(value)) => same_content_as_cause(key, value, causes),
        (Table::Manifest, None) => causes.iter().any(|cause| {
            garbage_naming_version(key, cause)
                || causes
                    .iter()
                    .any(|other| part_of_collected(key, cause, other))
        }),
        (Table::Garbage, None) => causes
            .iter()
            .any(|(cause_key, cause)| *cause_key == key && !cause.is_tombstone()),
        (Table::Part, None) => causes.iter().any(|cause| {
            upload_garbage(key, cause).is_some()
                && key.sort.get(..UPLOAD_ID_BYTES) == Some(&cause.0.sort[..])
        }),
        (Table::Upload, None) => causes.iter().any(|cause| {
            upload_garbage(key, cause).is_some_and(|entry| {
                let mut sort = entry.key.into_bytes();
                sort.push(0);
                sort.extend_from_slice(&cause.0.sort);
                sort == key.sort
            })
        }),
        _ => false,
    };
    (!allowed).then(|| {
        let bucket = match key.table {
            Table::Bucket => String::from_utf8_lossy(&key.sort).into_owned(),
            _ => key.partition.clone(),
        };
        format!(
            "a node may not write this {} record of bucket {bucket} (nodes write only holder updates and the collector's tombstones, each after a client-signed record)",
            table_name(key.table),
        )
    })
}

/// What a table holds, for people ("object index", "manifest").
pub fn table_name(table: Table) -> &'static str {
    match table {
        Table::Bucket => "bucket",
        Table::ObjectIndex => "object index",
        Table::Manifest => "manifest",
        Table::Garbage => "garbage",
        Table::Private => "client-private",
        Table::Upload => "multipart upload",
        Table::Part => "multipart part",
        Table::Shared => "shared-seal",
    }
}

/// A holder update: the client-signed manifest of the same key, with the same content.
fn same_content_as_cause(
    key: &RecordKey,
    value: &[u8],
    causes: &[(&RecordKey, &Record<Bytes>)],
) -> bool {
    let Ok(updated) = Manifest::decode(value) else {
        return false;
    };
    causes.iter().any(|(cause_key, cause)| {
        *cause_key == key
            && cause
                .value
                .as_deref()
                .and_then(|v| Manifest::decode(v).ok())
                .is_some_and(|original| original.same_content(&updated))
    })
}

/// A live garbage record of the same bucket, decoded, from a cause.
fn garbage_of(
    key: &RecordKey,
    (cause_key, cause): &(&RecordKey, &Record<Bytes>),
) -> Option<GarbageEntry> {
    if cause_key.table != Table::Garbage || cause_key.partition != key.partition {
        return None;
    }
    GarbageEntry::decode(cause.value.as_deref()?).ok()
}

/// The cause is a multipart upload's garbage record in `key`'s bucket.
fn upload_garbage(key: &RecordKey, cause: &(&RecordKey, &Record<Bytes>)) -> Option<GarbageEntry> {
    garbage_of(key, cause).filter(|entry| entry.upload && cause.0.sort.len() == UPLOAD_ID_BYTES)
}

/// The cause is the garbage record of the version `key` (a manifest) names.
fn garbage_naming_version(key: &RecordKey, cause: &(&RecordKey, &Record<Bytes>)) -> bool {
    garbage_of(key, cause).is_some_and(|entry| !entry.upload) && cause.0.sort == key.sort
}

/// The manifest at `key` is a part version of something collected: `garbage` names an
/// assembled version whose client-signed manifest (`other`) lists it, or a multipart
/// upload whose client-signed part record (`other`) names it.
fn part_of_collected(
    key: &RecordKey,
    garbage: &(&RecordKey, &Record<Bytes>),
    other: &(&RecordKey, &Record<Bytes>),
) -> bool {
    let Some(entry) = garbage_of(key, garbage) else {
        return false;
    };
    let (other_key, other) = other;
    let Some(value) = other.value.as_deref() else {
        return false;
    };
    if other_key.partition != key.partition {
        return false;
    }
    if entry.upload {
        other_key.table == Table::Part
            && other_key.sort.get(..UPLOAD_ID_BYTES) == Some(&garbage.0.sort[..])
            && PartEntry::decode(value)
                .is_ok_and(|part| part.version_id.as_bytes() == key.sort.as_slice())
    } else {
        other_key.table == Table::Manifest
            && other_key.sort == garbage.0.sort
            && Manifest::decode(value).is_ok_and(|assembled| {
                assembled
                    .parts()
                    .iter()
                    .any(|part| part.version_id.as_bytes() == key.sort.as_slice())
            })
    }
}
