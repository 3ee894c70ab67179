//! The one error type of the signing core.

use std::path::PathBuf;

/// Everything that can make signing refuse an input. Each variant has a stable [`code`](Self::code)
/// that the HTTP API and the CLI report; messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read key file {path}: {source}")]
    KeyFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file is not a service-account key or an HMAC key: {0}")]
    KeyFileInvalid(String),
    #[error("service-account key is not an RSA key ({0}); GCS V4 signing needs RSA")]
    KeyNotRsa(&'static str),
    #[error("service-account private key cannot be used: {0}")]
    KeyInvalid(String),
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName { name: String, reason: &'static str },
    #[error("invalid object name: {0}")]
    InvalidObjectName(&'static str),
    #[error("expiry must be 1..=604800 seconds, got {0}")]
    InvalidExpiry(i64),
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    #[error("query parameter {0:?} is set by the signer and cannot be given")]
    ReservedQueryParameter(String),
    #[error("invalid POST policy field {name:?}: {reason}")]
    InvalidPolicyField { name: String, reason: &'static str },
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        endpoint: String,
        reason: &'static str,
    },
    #[error("invalid region {0:?}: letters, digits and '-' only (`auto` for R2)")]
    InvalidRegion(String),
    #[error("invalid signing time: {0}")]
    InvalidTime(&'static str),
    #[error("{0}")]
    UnsupportedByBackend(String),
    #[error("the signing backend failed: {0}")]
    Backend(String),
    #[error("the signing service is unavailable: {0}")]
    Unavailable(String),
}

impl SigningError {
    /// A stable machine-readable code for problem+json bodies and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyFileUnreadable { .. } => "key_file_unreadable",
            Self::KeyFileInvalid(_) => "key_file_invalid",
            Self::KeyNotRsa(_) => "key_not_rsa",
            Self::KeyInvalid(_) => "key_invalid",
            Self::InvalidBucketName { .. } => "invalid_bucket_name",
            Self::InvalidObjectName(_) => "invalid_object_name",
            Self::InvalidExpiry(_) => "invalid_expiry",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::ReservedQueryParameter(_) => "reserved_query_parameter",
            Self::InvalidPolicyField { .. } => "invalid_policy_field",
            Self::InvalidEndpoint { .. } => "invalid_endpoint",
            Self::InvalidRegion(_) => "invalid_region",
            Self::InvalidTime(_) => "invalid_time",
            Self::UnsupportedByBackend(_) => "unsupported_by_backend",
            Self::Backend(_) => "signing_backend_failed",
            Self::Unavailable(_) => "signing_unavailable",
        }
    }
}
