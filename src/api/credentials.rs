//! `POST /v1/credentials`: short-lived credentials for tools that cannot take a signed URL,
//! scoped to one prefix of a bucket and vended by the bucket's backend ([`crate::cloud::vend`]).
//!
//! The caller must hold every action of the access asked for on the whole prefix, through
//! prefix rights (an exact-object grant never covers a prefix). The credentials live no longer
//! than the class allows, than the grants that give the access last, and than the backend can
//! vend; they cannot be recalled, so revoking a grant takes effect when they expire. Every vend
//! is an audit row, committed before the credentials leave. Identical vends (same caller, scope,
//! access and duration) are served from a cache while at least three quarters of their life is
//! left, so that a storm of restarting notebooks is not a storm of STS calls.

use super::access::{AuditTrail, BucketAccess, Granted};
use super::{ApiError, ApiJson, AppState, Caller};
use crate::cloud::vend::{VendError, VendScope, Vended};
use crate::policy::{
    Action, Actions, BackendSettings, Holding, LogicalBucketName, ObjectPrefix, Scope,
    credential_lifetime,
};
use crate::signing::{ObjectName, rfc3339_seconds};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The lifetime of credentials when none is asked for: 15 minutes.
pub const DEFAULT_DURATION: u64 = 900;

/// What credentials may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Access {
    /// Get and list.
    #[serde(rename = "read")]
    Read,
    /// Get, list, put and delete.
    #[serde(rename = "read-write")]
    ReadWrite,
}

impl Access {
    fn actions(self) -> &'static [Action] {
        match self {
            Self::Read => &[Action::Read],
            Self::ReadWrite => &[Action::Read, Action::Delete, Action::Write],
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::ReadWrite => "read-write",
        }
    }
}

/// A request for credentials.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Logical bucket.
    pub bucket: String,
    /// The object prefix the credentials reach; empty (the default) for the whole bucket.
    #[serde(default)]
    pub prefix: String,
    pub access: Access,
    /// Seconds; default 900, at most the class's limit and the end of the grants that give the
    /// access; S3 vends 900 to 43200, GCS up to 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

/// Where the credentials reach, in the storage's own terms: what a tool is configured with.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StorageLocation {
    /// The storage's base URL (S3 endpoint, GCS JSON API, Azure blob service).
    pub endpoint: String,
    /// S3: the region to sign for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3: `path` or `virtual-hosted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_style: Option<String>,
    /// The backend bucket (Azure: container).
    pub bucket: String,
    /// The backend prefix the credentials reach (the logical bucket's and the asked one).
    pub prefix: String,
}

/// S3 session credentials.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// A Google OAuth access token.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcsToken {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
}

/// An Azure SAS for a container.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AzureSas {
    /// The query string to append to blob and container URLs (no `?`).
    pub sas_token: String,
    pub container_url: String,
}

/// Vended credentials and where they reach.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CredentialsResponse {
    /// `s3`, `gcs` or `azure`: which of the credential fields is set.
    pub kind: String,
    pub bucket: String,
    pub prefix: String,
    pub access: Access,
    /// RFC 3339; the credentials cannot be recalled before it.
    pub expires_at: String,
    pub storage: StorageLocation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Credentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSas>,
}

/// Identical vends, kept while they are worth handing out again.
#[derive(Clone)]
pub struct CredentialCache {
    vended: moka::future::Cache<VendKey, Arc<Vended>>,
    misses: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            vended: moka::future::Cache::builder()
                .max_capacity(100_000)
                // No credentials outlive this (STS's longest), so no entry need either.
                .time_to_live(crate::cloud::vend::s3::MAX_DURATION)
                .build(),
            misses: Arc::default(),
        }
    }
}

impl CredentialCache {
    /// How many vends reached a backend (for tests and benchmarks).
    pub fn misses(&self) -> u64 {
        self.misses.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What makes two vends identical. Fields, never a joined string: identities are hostile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VendKey {
    subject: String,
    bucket: String,
    prefix: String,
    access: Access,
    duration: u64,
}

/// Vend credentials.
#[utoipa::path(post, path = "/v1/credentials", tag = "credentials", request_body = CredentialsRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = CredentialsResponse),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 401, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn credentials(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CredentialsRequest>,
) -> Result<Json<CredentialsResponse>, ApiError> {
    let bucket = LogicalBucketName::parse(&request.bucket)
        .map_err(|e| ApiError::bad_request("invalid_bucket_name", e))?;
    let prefix = ObjectPrefix::parse(&request.prefix)
        .map_err(|e| ApiError::bad_request("invalid_prefix", e))?;
    let access = BucketAccess::resolve(&state, &caller, bucket.as_str()).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    let method = match request.access {
        Access::Read => "CREDENTIALS_READ",
        Access::ReadWrite => "CREDENTIALS_READ_WRITE",
    };
    let scope = Scope::Prefix(prefix.as_str());
    let Granted {
        record,
        class,
        allowed,
    } = match access.authorize_all(&mut trail, request.access.actions(), scope, method) {
        Ok(granted) => granted,
        Err(error) => return Err(trail.fail(error).await),
    };
    let not_vended = |error: &ApiError| format!("not vended: {}", error.detail());
    let Some(vendor) = state.vendors.get(&class.backend) else {
        let error = ApiError::bad_request(
            "unsupported_by_backend",
            "this bucket's storage is not set up to vend credentials (an S3 backend needs vend_role_arn; GCS needs an RSA key or Workload Identity): use signed URLs",
        );
        return Err(allowed.fail(trail, not_vended(&error), error).await);
    };
    let now = OffsetDateTime::now_utc();
    let actions: Actions = request.access.actions().iter().copied().collect();
    let holding_left = match access.holding(actions, scope) {
        Some(Holding::Forever) => None,
        Some(Holding::Until(end)) => Some(u64::try_from((end - now).whole_seconds()).unwrap_or(0)),
        // Allowed a moment ago: only a grant expiring in between gets here.
        None => Some(0),
    };
    let (min, max) = vendor.lifetimes();
    let lifetime = match credential_lifetime(
        request.duration,
        DEFAULT_DURATION,
        u64::from(state.ttl_limit(class)),
        holding_left,
        (min.as_secs(), max.as_secs()),
    ) {
        Ok(lifetime) => lifetime,
        Err(refused) => {
            let error = ApiError::bad_request(refused.code(), refused.to_string());
            return Err(allowed.fail(trail, not_vended(&error), error).await);
        }
    };
    let backend_prefix = format!("{}{}", record.backend_prefix, prefix.as_str());
    if !backend_prefix.is_empty() && ObjectName::parse(&backend_prefix).is_err() {
        let error = ApiError::bad_request(
            "invalid_prefix",
            "prefix too long for this bucket (1024 bytes with its own prefix)",
        );
        return Err(allowed.fail(trail, not_vended(&error), error).await);
    }
    let vend_scope = VendScope {
        bucket: &record.backend_bucket,
        prefix: &backend_prefix,
        write: request.access == Access::ReadWrite,
    };
    let key = VendKey {
        subject: caller.principal.subject.clone(),
        bucket: bucket.as_str().to_owned(),
        prefix: prefix.as_str().to_owned(),
        access: request.access,
        duration: lifetime,
    };
    // Never longer than asked and held now: a cached vend past that is not reused.
    let latest_end = now + Duration::from_secs(lifetime);
    let fresh_until = |vended: &Vended| {
        vended.expires_at() <= latest_end
            && vended.expires_at() - now >= Duration::from_secs(lifetime * 3 / 4)
    };
    let cache = &state.credentials;
    let cached = cache.vended.get(&key).await.filter(|v| fresh_until(v));
    let (vended, from_cache) = match cached {
        Some(vended) => (vended, true),
        None => {
            cache.vended.invalidate(&key).await;
            let session = session_name(&caller.principal.subject);
            let vending = cache.vended.try_get_with(key, async {
                cache
                    .misses
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                vendor
                    .vend(&vend_scope, Duration::from_secs(lifetime), &session)
                    .await
                    .map(Arc::new)
            });
            match vending.await {
                Ok(vended) => (vended, false),
                Err(error) => {
                    let error = match error.as_ref() {
                        VendError::Unsupported(why) => {
                            ApiError::bad_request("unsupported_by_backend", why.clone())
                        }
                        VendError::Upstream(why) => {
                            tracing::error!(backend = class.backend, error = %why, "vending credentials failed");
                            ApiError::Unavailable
                        }
                    };
                    return Err(allowed.fail(trail, not_vended(&error), error).await);
                }
            }
        }
    };
    let expires_at = vended.expires_at();
    allowed
        .noting(&format!(
            "{} credentials for {:?}{}",
            request.access.as_str(),
            backend_prefix,
            if from_cache { " (reused)" } else { "" }
        ))
        .signed(&mut trail, expires_at);
    trail.commit().await?;
    state
        .metrics
        .url_signed(class.backend_kind.protocol(), method);
    let storage = location(
        &state,
        &class.backend,
        &record.backend_bucket,
        &backend_prefix,
    );
    let mut answer = CredentialsResponse {
        kind: class.backend_kind.as_str().to_owned(),
        bucket: bucket.as_str().to_owned(),
        prefix: prefix.as_str().to_owned(),
        access: request.access,
        expires_at: rfc3339_seconds(expires_at),
        storage,
        s3: None,
        gcs: None,
        azure: None,
    };
    match vended.as_ref() {
        Vended::S3 {
            access_key_id,
            secret_access_key,
            session_token,
            ..
        } => {
            answer.s3 = Some(S3Credentials {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: session_token.clone(),
            });
        }
        Vended::Gcs { access_token, .. } => {
            answer.gcs = Some(GcsToken {
                access_token: access_token.clone(),
                token_type: "Bearer".into(),
            });
        }
        Vended::Azure {
            sas_token,
            container_url,
            ..
        } => {
            answer.azure = Some(AzureSas {
                sas_token: sas_token.clone(),
                container_url: container_url.clone(),
            });
        }
    }
    Ok(Json(answer))
}

/// An STS session name for `subject`: `storage-broker-` and 40 hex digits of its SHA-256, so
/// that no identity string reaches the session's name (STS allows `[\w+=,.@-]{2,64}`) and one
/// caller's sessions can be found in the storage's own logs.
fn session_name(subject: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject.as_bytes());
    let hex = hex::encode(digest.as_ref());
    format!("storage-broker-{}", &hex[..40])
}

/// Where a backend's storage is, for the answer.
fn location(state: &AppState, backend: &str, bucket: &str, prefix: &str) -> StorageLocation {
    let settings = state.policies.classes.backend(backend).map(|b| &b.settings);
    let (endpoint, region, url_style) = match settings {
        Some(BackendSettings::S3 {
            endpoint,
            region,
            url_style,
            ..
        }) => (
            endpoint.url(),
            Some(region.clone()),
            Some(match url_style {
                crate::signing::UrlStyle::VirtualHosted => "virtual-hosted".to_owned(),
                _ => "path".to_owned(),
            }),
        ),
        Some(BackendSettings::Azure { endpoint, .. }) => (endpoint.base().to_owned(), None, None),
        _ => (
            state
                .gcs_endpoint
                .clone()
                .unwrap_or_else(|| "https://storage.googleapis.com".to_owned()),
            None,
            None,
        ),
    };
    StorageLocation {
        endpoint,
        region,
        url_style,
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    }
}

/// `/v1/credentials`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_carry_no_identity_and_fit_sts() {
        for subject in ["alice", "a/../b", "x\u{0}y", &"z".repeat(5000)] {
            let name = session_name(subject);
            assert!(name.len() <= 64, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b)),
                "{name}"
            );
        }
        assert_ne!(session_name("alice"), session_name("bob"));
    }

    #[test]
    fn read_write_needs_every_object_action() {
        let actions: Actions = Access::ReadWrite.actions().iter().copied().collect();
        for action in [Action::Read, Action::Write, Action::Delete] {
            assert!(actions.contains(action), "{action:?}");
        }
        assert!(!actions.contains(Action::Share));
        assert_eq!(Access::Read.actions(), &[Action::Read]);
    }
}
