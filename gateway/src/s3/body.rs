//! A request body on its way into the codec: hashed as it streams (MD5 for the ETag,
//! and the `x-amz-checksum-*` algorithms the request names), then checked once read — in
//! the client library's finish hook, so a mismatch refuses the object before anything is
//! committed (`BadDigest`), whatever the object's size.

use std::sync::{Arc, Mutex};

use andromede_client::{BodyEnd, BoxError, FinishHook};
use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, StreamingBlob};
use s3s::{S3ErrorCode, TrailingHeaders};

use super::attrs::Attributes;
use super::errors::BodyError;

/// What a request says its body must hash to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expected {
    /// `Content-MD5` (base64).
    pub(crate) content_md5: Option<String>,
    /// `x-amz-checksum-*` headers (base64).
    pub(crate) checksum: Checksum,
    /// The algorithm the SDK announced (`x-amz-sdk-checksum-algorithm`) or a trailer
    /// names: computed and stored even without a value to compare.
    pub(crate) algorithms: Vec<String>,
    /// Trailers that follow an `aws-chunked` body.
    pub(crate) trailers: Option<TrailingHeaders>,
    /// `Content-Length` when given: fewer bytes is `IncompleteBody`.
    pub(crate) length: Option<u64>,
}

/// Digests of the bytes seen so far.
struct Digests {
    md5: Option<Md5>,
    checksums: Option<ChecksumHasher>,
    bytes: u64,
    /// The checksums once the body is checked.
    computed: Checksum,
}

/// Hashes a body as it passes; [`Digesting::finish_hook`] checks it at the end.
#[derive(Clone)]
pub(crate) struct Digesting {
    state: Arc<Mutex<Digests>>,
    expected: Arc<Expected>,
}

impl std::fmt::Debug for Digesting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digesting").finish_non_exhaustive()
    }
}

fn hasher_for(expected: &Expected) -> ChecksumHasher {
    let mut hasher = ChecksumHasher::default();
    let c = &expected.checksum;
    let wants = |name: &str, given: bool| {
        given
            || expected
                .algorithms
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
    };
    if wants("CRC32", c.checksum_crc32.is_some()) {
        hasher.crc32 = Some(Default::default());
    }
    if wants("CRC32C", c.checksum_crc32c.is_some()) {
        hasher.crc32c = Some(Default::default());
    }
    if wants("CRC64NVME", c.checksum_crc64nvme.is_some()) {
        hasher.crc64nvme = Some(Default::default());
    }
    if wants("SHA1", c.checksum_sha1.is_some()) {
        hasher.sha1 = Some(Default::default());
    }
    if wants("SHA256", c.checksum_sha256.is_some()) {
        hasher.sha256 = Some(Default::default());
    }
    hasher
}

impl Digesting {
    pub(crate) fn new(expected: Expected) -> Self {
        let checksums = hasher_for(&expected);
        Self {
            state: Arc::new(Mutex::new(Digests {
                md5: Some(Md5::new()),
                checksums: Some(checksums),
                bytes: 0,
                computed: Checksum::default(),
            })),
            expected: Arc::new(expected),
        }
    }

    /// The body as an `io` stream, hashed on the way.
    pub(crate) fn stream(
        &self,
        body: Option<StreamingBlob>,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static {
        let state = Arc::clone(&self.state);
        let body = match body {
            Some(body) => body.boxed(),
            None => futures::stream::empty().boxed(),
        };
        body.map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            if let Ok(mut digests) = state.lock() {
                digests.bytes += chunk.len() as u64;
                if let Some(md5) = &mut digests.md5 {
                    md5.update(&chunk);
                }
                if let Some(checksums) = &mut digests.checksums {
                    checksums.update(&chunk);
                }
            }
            Ok(chunk)
        })
    }

    /// The checksums of the body, once checked (empty before).
    pub(crate) fn computed(&self) -> Checksum {
        self.state
            .lock()
            .map(|d| d.computed.clone())
            .unwrap_or_default()
    }

    /// Checks the body once read: `Content-MD5`, every checksum given as a header or a
    /// trailer; returns the ETag (hex MD5) and the checksums to store.
    pub(crate) fn finish_hook(&self) -> FinishHook {
        let this = self.clone();
        Arc::new(move || this.finish().map_err(|e| Box::new(e) as BoxError))
    }

    fn finish(&self) -> Result<BodyEnd, BodyError> {
        let (md5, checksums, bytes) = {
            let mut digests = self
                .state
                .lock()
                .map_err(|_| BodyError::new(S3ErrorCode::InternalError, "digest state poisoned"))?;
            let md5 = digests.md5.take();
            let checksums = digests.checksums.take();
            (md5, checksums, digests.bytes)
        };
        let (Some(md5), Some(checksums)) = (md5, checksums) else {
            return Err(BodyError::new(
                S3ErrorCode::InternalError,
                "the body was checked twice",
            ));
        };
        if let Some(length) = self.expected.length
            && bytes != length
        {
            return Err(BodyError::new(
                S3ErrorCode::IncompleteBody,
                format!("Content-Length says {length} bytes, the body had {bytes}"),
            ));
        }
        let md5 = md5.finalize();
        if let Some(given) = &self.expected.content_md5 {
            let given_bytes = base64::engine::general_purpose::STANDARD
                .decode(given)
                .ok()
                .filter(|b| b.len() == 16)
                .ok_or_else(|| {
                    BodyError::new(
                        S3ErrorCode::InvalidDigest,
                        "Content-MD5 is not a base64 MD5",
                    )
                })?;
            if given_bytes[..] != md5[..] {
                return Err(BodyError::new(
                    S3ErrorCode::BadDigest,
                    "the Content-MD5 you specified did not match what we received",
                ));
            }
        }
        let computed = checksums.finalize();
        let mut expected = self.expected.checksum.clone();
        if let Some(trailers) = &self.expected.trailers {
            trailers.read(|headers| {
                let value = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let c = &mut expected;
                c.checksum_crc32 = c
                    .checksum_crc32
                    .take()
                    .or_else(|| value("x-amz-checksum-crc32"));
                c.checksum_crc32c = c
                    .checksum_crc32c
                    .take()
                    .or_else(|| value("x-amz-checksum-crc32c"));
                c.checksum_crc64nvme = c
                    .checksum_crc64nvme
                    .take()
                    .or_else(|| value("x-amz-checksum-crc64nvme"));
                c.checksum_sha1 = c
                    .checksum_sha1
                    .take()
                    .or_else(|| value("x-amz-checksum-sha1"));
                c.checksum_sha256 = c
                    .checksum_sha256
                    .take()
                    .or_else(|| value("x-amz-checksum-sha256"));
            });
        }
        for (name, given, ours) in [
            ("CRC32", &expected.checksum_crc32, &computed.checksum_crc32),
            (
                "CRC32C",
                &expected.checksum_crc32c,
                &computed.checksum_crc32c,
            ),
            (
                "CRC64NVME",
                &expected.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
            ),
            ("SHA1", &expected.checksum_sha1, &computed.checksum_sha1),
            (
                "SHA256",
                &expected.checksum_sha256,
                &computed.checksum_sha256,
            ),
        ] {
            if let Some(given) = given
                && ours.as_ref() != Some(given)
            {
                return Err(BodyError::new(
                    S3ErrorCode::BadDigest,
                    format!("the {name} checksum you specified did not match what we received"),
                ));
            }
        }
        if let Ok(mut digests) = self.state.lock() {
            digests.computed = computed.clone();
        }
        let attrs = Attributes {
            checksum: computed,
            ..Attributes::default()
        };
        Ok(BodyEnd {
            user_metadata: attrs.to_metadata(),
            etag: Some(hex::encode(md5)),
        })
    }
}
