//! `POST /v1/sign`, `POST /v1/sign/batch`, `POST /v1/upload-policy`: check, decide, sign, audit,
//! answer, in that order. No URL is answered before its audit row is committed.
//!
//! `request` says what a request may ask and checks it; `plan` authorizes it (through
//! [`super::access`]) and maps it to the backend; `batch` runs many, streamed as NDJSON;
//! `upload_policy` signs HTML-form uploads; `multipart` the steps of S3 multipart uploads.

pub(super) mod batch;
pub(super) mod multipart;
mod plan;
mod request;
pub(super) mod upload_policy;

pub use batch::{BatchRequest, BatchResponse, BatchResult};
pub(super) use request::check;
pub use request::{SignRequest, SignResponse};

use super::access::{AuditTrail, BucketAccess};
use super::{ApiError, ApiJson, AppState, Caller};
use crate::signing::{SignedUrl, rfc3339_seconds};
use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The default URL lifetime, in seconds.
pub(super) const DEFAULT_TTL: i64 = 900;

fn answer(signed: SignedUrl, shape: plan::Shape) -> SignResponse {
    SignResponse {
        url: signed.url,
        method: shape.method.label().to_owned(),
        headers: signed.headers.into_iter().collect(),
        expires_at: rfc3339_seconds(signed.expires_at),
        protocol: shape.protocol.to_owned(),
        advisory_limits: shape.advisory.iter().map(|l| (*l).to_owned()).collect(),
    }
}

/// Sign one URL.
#[utoipa::path(post, path = "/v1/sign", tag = "signing", request_body = SignRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = SignResponse),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 401, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<SignRequest>,
) -> Result<Json<SignResponse>, ApiError> {
    let checked = check(request, None)?;
    let access = BucketAccess::resolve(&state, &caller, checked.bucket.as_str()).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    let planned = match plan::plan(&state, &access, &mut trail, checked) {
        Ok(planned) => planned,
        Err(error) => return Err(trail.fail(error).await),
    };
    let plan::Planned {
        url,
        signer,
        allowed,
        shape,
    } = planned;
    let signed = signer.sign(url, OffsetDateTime::now_utc()).await;
    let signed = match signed {
        Ok(signed) => signed,
        // Nothing was signed: the allowance is not recorded, as none was used.
        Err(error) => return Err(trail.fail(error.into()).await),
    };
    allowed.signed(&mut trail, signed.expires_at);
    trail.commit().await?;
    state
        .metrics
        .url_signed(shape.protocol, shape.method.label());
    Ok(Json(answer(signed, shape)))
}

/// `/v1/sign`, `/v1/sign/batch` (with a larger body limit), `/v1/sign/multipart`,
/// `/v1/upload-policy`.
pub fn router() -> OpenApiRouter<AppState> {
    let batches = OpenApiRouter::new()
        .routes(routes!(batch::batch))
        .layer(DefaultBodyLimit::max(batch::BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(sign))
        .routes(routes!(upload_policy::upload_policy))
        .routes(routes!(multipart::multipart))
        .merge(batches)
}
