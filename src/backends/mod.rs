//! Control-plane calls per storage backend that carry no object bytes: listing objects (filtered
//! by rights in [`crate::api`]), deleting a prefix (the `delete` release policy) and checking
//! that a bucket exists and may be listed. One module per backend — GCS's JSON API, S3's REST
//! API (`ListObjectsV2`, `DeleteObjects`) and Azure Blob's REST API (List Blobs, Delete Blob) —
//! behind [`ControlPlane`], so that the API never knows which one it talks to. Every call goes to
//! a configurable endpoint, so the tests run them on emulators.

pub mod azure;
pub mod gcs;
pub mod s3;

pub use gcs::Gcs;

/// Objects per listing page on every backend (each one's maximum): what bounds the memory a
/// manifest stream holds.
pub const PAGE_SIZE: u32 = 1000;

/// A failed control-plane call.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Storage answered with an error status.
    #[error("storage answered {status}: {body}")]
    Status { status: u16, body: String },
    /// Storage could not be reached, or its answer not read.
    #[error("storage: {0}")]
    Other(String),
}

impl StorageError {
    /// Storage says the bucket (container) does not exist: a listing answers 404 for nothing else.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }

    /// Storage refuses the broker's credentials access to it.
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// One object in a listing, in the backend's names (the bucket's prefix included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    /// Last modified, RFC 3339.
    pub updated: Option<String>,
}

/// A page of a listing, in name order, and the backend's token for the next one.
#[derive(Debug, Default)]
pub struct ObjectPage {
    pub items: Vec<ObjectInfo>,
    pub next_page_token: Option<String>,
}

/// One backend's control plane.
pub enum ControlPlane {
    Gcs(gcs::Gcs),
    S3(s3::S3Control),
    Azure(azure::AzureControl),
}

impl ControlPlane {
    /// One page (at most [`PAGE_SIZE`]) of the objects of `bucket` under `prefix`, by name, from
    /// the first name after `start_after` when one is given; `page_token` is what the page
    /// before answered.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<ObjectPage, StorageError> {
        match self {
            Self::Gcs(gcs) => gcs.list(bucket, prefix, start_after, page_token).await,
            Self::S3(s3) => s3.list(bucket, prefix, start_after, page_token).await,
            Self::Azure(azure) => azure.list(bucket, prefix, start_after, page_token).await,
        }
    }

    /// Checks that `bucket` exists and the broker may list it under `prefix`.
    pub async fn check_listable(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        match self {
            Self::Gcs(gcs) => gcs.check_listable(bucket, prefix).await,
            Self::S3(s3) => s3.check_listable(bucket, prefix).await,
            Self::Azure(azure) => azure.check_listable(bucket, prefix).await,
        }
    }

    /// Deletes every object under `prefix`, which must not be empty (never a whole bucket);
    /// how many.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        if prefix.is_empty() {
            return Err(StorageError::Other(
                "refusing to delete a whole bucket".into(),
            ));
        }
        match self {
            Self::Gcs(gcs) => gcs.delete_prefix(bucket, prefix).await,
            Self::S3(s3) => s3.delete_prefix(bucket, prefix).await,
            Self::Azure(azure) => azure.delete_prefix(bucket, prefix).await,
        }
    }
}

/// `response` if its status is a success, else its status and the start of its body.
pub(crate) async fn checked(
    response: reqwest::Response,
) -> Result<reqwest::Response, StorageError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Err(StorageError::Status {
        status,
        body: body.chars().take(300).collect(),
    })
}
