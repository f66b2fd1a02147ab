//! The S3 API over an Andromède client: [`Gateway`] implements `s3s`'s [`S3`] trait;
//! `s3s` does the HTTP, XML, routing and SigV4. Operations this gateway does not
//! implement answer `501 NotImplemented` (the trait's default).
//!
//! - [`bucket`], [`object`], [`list`]: the operations.
//! - [`body`]: request bodies hashed as they stream (ETag, checksums) and checked before
//!   the commit.
//! - [`attrs`]: what is kept beside the bytes, sealed.
//! - [`errors`]: client errors as S3 errors.
//! - [`locks`]: per-key write locks, which make conditional writes atomic within one
//!   gateway.

mod attrs;
mod body;
mod bucket;
mod errors;
mod list;
mod locks;
mod multipart;
mod object;

use std::sync::Arc;

use andromede_client::Client;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

pub use list::LIST_KEYS_MAX;
pub use multipart::LIST_PARTS_MAX;
pub use object::DELETE_OBJECTS_MAX;

use crate::keys::KeyStore;
use locks::KeyLocks;

/// The S3 service: a client of the cluster, the access keys, the region it answers for.
#[derive(Debug, Clone)]
pub struct Gateway {
    client: Client,
    keys: Arc<KeyStore>,
    region: String,
    locks: Arc<KeyLocks>,
}

impl Gateway {
    /// Serves `client`'s cluster with the keys of `keys`.
    pub fn new(client: Client, keys: Arc<KeyStore>, region: String) -> Self {
        Self {
            client,
            keys,
            region,
            locks: Arc::new(KeyLocks::default()),
        }
    }

    /// Every bucket of a cluster belongs to its tenant: one owner.
    fn owner(&self) -> Owner {
        Owner {
            display_name: Some("andromede".into()),
            id: Some(hex::encode(self.client.master_key_id())),
        }
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        Gateway::list_buckets(self, req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        Gateway::create_bucket(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        Gateway::delete_bucket(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        Gateway::head_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        Gateway::get_bucket_location(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        Gateway::get_bucket_versioning(self, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        Gateway::put_object(self, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        Gateway::get_object(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        Gateway::head_object(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        Gateway::delete_object(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        Gateway::delete_objects(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        Gateway::copy_object(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        Gateway::list_objects(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        Gateway::create_multipart_upload(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        Gateway::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        Gateway::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        Gateway::complete_multipart_upload(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        Gateway::abort_multipart_upload(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        Gateway::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        Gateway::list_multipart_uploads(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        Gateway::list_objects_v2(self, req).await
    }
}
