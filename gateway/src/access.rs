//! Who may do what: SigV4 secrets come from the [`KeyStore`] (`s3s` verifies the
//! signature, presigned URLs and signed chunks with them), then every request is checked
//! against its key's grants before its body is read. Unsigned requests are refused.
//!
//! The permission an operation needs, on the bucket it names: reads (get, head, list)
//! need `read`; object writes and multipart uploads `write`; DeleteBucket `owner`;
//! CreateBucket the key's create-buckets right; ListBuckets any key (it shows the buckets
//! the key has a grant on). Operations this gateway does not implement need `owner`, then
//! answer 501. CopyObject's source bucket needs `read`, checked by the operation.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result};
use tracing::warn;

use crate::keys::{AccessKey, KeyStore, Permission};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Any,
    CreateBuckets,
    On(Permission),
}

fn needs(operation: &str) -> Needs {
    match operation {
        "ListBuckets" => Needs::Any,
        "CreateBucket" => Needs::CreateBuckets,
        "GetObject"
        | "HeadObject"
        | "ListObjects"
        | "ListObjectsV2"
        | "HeadBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning" => Needs::On(Permission::Read),
        "PutObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "ListParts"
        | "ListMultipartUploads" => Needs::On(Permission::Write),
        _ => Needs::On(Permission::Owner),
    }
}

/// The gateway's [`S3Auth`] and [`S3Access`].
#[derive(Debug, Clone)]
pub struct Access {
    keys: Arc<KeyStore>,
}

impl Access {
    /// Checks requests against `keys`.
    pub fn new(keys: Arc<KeyStore>) -> Self {
        Self { keys }
    }

    async fn key(&self, id: &str) -> S3Result<AccessKey> {
        match self.keys.get(id).await {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "the access key id you provided does not exist in our records",
            )),
            Err(error) => {
                warn!(%error, "access keys cannot be read");
                Err(S3Error::with_message(
                    S3ErrorCode::ServiceUnavailable,
                    format!("access keys cannot be read from the cluster: {error}"),
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for Access {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        Ok(SecretKey::from(self.key(access_key).await?.secret))
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "anonymous requests are refused: sign your requests with an access key",
            ));
        };
        let key = self.key(&credentials.access_key).await?;
        let operation = cx.s3_op().name().to_owned();
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        let allowed = match (needs(&operation), &bucket) {
            (Needs::Any, _) => true,
            (Needs::CreateBuckets, _) => key.create_buckets,
            (Needs::On(permission), Some(bucket)) => key.allows(bucket, permission),
            (Needs::On(_), None) => false,
        };
        if !allowed {
            let what = bucket.map_or_else(String::new, |b| format!(" on bucket {b}"));
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                format!(
                    "access key {} ({}) may not {operation}{what}",
                    key.id, key.name
                ),
            ));
        }
        cx.extensions_mut().insert(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_need_what_the_docs_say() {
        assert_eq!(needs("GetObject"), Needs::On(Permission::Read));
        assert_eq!(needs("PutObject"), Needs::On(Permission::Write));
        assert_eq!(needs("DeleteBucket"), Needs::On(Permission::Owner));
        assert_eq!(needs("PutBucketPolicy"), Needs::On(Permission::Owner));
        assert_eq!(needs("CreateBucket"), Needs::CreateBuckets);
        assert_eq!(needs("ListBuckets"), Needs::Any);
    }
}
