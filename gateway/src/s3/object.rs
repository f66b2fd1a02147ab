//! Objects: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use andromede_client::{ClientError, ObjectInfo, PutObjectOptions};
use futures::{StreamExt, TryStreamExt};
use s3s::dto::{
    Checksum, CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag,
    ETagCondition, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput,
    PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp, TimestampFormat,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use sync_wrapper::SyncStream;
use tokio_util::io::StreamReader;

use super::Gateway;
use super::attrs::Attributes;
use super::body::{Digesting, Expected};
use super::errors::s3_error;
use crate::keys::Permission;

/// Keys one DeleteObjects request names at most (as S3).
pub const DELETE_OBJECTS_MAX: usize = 1000;
/// Keys of one DeleteObjects request deleted at once.
const DELETE_OBJECTS_IN_FLIGHT: usize = 16;

/// S3's `Last-Modified` of a version (HTTP dates have whole seconds).
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn unix_seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

pub(crate) fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// The ETag as S3 writes it.
pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn etag_matches(condition: &ETagCondition, current: &str) -> bool {
    match condition.as_etag() {
        Some(tag) => tag.value() == current,
        None => condition.is_any(),
    }
}

/// The conditions of a read (GetObject, HeadObject) or a copy's source.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) if_match: Option<ETagCondition>,
    pub(crate) if_none_match: Option<ETagCondition>,
    pub(crate) if_modified_since: Option<Timestamp>,
    pub(crate) if_unmodified_since: Option<Timestamp>,
}

impl Conditions {
    /// RFC 9110 §13.2.2 as S3 applies it: If-Match, else If-Unmodified-Since (412); then
    /// If-None-Match, else If-Modified-Since (304 for reads; `not_modified` names the
    /// error, a copy answers 412).
    pub(crate) fn check(&self, info: &ObjectInfo, not_modified: S3ErrorCode) -> S3Result<()> {
        let modified = i64::try_from(info.modified_ms / 1000).unwrap_or(i64::MAX);
        let precondition = || {
            Err(S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "at least one of the preconditions you specified did not hold",
            ))
        };
        match &self.if_match {
            Some(condition) if !etag_matches(condition, &info.etag) => return precondition(),
            Some(_) => {}
            None => {
                if let Some(since) = &self.if_unmodified_since
                    && modified > unix_seconds(since)
                {
                    return precondition();
                }
            }
        }
        let unchanged = || Err(S3Error::new(not_modified.clone()));
        match &self.if_none_match {
            Some(condition) if etag_matches(condition, &info.etag) => return unchanged(),
            Some(_) => {}
            None => {
                if let Some(since) = &self.if_modified_since
                    && modified <= unix_seconds(since)
                {
                    return unchanged();
                }
            }
        }
        Ok(())
    }
}

/// What HeadObject and GetObject return about a version.
struct Described {
    attrs: Attributes,
    info: ObjectInfo,
}

impl Described {
    fn new(info: ObjectInfo) -> Self {
        Self {
            attrs: Attributes::from_metadata(info.user_metadata.clone()),
            info,
        }
    }

    fn checksum(&self, mode: Option<&s3s::dto::ChecksumMode>) -> Checksum {
        if mode.is_some_and(|m| m.as_str() == s3s::dto::ChecksumMode::ENABLED) {
            self.attrs.checksum.clone()
        } else {
            Checksum::default()
        }
    }
}

fn requested_range(range: Option<&s3s::dto::Range>, size: u64) -> S3Result<Option<Range<u64>>> {
    let Some(range) = range else { return Ok(None) };
    range.check(size).map(Some).map_err(|_| {
        S3Error::with_message(
            S3ErrorCode::InvalidRange,
            format!("the requested range is not satisfiable: the object has {size} bytes"),
        )
    })
}

impl Gateway {
    pub(crate) async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailers = req.trailing_headers.clone();
        let announced = trailer_algorithms(&req.headers);
        let input = req.input;
        let attrs = Attributes::from_request(
            input.metadata,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires.as_ref().and_then(http_date),
        )?;
        let mut algorithms = announced;
        algorithms.extend(input.checksum_algorithm.map(|a| a.as_str().to_owned()));
        let expected = Expected {
            content_md5: input.content_md5,
            checksum: Checksum {
                checksum_crc32: input.checksum_crc32,
                checksum_crc32c: input.checksum_crc32c,
                checksum_crc64nvme: input.checksum_crc64nvme,
                checksum_sha1: input.checksum_sha1,
                checksum_sha256: input.checksum_sha256,
                ..Checksum::default()
            },
            algorithms,
            trailers,
            length: input.content_length.and_then(|l| u64::try_from(l).ok()),
        };
        let bucket = input.bucket;
        let key = input.key;
        let _lock = self.locks.lock(&bucket, &key).await;
        self.check_write_conditions(
            &bucket,
            &key,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )
        .await?;
        let digesting = Digesting::new(expected);
        let options = PutObjectOptions {
            content_type: input
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".to_owned()),
            user_metadata: attrs.to_metadata(),
            size_hint: input.content_length.and_then(|l| u64::try_from(l).ok()),
            finish: Some(digesting.finish_hook()),
        };
        let reader = StreamReader::new(digesting.stream(input.body));
        let info = self
            .client
            .put_object(&bucket, &key, reader, options)
            .await
            .map_err(s3_error)?;
        let checksum = Attributes::from_metadata(info.user_metadata.clone()).checksum;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&info.etag)),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            ..PutObjectOutput::default()
        }))
    }

    /// `If-None-Match: *` and `If-Match` of a write, checked under the key's lock.
    pub(crate) async fn check_write_conditions(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok(());
        }
        let current = match self.client.head_object(bucket, key).await {
            Ok(info) => Some(info),
            Err(ClientError::NoSuchKey { .. }) => None,
            Err(e) => return Err(s3_error(e)),
        };
        let failed = || {
            Err(S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "at least one of the preconditions you specified did not hold",
            ))
        };
        if let Some(condition) = if_none_match {
            if !condition.is_any() {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "If-None-Match on a write takes only '*'",
                ));
            }
            if current.is_some() {
                return failed();
            }
        }
        if let Some(condition) = if_match {
            match &current {
                None => {
                    return Err(S3Error::with_message(
                        S3ErrorCode::NoSuchKey,
                        "If-Match names an object that does not exist",
                    ));
                }
                Some(info) if !etag_matches(condition, &info.etag) => return failed(),
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(crate) async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        if input.part_number.is_some() {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "GetObject by part number is not supported",
            ));
        }
        let reader = self
            .client
            .open_object(&input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        Conditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            if_modified_since: input.if_modified_since,
            if_unmodified_since: input.if_unmodified_since,
        }
        .check(&reader.info, S3ErrorCode::NotModified)?;
        let range = requested_range(input.range.as_ref(), reader.info.size)?;
        let object = reader.read(range.clone()).map_err(s3_error)?;
        let described = Described::new(object.info);
        let checksum = match range {
            Some(_) => Checksum::default(),
            None => described.checksum(input.checksum_mode.as_ref()),
        };
        let (content_length, content_range) = match &range {
            Some(r) => (
                r.end - r.start,
                Some(format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    described.info.size
                )),
            ),
            None => (described.info.size, None),
        };
        let body = StreamingBlob::wrap(SyncStream::new(object.body.map_err(std::io::Error::other)));
        let info = &described.info;
        let attrs = &described.attrs;
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            accept_ranges: Some("bytes".into()),
            content_length: i64::try_from(content_length).ok(),
            content_range,
            content_type: Some(info.content_type.clone()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.modified_ms)),
            metadata: attrs.user_metadata(),
            content_encoding: attrs.content_encoding.clone(),
            content_disposition: attrs.content_disposition.clone(),
            content_language: attrs.content_language.clone(),
            cache_control: attrs.cache_control.clone(),
            expires: attrs.expires.as_deref().and_then(parse_http_date),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            parts_count: attrs.parts.and_then(|p| i32::try_from(p).ok()),
            ..GetObjectOutput::default()
        }))
    }

    pub(crate) async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let info = self
            .client
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        Conditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            if_modified_since: input.if_modified_since,
            if_unmodified_since: input.if_unmodified_since,
        }
        .check(&info, S3ErrorCode::NotModified)?;
        let range = requested_range(input.range.as_ref(), info.size)?;
        let described = Described::new(info);
        let checksum = described.checksum(input.checksum_mode.as_ref());
        let info = &described.info;
        let attrs = &described.attrs;
        let (content_length, content_range) = match &range {
            Some(r) => (
                r.end - r.start,
                Some(format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    info.size
                )),
            ),
            None => (info.size, None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: i64::try_from(content_length).ok(),
            content_range,
            content_type: Some(info.content_type.clone()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.modified_ms)),
            metadata: attrs.user_metadata(),
            content_encoding: attrs.content_encoding.clone(),
            content_disposition: attrs.content_disposition.clone(),
            content_language: attrs.content_language.clone(),
            cache_control: attrs.cache_control.clone(),
            expires: attrs.expires.as_deref().and_then(parse_http_date),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            parts_count: attrs.parts.and_then(|p| i32::try_from(p).ok()),
            ..HeadObjectOutput::default()
        }))
    }

    pub(crate) async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let _lock = self.locks.lock(&input.bucket, &input.key).await;
        self.check_write_conditions(&input.bucket, &input.key, input.if_match.as_ref(), None)
            .await?;
        self.client
            .delete_object(&input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let objects = input.delete.objects;
        if objects.len() > DELETE_OBJECTS_MAX {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                format!("a DeleteObjects request names at most {DELETE_OBJECTS_MAX} keys"),
            ));
        }
        // A bucket that does not exist fails the whole request, as S3.
        self.client
            .head_bucket(&input.bucket)
            .await
            .map_err(s3_error)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket.as_str();
        // Keys are deleted DELETE_OBJECTS_IN_FLIGHT at a time, each under its key's lock.
        let outcomes: Vec<(String, Result<(), S3Error>)> = futures::stream::iter(objects)
            .map(|object| async move {
                let _lock = self.locks.lock(bucket, &object.key).await;
                let result = self
                    .client
                    .delete_object(bucket, &object.key)
                    .await
                    .map_err(s3_error);
                (object.key, result)
            })
            .buffered(DELETE_OBJECTS_IN_FLIGHT)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, result) in outcomes {
            match result {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(key),
                    ..DeletedObject::default()
                }),
                Err(e) => errors.push(s3s::dto::Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..DeleteObjectsOutput::default()
        }))
    }

    pub(crate) async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let key = req.extensions.get::<crate::keys::AccessKey>().cloned();
        let input = req.input;
        let (src_bucket, src_key) = copy_source(&input.copy_source, key.as_ref())?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == s3s::dto::MetadataDirective::REPLACE);
        if !replace && src_bucket == input.bucket && src_key == input.key {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata",
            ));
        }
        let _lock = self.locks.lock(&input.bucket, &input.key).await;
        let head = self
            .client
            .head_object(src_bucket, src_key)
            .await
            .map_err(s3_error)?;
        Conditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        }
        .check(&head, S3ErrorCode::PreconditionFailed)?;
        let source_attrs = Attributes::from_metadata(head.user_metadata.clone());
        let (attrs, content_type) = if replace {
            let mut attrs = Attributes::from_request(
                input.metadata,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires.as_ref().and_then(http_date),
            )?;
            attrs.checksum = source_attrs.checksum.clone();
            attrs.parts = source_attrs.parts;
            let content_type = input
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".to_owned());
            (attrs, content_type)
        } else {
            (source_attrs, head.content_type.clone())
        };
        // Inside the cluster: the source's shards, reused (nothing is read or written but
        // metadata); its ETag holds, the bytes being the same.
        if let Some(info) = self
            .client
            .copy_object_reusing(
                src_bucket,
                src_key,
                &head.version_id,
                &input.bucket,
                &input.key,
                &content_type,
                &attrs.to_metadata(),
                &head.etag,
            )
            .await
            .map_err(s3_error)?
        {
            return Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(etag(&info.etag)),
                    last_modified: Some(timestamp(info.modified_ms)),
                    ..CopyObjectResult::default()
                }),
                ..CopyObjectOutput::default()
            }));
        }
        // Otherwise (an inline or assembled source, another erasure code or jurisdiction
        // at the destination) the bytes are re-encoded: one part, its ETag their MD5.
        let source = self
            .client
            .get_object(src_bucket, src_key, None)
            .await
            .map_err(s3_error)?;
        if source.info.version_id != head.version_id {
            return Err(S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "the source changed while it was being copied; try again",
            ));
        }
        let attrs = Attributes {
            parts: None,
            ..attrs
        };
        let digesting = Digesting::new(Expected::default());
        let options = PutObjectOptions {
            content_type,
            user_metadata: attrs.to_metadata(),
            size_hint: Some(source.info.size),
            finish: Some(digesting.finish_hook()),
        };
        let body = source.body.map_err(std::io::Error::other);
        let reader =
            StreamReader::new(digesting.stream(Some(StreamingBlob::wrap(SyncStream::new(body)))));
        let info = self
            .client
            .put_object(&input.bucket, &input.key, reader, options)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&info.etag)),
                last_modified: Some(timestamp(info.modified_ms)),
                ..CopyObjectResult::default()
            }),
            ..CopyObjectOutput::default()
        }))
    }
}

/// The bucket and key a copy reads, once `key` may read that bucket.
pub(crate) fn copy_source<'a>(
    source: &'a CopySource,
    key: Option<&crate::keys::AccessKey>,
) -> S3Result<(&'a str, &'a str)> {
    let CopySource::Bucket {
        bucket,
        key: object,
        version_id,
    } = source
    else {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "copying from an access point is not supported",
        ));
    };
    if version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "buckets are not versioned: a copy source takes no versionId",
        ));
    }
    if !key.is_some_and(|k| k.allows(bucket, Permission::Read)) {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!("this key may not read bucket {bucket}"),
        ));
    }
    Ok((bucket, object))
}

/// Checksum algorithms an `aws-chunked` body's trailers will carry (`x-amz-trailer`).
pub(crate) fn trailer_algorithms(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("x-amz-trailer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| name.trim().strip_prefix("x-amz-checksum-"))
        .map(str::to_ascii_uppercase)
        .collect()
}
