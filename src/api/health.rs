//! Liveness and readiness.

use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::time::Duration;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and the issuer's keys are loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready"),
    (status = 503, body = super::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await,
        Ok(Ok(()))
    );
    let keys = state.verifier.keys().has_keys();
    if database && keys {
        Ok(Json(
            json!({ "status": "ready", "database": "ok", "keys": "ok" }),
        ))
    } else {
        tracing::warn!(database, keys, "not ready");
        Err(ApiError::Unavailable)
    }
}
