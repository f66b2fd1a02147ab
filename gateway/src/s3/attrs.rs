//! What the gateway keeps of an object besides its bytes, in the object's sealed user
//! metadata (replicas never see it): the caller's `x-amz-meta-*` entries under their own
//! names (so the `andromede` CLI shows the same metadata), and the S3 headers it must
//! return — Content-Encoding, -Disposition, -Language, Cache-Control, Expires, the
//! `x-amz-checksum-*` values and the multipart part count — under names starting with
//! [`ATTR_PREFIX`], which no HTTP header name can produce (`:` is not a token character).

use std::collections::BTreeMap;

use s3s::dto::{Checksum, Metadata};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Prefix of the gateway's own entries in the sealed metadata.
pub(crate) const ATTR_PREFIX: &str = "s3:";
/// Largest `x-amz-meta-*` total (names and values), as S3.
pub(crate) const USER_METADATA_BYTES_MAX: usize = 2 * 1024;

/// The stored attributes of an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Attributes {
    pub(crate) user: BTreeMap<String, String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) content_language: Option<String>,
    pub(crate) cache_control: Option<String>,
    /// As the request gave it (an HTTP date).
    pub(crate) expires: Option<String>,
    pub(crate) checksum: Checksum,
    /// Parts of a multipart upload (its ETag ends with `-N`).
    pub(crate) parts: Option<u32>,
}

const CONTENT_ENCODING: &str = "s3:content-encoding";
const CONTENT_DISPOSITION: &str = "s3:content-disposition";
const CONTENT_LANGUAGE: &str = "s3:content-language";
const CACHE_CONTROL: &str = "s3:cache-control";
const EXPIRES: &str = "s3:expires";
const PARTS: &str = "s3:parts";
const CRC32: &str = "s3:checksum-crc32";
const CRC32C: &str = "s3:checksum-crc32c";
const CRC64NVME: &str = "s3:checksum-crc64nvme";
const SHA1: &str = "s3:checksum-sha1";
const SHA256: &str = "s3:checksum-sha256";

impl Attributes {
    /// Where the part count of an assembled object is kept.
    pub(crate) const PARTS_KEY: &'static str = PARTS;

    /// The caller's `x-amz-meta-*` entries, checked against S3's size limit.
    pub(crate) fn with_user(metadata: Option<Metadata>) -> S3Result<Self> {
        let user: BTreeMap<String, String> = metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let bytes: usize = user.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > USER_METADATA_BYTES_MAX {
            return Err(S3Error::with_message(
                S3ErrorCode::MetadataTooLarge,
                format!("user metadata is {bytes} bytes; S3 allows {USER_METADATA_BYTES_MAX}"),
            ));
        }
        Ok(Self {
            user,
            ..Self::default()
        })
    }

    /// What a write request gives: its `x-amz-meta-*` entries and content headers
    /// (`expires` already as the HTTP date to return).
    pub(crate) fn from_request(
        metadata: Option<Metadata>,
        content_encoding: Option<String>,
        content_disposition: Option<String>,
        content_language: Option<String>,
        cache_control: Option<String>,
        expires: Option<String>,
    ) -> S3Result<Self> {
        Ok(Self {
            content_encoding,
            content_disposition,
            content_language,
            cache_control,
            expires,
            ..Self::with_user(metadata)?
        })
    }

    /// The sealed-metadata form.
    pub(crate) fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut out = self.user.clone();
        let mut put = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                out.insert(name.to_owned(), value.clone());
            }
        };
        put(CONTENT_ENCODING, &self.content_encoding);
        put(CONTENT_DISPOSITION, &self.content_disposition);
        put(CONTENT_LANGUAGE, &self.content_language);
        put(CACHE_CONTROL, &self.cache_control);
        put(EXPIRES, &self.expires);
        put(CRC32, &self.checksum.checksum_crc32);
        put(CRC32C, &self.checksum.checksum_crc32c);
        put(CRC64NVME, &self.checksum.checksum_crc64nvme);
        put(SHA1, &self.checksum.checksum_sha1);
        put(SHA256, &self.checksum.checksum_sha256);
        put(PARTS, &self.parts.map(|p| p.to_string()));
        out
    }

    /// Reads back what [`Attributes::to_metadata`] stored.
    pub(crate) fn from_metadata(mut stored: BTreeMap<String, String>) -> Self {
        let mut take = |name: &str| stored.remove(name);
        let mut out = Self {
            content_encoding: take(CONTENT_ENCODING),
            content_disposition: take(CONTENT_DISPOSITION),
            content_language: take(CONTENT_LANGUAGE),
            cache_control: take(CACHE_CONTROL),
            expires: take(EXPIRES),
            checksum: Checksum {
                checksum_crc32: take(CRC32),
                checksum_crc32c: take(CRC32C),
                checksum_crc64nvme: take(CRC64NVME),
                checksum_sha1: take(SHA1),
                checksum_sha256: take(SHA256),
                ..Checksum::default()
            },
            parts: take(PARTS).and_then(|p| p.parse().ok()),
            user: BTreeMap::new(),
        };
        // Entries of a later gateway this one does not know stay out of user metadata.
        stored.retain(|name, _| !name.starts_with(ATTR_PREFIX));
        out.user = stored;
        out
    }

    /// User metadata as S3 returns it.
    pub(crate) fn user_metadata(&self) -> Option<Metadata> {
        (!self.user.is_empty()).then(|| self.user.clone().into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_user_names_cannot_collide() {
        let mut meta = Metadata::new();
        meta.insert("Mtime".into(), "1700000000.5".into());
        let mut attrs = Attributes::with_user(Some(meta)).unwrap();
        attrs.content_encoding = Some("gzip".into());
        attrs.expires = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
        attrs.checksum.checksum_crc32 = Some("AAAAAA==".into());
        attrs.parts = Some(3);
        let back = Attributes::from_metadata(attrs.to_metadata());
        assert_eq!(back, attrs);
        assert_eq!(
            back.user.get("mtime").map(String::as_str),
            Some("1700000000.5")
        );

        let mut big = Metadata::new();
        big.insert("a".into(), "x".repeat(USER_METADATA_BYTES_MAX));
        let err = Attributes::with_user(Some(big)).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::MetadataTooLarge);
    }
}
