//! The HTTP API: axum routes, one module per resource, problem+json errors, OpenAPI.

mod buckets;
mod error;
mod extract;
mod grants;
mod health;
mod me;
mod metrics;
mod objects;
mod openapi;
mod page_token;
mod projects;
mod sign;

pub use error::{ApiError, Problem};
pub use extract::{ApiJson, Caller};
pub use metrics::Metrics;

use crate::identity::{Principal, TokenVerifier};
use crate::policy::Policies;
use crate::signer::SigningService;
use crate::store::{AccessContext, AuditLog, BucketRecord, DecisionCache, Store, StoreError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use std::ops::Deref;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler shares.
pub struct Services {
    pub store: Store,
    pub audit: AuditLog,
    pub verifier: TokenVerifier,
    pub policies: Policies,
    pub signer: SigningService,
    pub admin_role: String,
    pub metrics: Metrics,
    /// What decisions read, dropped on every change any replica makes.
    pub cache: Arc<DecisionCache>,
    /// Storage control plane, when one is configured.
    pub gcs: Option<crate::gcs::Gcs>,
    /// Requests per verified subject, when limited.
    pub rate_limit: Option<Arc<SubjectLimiter>>,
    /// Seals listings' page tokens; its key is read from the database on first use.
    pub page_tokens: tokio::sync::OnceCell<page_token::PageTokens>,
}

/// A rate limiter keyed by the caller's verified subject.
pub type SubjectLimiter = governor::DefaultKeyedRateLimiter<String>;

/// The handlers' state.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// Shares `services` with the handlers.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Services {
    /// The page-token sealer, its key loaded (or made) the first time.
    async fn page_tokens(&self) -> Result<&page_token::PageTokens, ApiError> {
        self.page_tokens
            .get_or_try_init(|| async {
                let key = self
                    .store
                    .secret(page_token::KEY_NAME, page_token::KEY_LEN)
                    .await?;
                page_token::PageTokens::new(&key).map_err(|e| {
                    tracing::error!(error = e, "the stored page-token key is unusable");
                    ApiError::Internal
                })
            })
            .await
    }

    /// The class of `bucket` and the index of its classification level, if the policies still
    /// define both.
    pub fn class_of(&self, bucket: &BucketRecord) -> Option<(&crate::policy::BucketClass, usize)> {
        let classes = &self.policies.classes;
        Some((
            classes.get(&bucket.class)?,
            classes.level(&bucket.classification)?,
        ))
    }

    /// The caller's personal bucket, made on their first request.
    pub async fn personal_bucket(&self, principal: &Principal) -> Result<BucketRecord, ApiError> {
        if let Some(bucket) = self.cache.personal_bucket(&principal.subject).await {
            return Ok(bucket);
        }
        let generation = self.cache.generation();
        let class = self.policies.classes.personal();
        let level = &self.policies.classes.levels[class.classification];
        let (bucket, created) = self
            .store
            .ensure_personal_bucket(
                &principal.subject,
                principal.username.as_deref(),
                class,
                level,
            )
            .await?;
        if created {
            // Anyone who asked for this name before it existed may have a cached 404.
            self.cache
                .changed(crate::store::CacheChange::personal_bucket(
                    &bucket.name,
                    &principal.subject,
                ))
                .await;
        }
        self.cache
            .remember_personal_bucket(&principal.subject, bucket.clone(), generation)
            .await;
        Ok(bucket)
    }

    /// The bucket with the caller's grants and memberships, from the cache when it is live.
    pub async fn access_context(
        &self,
        bucket: &str,
        caller: &Caller,
    ) -> Result<Arc<AccessContext>, StoreError> {
        self.cache
            .access_context(
                &self.store,
                bucket,
                &caller.grant_principals,
                &caller.member_keys,
            )
            .await
    }
}

/// A change to projects, members, grants or buckets, as the audit records it.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    pub action: crate::policy::Action,
    pub bucket: Option<&'a str>,
    /// The member, prefix or project the change is about.
    pub object: Option<&'a str>,
    /// `CREATE_GRANT`, `DELETE_MEMBER`, …
    pub operation: &'static str,
}

impl Change<'_> {
    /// Called once the change has committed: drops what this replica cached about it (so the
    /// caller's next request never sees the old answer), then records it, before the answer leaves.
    pub async fn done(
        self,
        state: &AppState,
        caller: &Caller,
        reason: &str,
    ) -> Result<(), ApiError> {
        state.cache.changed(self.cache_change()).await;
        self.record(state, caller, "allow", reason).await
    }

    /// What this change makes stale in the decision cache.
    fn cache_change(&self) -> crate::store::CacheChange {
        use crate::store::CacheChange;
        match (self.operation, self.bucket) {
            ("CREATE_GRANT" | "DELETE_GRANT", Some(bucket)) => CacheChange::grant(bucket),
            ("CREATE_BUCKET" | "DELETE_BUCKET", Some(bucket)) => CacheChange::bucket(bucket),
            // Projects and members reach into every bucket of the project (and anything new
            // falls here too): drop every cached decision.
            _ => CacheChange::members(),
        }
    }

    /// Records that the change was refused and why: the why goes to the audit, never to the caller.
    pub async fn refused(
        self,
        state: &AppState,
        caller: &Caller,
        reason: &str,
    ) -> Result<(), ApiError> {
        self.record(state, caller, "deny", reason).await
    }

    async fn record(
        self,
        state: &AppState,
        caller: &Caller,
        decision: &'static str,
        reason: &str,
    ) -> Result<(), ApiError> {
        state.metrics.decision(decision);
        let event = crate::store::AuditEvent {
            at: time::OffsetDateTime::now_utc(),
            request_id: caller.request_id.clone(),
            subject: Some(caller.principal.subject.clone()),
            client: caller.principal.client.clone(),
            action: self.action.as_str(),
            bucket: self.bucket.map(str::to_owned),
            object: self.object.map(str::to_owned),
            method: Some(self.operation),
            expires_at: None,
            decision,
            reason: if caller.admin {
                format!("{reason} (storage admin)")
            } else {
                reason.to_owned()
            },
        };
        Ok(state.audit.record(vec![event]).await?)
    }
}

/// The request id that `SetRequestIdLayer` put on the request.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// Every JSON body the API reads, from arbitrary bytes; sign requests also go through their
/// checks. For the fuzz targets (`crate::fuzz`).
pub fn fuzz_request_bodies(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<sign::SignRequest>(data) {
        let _ = sign::check(request, None);
    }
    if let Ok(batch) = serde_json::from_slice::<sign::BatchRequest>(data) {
        // Items are parsed one by one, so that one bad item fails alone.
        for item in batch.items {
            if let Ok(request) = serde_json::from_value::<sign::SignRequest>(item) {
                let _ = sign::check(request, batch.expires_in);
            }
        }
    }
    let _ = serde_json::from_slice::<sign::UploadPolicyRequest>(data);
    let _ = serde_json::from_slice::<objects::PrefixRequest>(data);
    let _ = serde_json::from_slice::<buckets::NewBucketBody>(data);
    if let Ok(grant) = serde_json::from_slice::<grants::NewGrantBody>(data) {
        let _ = crate::policy::GrantPrincipal::parse(&grant.principal);
    }
    let _ = serde_json::from_slice::<projects::NewProject>(data);
    let _ = serde_json::from_slice::<projects::MemberRole>(data);
}

/// Requests larger than this are refused, except batches.
const BODY_LIMIT: usize = 256 * 1024;
/// 10,000 sign requests with long names and metadata.
const BATCH_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// All routes with their middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/me", get(me::me))
        .route("/v1/sign", post(sign::sign))
        .route(
            "/v1/sign/batch",
            post(sign::batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/v1/upload-policy", post(sign::upload_policy))
        .route("/v1/buckets", get(buckets::list).post(buckets::create))
        .route(
            "/v1/buckets/{bucket}",
            get(buckets::get).delete(buckets::delete),
        )
        .route("/v1/buckets/{bucket}/objects", get(objects::list))
        .route("/v1/sign/prefix", post(objects::sign_prefix))
        .route(
            "/v1/buckets/{bucket}/grants",
            get(grants::list).post(grants::create),
        )
        .route(
            "/v1/buckets/{bucket}/grants/{id}",
            axum::routing::delete(grants::delete),
        )
        .route("/v1/projects", get(projects::list).post(projects::create))
        .route("/v1/projects/{slug}", get(projects::get))
        .route(
            "/v1/projects/{slug}/members/{member}",
            axum::routing::put(projects::put_member).delete(projects::delete_member),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// An `application/x-ndjson` answer whose body is what arrives on `rx`, chunk by chunk; the
/// sender learns the client left when a send fails.
pub fn ndjson_response(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> axum::response::Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = axum::response::Response::new(axum::body::Body::from_stream(stream));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// The last line of an NDJSON stream that had to stop: why, as a code and a message.
pub fn ndjson_error_line(error: &ApiError) -> String {
    let line = serde_json::json!({ "error": { "code": error.code(), "message": error.detail() } });
    format!("{line}\n")
}
