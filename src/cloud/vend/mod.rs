//! Vended credentials: short-lived credentials, scoped to one prefix of one backend bucket, for
//! tools that cannot take a signed URL (FUSE mounts, the AWS CLI, rclone, gcsfuse). Each
//! backend vends its own kind: S3 session credentials from STS `AssumeRole` with a session
//! policy ([`s3`]), a Google access token downscoped by a Credential Access Boundary ([`gcs`]),
//! an Azure container SAS ([`azure`]). Who may have which is decided in [`crate::api`]; this
//! module only asks the clouds, and what it builds for them (policies, boundaries) is pure and
//! tested on its own.

pub mod azure;
pub mod gcs;
pub mod s3;

use std::time::Duration;
use time::OffsetDateTime;

/// What a credential may reach, in the backend's own names.
#[derive(Clone, Copy, Debug)]
pub struct VendScope<'a> {
    /// The backend bucket (Azure: container).
    pub bucket: &'a str,
    /// The backend prefix (the logical bucket's prefix and the asked one); empty for the whole
    /// bucket.
    pub prefix: &'a str,
    /// Read-write (else read-only).
    pub write: bool,
}

/// Credentials as a backend issued them.
#[derive(Clone, PartialEq, Eq)]
pub enum Vended {
    S3 {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
        expires_at: OffsetDateTime,
    },
    Gcs {
        access_token: String,
        expires_at: OffsetDateTime,
    },
    Azure {
        /// The SAS query string (`sv=…&sig=…`), without `?`.
        sas_token: String,
        /// `{endpoint}/{container}`.
        container_url: String,
        expires_at: OffsetDateTime,
    },
}

impl Vended {
    /// When the credentials stop working.
    pub fn expires_at(&self) -> OffsetDateTime {
        match self {
            Self::S3 { expires_at, .. }
            | Self::Gcs { expires_at, .. }
            | Self::Azure { expires_at, .. } => *expires_at,
        }
    }
}

impl std::fmt::Debug for Vended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log.
        let kind = match self {
            Self::S3 { .. } => "S3",
            Self::Gcs { .. } => "Gcs",
            Self::Azure { .. } => "Azure",
        };
        f.debug_struct(kind)
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// Why no credentials were vended.
#[derive(Debug, thiserror::Error)]
pub enum VendError {
    /// The backend cannot scope credentials so (answered 400 `unsupported_by_backend`).
    #[error("{0}")]
    Unsupported(String),
    /// The cloud's identity service failed or refused (answered 503, logged).
    #[error("{0}")]
    Upstream(String),
}

/// What vends a backend's credentials.
#[derive(Debug)]
pub enum Vendor {
    S3(s3::AssumeRole),
    Gcs(gcs::Downscoper),
    Azure(azure::ContainerSas),
}

impl Vendor {
    /// The shortest and longest lifetime this backend can give credentials.
    pub fn lifetimes(&self) -> (Duration, Duration) {
        match self {
            Self::S3(_) => (s3::MIN_DURATION, s3::MAX_DURATION),
            Self::Gcs(_) => (Duration::from_secs(1), gcs::MAX_LIFETIME),
            Self::Azure(_) => (Duration::from_secs(1), azure::MAX_LIFETIME),
        }
    }

    /// Credentials for `scope` for `lifetime`; `session` names the session where the backend
    /// records one (S3), made by the caller from a hash of the identity.
    pub async fn vend(
        &self,
        scope: &VendScope<'_>,
        lifetime: Duration,
        session: &str,
    ) -> Result<Vended, VendError> {
        match self {
            Self::S3(sts) => sts.vend(scope, lifetime, session).await,
            Self::Gcs(downscoper) => downscoper.vend(scope, lifetime).await,
            Self::Azure(sas) => sas.vend(scope, lifetime),
        }
    }
}
