//! Liveness and readiness.

use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and the issuer's keys are loaded. Either way the answer
/// names each check (`database`, `keys`), and reports whether the change feed that keeps the
/// decision cache fresh is listening (`change_feed`: `listening` or `connecting`; while it
/// connects, decisions are read from the database and the broker is still ready).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready: `{status, database, keys, change_feed}`"),
    (status = 503, body = super::Problem, content_type = "application/problem+json",
        description = "not ready; `detail` says which check failed, and `database` and `keys` are `ok` or `failing`")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await,
        Ok(Ok(()))
    );
    let keys = state.verifier.keys().has_keys();
    let feed = if state.cache.is_live() {
        "listening"
    } else {
        "connecting"
    };
    let check = |ok: bool| if ok { "ok" } else { "failing" };
    if database && keys {
        return Json(json!({
            "status": "ready", "database": "ok", "keys": "ok", "change_feed": feed,
        }))
        .into_response();
    }
    let detail = match (database, keys) {
        (false, false) => {
            "not ready: the database does not answer and the issuer's signing keys are not loaded"
        }
        (false, true) => "not ready: the database does not answer",
        _ => {
            "not ready: the issuer's signing keys are not loaded (is BROKER_OIDC_ISSUER reachable?)"
        }
    };
    tracing::warn!(database, keys, "{detail}");
    let mut problem = serde_json::to_value(ApiError::Unavailable.problem()).unwrap_or_default();
    problem["detail"] = detail.into();
    problem["database"] = check(database).into();
    problem["keys"] = check(keys).into();
    problem["change_feed"] = feed.into();
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(problem)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// `/healthz` and `/readyz`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}
