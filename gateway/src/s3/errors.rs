//! Andromède errors as S3 errors: the code and status AWS documents for the case, and a
//! message that says what happened.

use andromede_client::{ClientError, CodecError};
use andromede_cluster::QuorumError;
use s3s::{S3Error, S3ErrorCode};
use tracing::warn;

/// A body refused once read (a digest that does not match), carried through the
/// client library's finish hook back to the request.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct BodyError {
    pub(crate) code: S3ErrorCode,
    pub(crate) message: String,
}

impl BodyError {
    pub(crate) fn new(code: S3ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The S3 error for a failed client operation.
pub(crate) fn s3_error(error: ClientError) -> S3Error {
    let code = match &error {
        ClientError::InvalidBucketName { .. } => S3ErrorCode::InvalidBucketName,
        ClientError::InvalidKey { reason } if reason.contains("1024") => {
            S3ErrorCode::KeyTooLongError
        }
        ClientError::InvalidKey { .. } | ClientError::InvalidArgument(_) => {
            S3ErrorCode::InvalidArgument
        }
        ClientError::NoSuchBucket { .. } => S3ErrorCode::NoSuchBucket,
        ClientError::BucketExists { .. } => S3ErrorCode::BucketAlreadyOwnedByYou,
        ClientError::BucketNotEmpty { .. } => S3ErrorCode::BucketNotEmpty,
        ClientError::NoSuchKey { .. } => S3ErrorCode::NoSuchKey,
        ClientError::NoSuchUpload { .. } => S3ErrorCode::NoSuchUpload,
        ClientError::InvalidPart { .. } => S3ErrorCode::InvalidPart,
        ClientError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        ClientError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
        ClientError::Codec(CodecError::Refused(refused)) => {
            if let Some(body) = refused.downcast_ref::<BodyError>() {
                return S3Error::with_message(body.code.clone(), body.message.clone());
            }
            S3ErrorCode::InvalidRequest
        }
        ClientError::Codec(CodecError::Read(_)) => S3ErrorCode::IncompleteBody,
        ClientError::Codec(CodecError::TooLarge { field, .. }) if field.contains("metadata") => {
            S3ErrorCode::MetadataTooLarge
        }
        ClientError::Codec(CodecError::ObjectTooLarge { .. }) => S3ErrorCode::EntityTooLarge,
        // The gateway's own certificate does not allow it (every node checks).
        ClientError::Quorum(QuorumError::Forbidden(_)) | ClientError::Forbidden(_) => {
            S3ErrorCode::AccessDenied
        }
        ClientError::Quorum(_) | ClientError::Net(_) | ClientError::Placement(_) => {
            // The cluster, not the request: the operator wants to see it.
            warn!(%error, "request refused: the cluster is not available enough");
            S3ErrorCode::ServiceUnavailable
        }
        _ => {
            warn!(%error, "request failed");
            S3ErrorCode::InternalError
        }
    };
    S3Error::with_message(code, error.to_string())
}
