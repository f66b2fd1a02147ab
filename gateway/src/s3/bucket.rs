//! Buckets: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation,
//! GetBucketVersioning.

use andromede_client::{BucketOptions, ClientError};
use s3s::dto::{
    Bucket, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, GetBucketVersioningInput,
    GetBucketVersioningOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::Gateway;
use super::errors::s3_error;
use super::object::timestamp;
use crate::keys::{AccessKey, Grant, Permission};

impl Gateway {
    pub(crate) async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = req.extensions.get::<AccessKey>().cloned();
        let buckets = self.client.list_buckets().await.map_err(s3_error)?;
        let buckets = buckets
            .into_iter()
            .filter(|(name, _)| key.as_ref().is_some_and(|k| k.sees(name)))
            .map(|(name, info)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(info.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(self.owner()),
            ..ListBucketsOutput::default()
        }))
    }

    pub(crate) async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let key = req.extensions.get::<AccessKey>().cloned();
        let input = req.input;
        if let Some(location) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            && location.as_str() != self.region
            && !location.as_str().is_empty()
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidLocationConstraint,
                format!(
                    "this gateway serves region {}; the location constraint {} does not match",
                    self.region,
                    location.as_str()
                ),
            ));
        }
        match self
            .client
            .create_bucket(&input.bucket, BucketOptions::default())
            .await
        {
            Ok(_) => {}
            Err(ClientError::BucketExists { bucket }) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::BucketAlreadyOwnedByYou,
                    format!("bucket {bucket} exists already and is yours"),
                ));
            }
            Err(e) => return Err(s3_error(e)),
        }
        // The creator owns what it created.
        if let Some(mut key) = key
            && !key.allows(&input.bucket, Permission::Owner)
        {
            key.grants.push(Grant {
                bucket: input.bucket.clone(),
                permission: Permission::Owner,
            });
            self.keys.put(&key).await.map_err(s3_error)?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    pub(crate) async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.client
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::with_status(
            DeleteBucketOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.client
            .head_bucket(&req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..HeadBucketOutput::default()
        }))
    }

    pub(crate) async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.client
            .head_bucket(&req.input.bucket)
            .await
            .map_err(s3_error)?;
        // us-east-1 answers an empty constraint, as AWS.
        let location = (self.region != "us-east-1")
            .then(|| s3s::dto::BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    pub(crate) async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.client
            .head_bucket(&req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }
}
