//! PLACEHOLDER: being written.

use super::{ObjectPage, StorageError};

/// The control plane.
pub struct AzureControl {}

impl AzureControl {
    pub async fn list(
        &self,
        _bucket: &str,
        _prefix: &str,
        _start_after: Option<&str>,
        _page_token: Option<&str>,
    ) -> Result<ObjectPage, StorageError> {
        Err(StorageError::Other("not yet".into()))
    }

    pub async fn check_listable(&self, _bucket: &str, _prefix: &str) -> Result<(), StorageError> {
        Err(StorageError::Other("not yet".into()))
    }

    pub async fn delete_prefix(&self, _bucket: &str, _prefix: &str) -> Result<u64, StorageError> {
        Err(StorageError::Other("not yet".into()))
    }
}
