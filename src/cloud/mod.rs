//! Cloud credentials: what needs a cloud's identity services. The metadata server (Workload
//! Identity: the workload's service account and its tokens), IAM `signBlob` (keyless signing),
//! OAuth tokens minted with the service-account key the broker signs with, and the credentials
//! it vends to tools ([`vend`]). I/O lives here;
//! [`crate::signing`] stays pure, and [`crate::signer`] composes the two.

mod azure;
mod hmac_keys;
mod iam;
mod metadata;
mod oauth;
pub mod vend;

pub use azure::{
    DEFAULT_AUTHORITY_HOST, DelegationKey, DelegationKeys, EntraTokens, MAX_KEY_LIFETIME,
    STORAGE_SCOPE, WorkloadIdentity,
};
pub use hmac_keys::{HmacKeyConfig, HmacKeys, project_of};
pub use iam::{IamCounts, IamSigner};
pub use metadata::MetadataServer;
pub use oauth::{GOOGLE_TOKEN_URI, KeySource, ServiceAccountTokens};

/// A failed call to a cloud identity service.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CloudError(pub String);
