//! Listing: ListObjects (v1) and ListObjectsV2, in byte order of the keys, with prefix,
//! delimiter, marker / continuation token / start-after, max-keys, `encoding-type=url`
//! and fetch-owner.

use andromede_client::{ListOptions, ListPage};
use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::Gateway;
use super::errors::s3_error;
use super::object::{etag, timestamp};

/// Keys one listing page returns at most (as S3: a larger max-keys is cut to it).
pub const LIST_KEYS_MAX: i32 = 1000;

/// Percent-encodes `s` as S3 does for `encoding-type=url`: everything but unreserved
/// characters and `/`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Encoder(bool);

impl Encoder {
    fn new(encoding: Option<&EncodingType>) -> S3Result<Self> {
        match encoding {
            None => Ok(Self(false)),
            Some(e) if e.as_str() == EncodingType::URL => Ok(Self(true)),
            Some(e) => Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("invalid encoding type {}: only 'url' is", e.as_str()),
            )),
        }
    }

    fn apply(&self, s: String) -> String {
        if self.0 { url_encode(&s) } else { s }
    }
}

fn max_keys(given: Option<i32>) -> S3Result<usize> {
    match given {
        None => Ok(LIST_KEYS_MAX as usize),
        Some(n) if n < 0 => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "max-keys must be a non-negative integer",
        )),
        Some(n) => Ok(usize::try_from(n.min(LIST_KEYS_MAX)).unwrap_or(0)),
    }
}

impl Gateway {
    /// One page; `max_keys == 0` returns an empty page, as S3.
    async fn page(&self, bucket: &str, options: ListOptions) -> S3Result<ListPage> {
        if options.max_keys == 0 {
            self.client.head_bucket(bucket).await.map_err(s3_error)?;
            return Ok(ListPage::default());
        }
        self.client
            .list_objects(bucket, &options)
            .await
            .map_err(s3_error)
    }

    fn contents(&self, page: &ListPage, encoder: &Encoder, fetch_owner: bool) -> Vec<Object> {
        page.objects
            .iter()
            .map(|o| Object {
                key: Some(encoder.apply(o.key.clone())),
                size: i64::try_from(o.size).ok(),
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(timestamp(o.modified_ms)),
                storage_class: Some(s3s::dto::ObjectStorageClass::from_static(
                    s3s::dto::ObjectStorageClass::STANDARD,
                )),
                owner: fetch_owner.then(|| self.owner()),
                ..Object::default()
            })
            .collect()
    }

    fn prefixes(page: &ListPage, encoder: &Encoder) -> Vec<CommonPrefix> {
        page.common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(encoder.apply(p.clone())),
            })
            .collect()
    }

    pub(crate) async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encoder = Encoder::new(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        let options = ListOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            start_after: input.start_after.clone(),
            continuation_token: input.continuation_token.clone(),
            max_keys,
        };
        let page = self.page(&input.bucket, options).await.map_err(|e| {
            if e.code() == &S3ErrorCode::InvalidArgument && input.continuation_token.is_some() {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "the continuation token provided is incorrect",
                )
            } else {
                e
            }
        })?;
        let contents = self.contents(&page, &encoder, input.fetch_owner.unwrap_or(false));
        let common_prefixes = Self::prefixes(&page, &encoder);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.map(|d| encoder.apply(d)),
            start_after: input.start_after.map(|s| encoder.apply(s)),
            max_keys: i32::try_from(max_keys).ok(),
            key_count: i32::try_from(contents.len() + common_prefixes.len()).ok(),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.is_truncated),
            next_continuation_token: page.next_continuation_token.filter(|_| page.is_truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..ListObjectsV2Output::default()
        }))
    }

    pub(crate) async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encoder = Encoder::new(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let marker = input.marker.clone().filter(|m| !m.is_empty());
        // A marker that is a common prefix resumes after every key under it (the
        // library's continuation token for a rolled-up prefix: the prefix then 0xFF).
        let continuation_token = match (&marker, &delimiter) {
            (Some(m), Some(d)) if m.ends_with(d.as_str()) => {
                let mut skip = m.as_bytes().to_vec();
                skip.push(0xFF);
                Some(hex::encode(skip))
            }
            _ => None,
        };
        let options = ListOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: delimiter.clone(),
            start_after: marker,
            continuation_token,
            max_keys,
        };
        let page = self.page(&input.bucket, options).await?;
        // The marker to resume after: the last key or common prefix of the page, the
        // greater of the two (v1 resumes strictly after it, in byte order).
        let next_marker = page.is_truncated.then(|| {
            let last_key = page.objects.last().map(|o| o.key.clone());
            let last_prefix = page.common_prefixes.last().cloned();
            last_key.max(last_prefix)
        });
        let contents = self.contents(&page, &encoder, true);
        let common_prefixes = Self::prefixes(&page, &encoder);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
            marker: Some(encoder.apply(input.marker.unwrap_or_default())),
            delimiter: input.delimiter.map(|d| encoder.apply(d)),
            max_keys: i32::try_from(max_keys).ok(),
            is_truncated: Some(page.is_truncated),
            next_marker: next_marker.flatten().map(|m| encoder.apply(m)),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..ListObjectsOutput::default()
        }))
    }
}
