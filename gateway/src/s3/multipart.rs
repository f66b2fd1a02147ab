//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.
//!
//! Each part is encoded and stored as it arrives (a version of its own, hashed on the way
//! like a PUT's body); Complete assembles the object from the parts' manifests without
//! reading them (see `andromede_client`'s multipart module). The ETag is the MD5 of the
//! parts' MD5s followed by `-N`, as S3's.

use std::collections::BTreeMap;

use andromede_client::PutObjectOptions;
use andromede_client::api::CompletedPart;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Checksum, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyPartResult, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListPartsInput, ListPartsOutput, MultipartUpload, Part, StreamingBlob, UploadPartCopyInput,
    UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use sync_wrapper::SyncStream;
use tokio_util::io::StreamReader;

use super::Gateway;
use super::attrs::Attributes;
use super::body::{Digesting, Expected};
use super::errors::s3_error;
use super::object::{Conditions, copy_source, etag, http_date, timestamp, trailer_algorithms};
use crate::keys::AccessKey;

/// Parts or uploads one listing returns at most (as S3).
pub const LIST_PARTS_MAX: usize = 1000;

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=andromede_client::api::PART_NUMBER_MAX).contains(n))
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("part number must be an integer between 1 and 10000, not {n}"),
            )
        })
}

fn listed_max(given: Option<i32>) -> S3Result<usize> {
    match given {
        None => Ok(LIST_PARTS_MAX),
        Some(n) if n < 0 => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "the maximum must be a non-negative integer",
        )),
        Some(n) => Ok(usize::try_from(n).unwrap_or(0).min(LIST_PARTS_MAX)),
    }
}

impl Gateway {
    pub(crate) async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let attrs = Attributes::from_request(
            input.metadata,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires.as_ref().and_then(http_date),
        )?;
        let options = PutObjectOptions {
            content_type: input
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".to_owned()),
            user_metadata: attrs.to_metadata(),
            ..PutObjectOptions::default()
        };
        let upload_id = self
            .client
            .create_multipart_upload(&input.bucket, &input.key, &options)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    pub(crate) async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailers = req.trailing_headers.clone();
        let mut algorithms = trailer_algorithms(&req.headers);
        let input = req.input;
        let number = part_number(input.part_number)?;
        algorithms.extend(input.checksum_algorithm.map(|a| a.as_str().to_owned()));
        let length = input.content_length.and_then(|l| u64::try_from(l).ok());
        let digesting = Digesting::new(Expected {
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
            length,
        });
        let options = PutObjectOptions {
            size_hint: length,
            finish: Some(digesting.finish_hook()),
            ..PutObjectOptions::default()
        };
        let reader = StreamReader::new(digesting.stream(input.body));
        let part = self
            .client
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                number,
                reader,
                options,
            )
            .await
            .map_err(s3_error)?;
        let checksum = digesting.computed();
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            ..UploadPartOutput::default()
        }))
    }

    pub(crate) async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let key = req.extensions.get::<AccessKey>().cloned();
        let input = req.input;
        let number = part_number(input.part_number)?;
        let (src_bucket, src_key) = copy_source(&input.copy_source, key.as_ref())?;
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
        let range = match &input.copy_source_range {
            None => None,
            Some(text) => Some(parse_copy_range(text, head.size)?),
        };
        let source = self
            .client
            .get_object(src_bucket, src_key, range.clone())
            .await
            .map_err(s3_error)?;
        if source.info.version_id != head.version_id {
            return Err(S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "the source changed while it was being read; try again",
            ));
        }
        let length = range.map_or(head.size, |r| r.end - r.start);
        let digesting = Digesting::new(Expected {
            length: Some(length),
            ..Expected::default()
        });
        let options = PutObjectOptions {
            size_hint: Some(length),
            finish: Some(digesting.finish_hook()),
            ..PutObjectOptions::default()
        };
        let body = SyncStream::new(futures::TryStreamExt::map_err(
            source.body,
            std::io::Error::other,
        ));
        let reader = StreamReader::new(digesting.stream(Some(StreamingBlob::wrap(body))));
        let part = self
            .client
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                number,
                reader,
                options,
            )
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(timestamp(part.modified_ms)),
                ..CopyPartResult::default()
            }),
            ..UploadPartCopyOutput::default()
        }))
    }

    pub(crate) async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if listed.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "the XML you provided did not name any part",
            ));
        }
        let mut parts = Vec::with_capacity(listed.len());
        for part in listed {
            let (Some(number), Some(tag)) = (part.part_number, part.e_tag) else {
                return Err(S3Error::with_message(
                    S3ErrorCode::MalformedXML,
                    "every part needs a PartNumber and an ETag",
                ));
            };
            parts.push(CompletedPart {
                part_number: part_number(number)?,
                etag: tag.value().to_owned(),
            });
        }
        let _lock = self.locks.lock(&input.bucket, &input.key).await;
        self.check_write_conditions(
            &input.bucket,
            &input.key,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )
        .await?;
        let extra = BTreeMap::from([(Attributes::PARTS_KEY.to_owned(), parts.len().to_string())]);
        let info = self
            .client
            .complete_multipart_upload(&input.bucket, &input.key, &input.upload_id, &parts, extra)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&info.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..CompleteMultipartUploadOutput::default()
        }))
    }

    pub(crate) async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.client
            .abort_multipart_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = listed_max(input.max_parts)?;
        let after = match input.part_number_marker {
            None => 0,
            Some(m) => u32::try_from(m).map_err(|_| {
                S3Error::with_message(S3ErrorCode::InvalidArgument, "invalid part-number-marker")
            })?,
        };
        let (parts, truncated) = self
            .client
            .list_parts(&input.bucket, &input.key, &input.upload_id, after, max)
            .await
            .map_err(s3_error)?;
        let next = parts.last().and_then(|p| i32::try_from(p.part_number).ok());
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: i32::try_from(max).ok(),
            is_truncated: Some(truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            owner: Some(self.owner()),
            parts: Some(
                parts
                    .into_iter()
                    .map(|p| Part {
                        part_number: i32::try_from(p.part_number).ok(),
                        e_tag: Some(etag(&p.etag)),
                        size: i64::try_from(p.size).ok(),
                        last_modified: Some(timestamp(p.modified_ms)),
                        ..Part::default()
                    })
                    .collect(),
            ),
            ..ListPartsOutput::default()
        }))
    }

    pub(crate) async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        if input.delimiter.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "ListMultipartUploads with a delimiter is not supported",
            ));
        }
        let max = listed_max(input.max_uploads)?;
        let (uploads, truncated) = self
            .client
            .list_multipart_uploads(
                &input.bucket,
                input.prefix.as_deref().unwrap_or(""),
                input.key_marker.as_deref().filter(|m| !m.is_empty()),
                input.upload_id_marker.as_deref().filter(|m| !m.is_empty()),
                max,
            )
            .await
            .map_err(s3_error)?;
        let last = uploads.last().cloned();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: i32::try_from(max).ok(),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().filter(|_| truncated).map(|u| u.key.clone()),
            next_upload_id_marker: last.filter(|_| truncated).map(|u| u.upload_id),
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(u.key),
                        upload_id: Some(u.upload_id),
                        initiated: Some(timestamp(u.initiated_ms)),
                        owner: Some(self.owner()),
                        initiator: None,
                        ..MultipartUpload::default()
                    })
                    .collect(),
            ),
            ..ListMultipartUploadsOutput::default()
        }))
    }
}

/// `bytes=FIRST-LAST` of a copy source (both inclusive, both required, as S3).
fn parse_copy_range(text: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!(
                "the x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy: {text:?}"
            ),
        )
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRange,
            format!("the range {first}-{last} is not within the source's {size} bytes"),
        ));
    }
    Ok(first..last + 1)
}
