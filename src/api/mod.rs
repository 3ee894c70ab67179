//! The HTTP API: axum routes, one module per resource, problem+json errors, OpenAPI.

mod access;
mod audit;
mod buckets;
pub mod console;
mod credentials;
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

pub use audit::AuditView;
pub use credentials::{
    Access, AzureSas, CredentialsRequest, CredentialsResponse,
    DEFAULT_DURATION as DEFAULT_CREDENTIALS_DURATION, GcsToken, S3Credentials, StorageLocation,
};
pub use error::{ApiError, ItemError, Problem, StreamError};
pub use extract::{ApiJson, ApiQuery, Caller};
pub use metrics::Metrics;
pub use objects::{ManifestEntry, ManifestLine, PrefixRequest};
pub use sign::{BatchRequest, BatchResponse, BatchResult, SignRequest, SignResponse};

use crate::identity::{Principal, TokenVerifier};
use crate::policy::Policies;
use crate::signer::{BackendSigner, Signers};
use crate::store::{AuditLog, BucketRecord, DecisionCache, Store};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::get;
use std::ops::Deref;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// What every handler shares.
pub struct Services {
    pub store: Store,
    pub audit: AuditLog,
    pub verifier: TokenVerifier,
    pub policies: Policies,
    /// A signer per backend.
    pub signers: Signers,
    pub admin_role: String,
    pub metrics: Metrics,
    /// What decisions read, dropped on every change any replica makes.
    pub cache: Arc<DecisionCache>,
    /// Each backend's control plane, by backend name: absent where none is configured (GCS
    /// signed with an HMAC key).
    pub storage: std::collections::HashMap<String, crate::backends::ControlPlane>,
    /// What vends each backend's credentials for `/v1/credentials`, by backend name: absent
    /// where nothing can (an S3 backend without `vend_role_arn`, GCS signed with an HMAC key).
    pub vendors: std::collections::HashMap<String, Arc<crate::cloud::vend::Vendor>>,
    /// Vended credentials, reused for identical requests.
    pub credentials: credentials::CredentialCache,
    /// `BROKER_STORAGE_ENDPOINT`, named in vended GCS credentials' answers.
    pub gcs_endpoint: Option<String>,
    /// Seconds of the read reuse window (`BROKER_READ_REUSE_SECONDS`; 0: off).
    pub read_reuse: u32,
    /// Requests per verified subject, when limited.
    pub rate_limit: Option<Arc<SubjectLimiter>>,
    /// Seals listings' page tokens; its key is read from the database on first use.
    pub page_tokens: tokio::sync::OnceCell<page_token::PageTokens>,
    /// The console's Content-Security-Policy (its storage origins from the backends).
    pub console_csp: String,
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
    /// The reuse window of a read living `lifetime` seconds in `class` (0: none).
    pub fn reuse_window(&self, class: &crate::policy::BucketClass, lifetime: u32) -> u32 {
        crate::policy::reuse_window(self.read_reuse, class, lifetime)
    }

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

    /// The signer of `class`'s backend (every backend a class names has one from the start).
    pub fn signer(
        &self,
        class: &crate::policy::BucketClass,
    ) -> Result<&Arc<BackendSigner>, ApiError> {
        self.signers.backend(&class.backend).ok_or_else(|| {
            tracing::error!(
                class = class.name,
                backend = class.backend,
                "no signer for this backend"
            );
            ApiError::Internal
        })
    }

    /// The control plane of `class`'s backend, when one is configured.
    pub fn control_plane(
        &self,
        class: &crate::policy::BucketClass,
    ) -> Option<&crate::backends::ControlPlane> {
        self.storage.get(&class.backend)
    }

    /// The longest lifetime a URL for a bucket of `class` may have here.
    pub fn ttl_limit(&self, class: &crate::policy::BucketClass) -> u32 {
        let signer_max = self
            .signers
            .backend(&class.backend)
            .map_or(crate::signer::V4_MAX_EXPIRY_SECONDS, |s| {
                s.max_expiry_seconds()
            });
        crate::policy::ttl_limit(class, signer_max)
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
    let _ = serde_json::from_slice::<sign::upload_policy::UploadPolicyRequest>(data);
    let _ = serde_json::from_slice::<objects::PrefixRequest>(data);
    let _ = serde_json::from_slice::<buckets::NewBucketBody>(data);
    if let Ok(grant) = serde_json::from_slice::<grants::NewGrantBody>(data) {
        let _ = crate::policy::GrantPrincipal::parse(&grant.principal);
    }
    let _ = serde_json::from_slice::<credentials::CredentialsRequest>(data);
    let _ = serde_json::from_slice::<projects::NewProject>(data);
    let _ = serde_json::from_slice::<projects::MemberRole>(data);
}

/// Requests larger than this are refused, except batches.
const BODY_LIMIT: usize = 256 * 1024;

/// Every route, each declared once, with its OpenAPI description: a route cannot be served
/// undocumented.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(me::router())
        .merge(sign::router())
        .merge(credentials::router())
        .merge(objects::router())
        .merge(buckets::router())
        .merge(grants::router())
        .merge(audit::router())
        .merge(projects::router())
        .merge(health::router())
        .merge(metrics::router())
}

/// The OpenAPI 3.1 document of [`router`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// All routes with their middleware, and `/openapi.json` describing them.
pub fn router(state: AppState) -> Router {
    let (routes, document) = routes().split_for_parts();
    let document = Arc::new(document);
    routes
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(document.as_ref().clone()) }),
        )
        .merge(console::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::traces::request_span))
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
    let line = StreamError {
        error: error.into(),
    };
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    text
}
