//! Azure credentials: a SAS for a whole container, signed with the account key (service SAS) or
//! the current user-delegation key. A SAS scopes to a blob, a container or (on accounts with a
//! hierarchical namespace) a directory: never to a prefix of a flat container, so only a scope
//! that is a whole container can be vended here; anything narrower is refused.

use super::{VendError, VendScope, Vended};
use crate::cloud::DelegationKeys;
use crate::signing::{AzureSigner, BlobEndpoint, BlobSasRequest, SasKey};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The longest a vended SAS lives (the class's limit and the delegation key's life cap it
/// further).
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What signs the SAS.
#[derive(Debug)]
pub enum SasKeys {
    /// The account key.
    Account(Box<SasKey>),
    /// The current user-delegation key.
    Delegated(Arc<DelegationKeys>),
}

/// Signs container SAS tokens for one account.
#[derive(Debug)]
pub struct ContainerSas {
    keys: SasKeys,
    endpoint: BlobEndpoint,
}

impl ContainerSas {
    pub fn new(keys: SasKeys, endpoint: BlobEndpoint) -> Self {
        Self { keys, endpoint }
    }

    /// A container SAS for `scope`, which must be a whole container: read is `rl` (read,
    /// list), read-write `racwdl` (also add, create, write, delete).
    pub fn vend(&self, scope: &VendScope<'_>, lifetime: Duration) -> Result<Vended, VendError> {
        if !scope.prefix.is_empty() {
            return Err(VendError::Unsupported(format!(
                "Azure scopes a SAS to a whole container, not to a prefix of one: this bucket is the prefix {:?} of its container, so only signed URLs (POST /v1/sign) reach it",
                scope.prefix
            )));
        }
        let now = OffsetDateTime::now_utc();
        let expiry = now + lifetime;
        let key = match &self.keys {
            SasKeys::Account(key) => key.as_ref().clone(),
            SasKeys::Delegated(keys) => {
                let current = keys.current().ok_or_else(|| {
                    VendError::Upstream("no current Azure user-delegation key".into())
                })?;
                if expiry > current.expires_at {
                    return Err(VendError::Unsupported(format!(
                        "the SAS would outlive the user-delegation key signing it (until {}): ask for a shorter duration",
                        crate::signing::rfc3339_seconds(current.expires_at)
                    )));
                }
                current.sas_key()
            }
        };
        let request = BlobSasRequest {
            container: scope.bucket.to_owned(),
            blob: String::new(),
            permissions: if scope.write { "racwdl" } else { "rl" }.to_owned(),
            start: None,
            expiry,
            protocols: None,
            content_disposition: None,
            content_type: None,
            delegated_user_oid: None,
        };
        let signed = AzureSigner::new(key, self.endpoint.clone())
            .sign_container(&request)
            .map_err(|e| VendError::Upstream(format!("signing the container SAS: {e}")))?;
        Ok(Vended::Azure {
            sas_token: signed.token,
            container_url: format!("{}/{}", self.endpoint.base(), scope.bucket),
            expires_at: signed.expires_at,
        })
    }
}
