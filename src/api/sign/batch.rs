//! `POST /v1/sign/batch`: up to 10,000 sign requests, each checked, authorized and audited on
//! its own, signed on all cores, answered as one JSON document or streamed as NDJSON.

use super::plan::plan;
use super::request::{SignRequest, SignResponse};
use super::{answer, check};
use crate::api::access::{AuditTrail, BucketAccess};
use crate::api::{ApiError, ApiJson, AppState, Caller, ItemError};
use crate::policy::LogicalBucketName;
use crate::signing::Expiry;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use time::OffsetDateTime;

/// The most items one batch may carry.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// 10,000 sign requests with long names and metadata: the body limit of batches.
pub(super) const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Items signed, audited and sent together when a batch streams as NDJSON.
const STREAM_CHUNK: usize = 500;

/// Up to 10,000 sign requests.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(value_type = Vec<SignRequest>)]
    pub items: Vec<Value>,
    /// Default lifetime for items that give none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// One batch item's outcome: a URL, or an error.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Signed {
        index: usize,
        #[serde(flatten)]
        signed: SignResponse,
    },
    Failed {
        index: usize,
        error: ItemError,
    },
}

/// All items' outcomes, in request order.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

/// Sign up to 10,000 URLs; with `Accept: application/x-ndjson`, one result per line, streamed.
#[utoipa::path(post, path = "/v1/sign/batch", tag = "signing", request_body = BatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = BatchResponse, description = "JSON, or NDJSON lines of BatchResult with Accept: application/x-ndjson"),
        (status = 400, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(batch): ApiJson<BatchRequest>,
) -> Result<Response, ApiError> {
    if batch.items.len() > MAX_BATCH_ITEMS {
        let detail = format!(
            "{} items: a batch holds at most {MAX_BATCH_ITEMS}",
            batch.items.len()
        );
        return Err(ApiError::bad_request("batch_too_large", detail));
    }
    if let Some(ttl) = batch.expires_in {
        Expiry::from_secs(ttl)?;
    }
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"));
    let items: Vec<(usize, Value)> = batch.items.into_iter().enumerate().collect();
    if !streaming {
        let buckets = resolve(&state, &caller, &items).await?;
        let results = run_chunk(&state, &caller, items, batch.expires_in, &buckets).await?;
        return Ok(Json(BatchResponse { results }).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let buckets = match resolve(&state, &caller, &items).await {
            Ok(buckets) => buckets,
            Err(error) => {
                let line = crate::api::ndjson_error_line(&error);
                let _ = tx.send(Ok(Bytes::from(line))).await;
                return;
            }
        };
        let mut chunks = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunks.push(items.by_ref().take(STREAM_CHUNK).collect::<Vec<_>>());
        }
        // Two chunks at a time, answered in order: the next one signs while this one commits
        // and is sent, so that signing (keyless: a paced stream of IAM calls) never drains
        // at a chunk's end.
        let (state, caller, buckets) = (&state, &caller, &buckets);
        let mut runs = futures::stream::iter(chunks)
            .map(|chunk| run_chunk(state, caller, chunk, batch.expires_in, buckets))
            .buffered(2);
        while let Some(run) = runs.next().await {
            let mut out = Vec::new();
            match run {
                Ok(results) => {
                    out.reserve(results.len() * 700);
                    for result in results {
                        if serde_json::to_writer(&mut out, &result).is_ok() {
                            out.push(b'\n');
                        }
                    }
                }
                Err(error) => {
                    // What was sent is audited and valid; say why the rest is missing, and stop.
                    out.extend_from_slice(crate::api::ndjson_error_line(&error).as_bytes());
                    let _ = tx.send(Ok(Bytes::from(out))).await;
                    return;
                }
            }
            if tx.send(Ok(Bytes::from(out))).await.is_err() {
                return; // the client left
            }
        }
    });
    Ok(crate::api::ndjson_response(rx))
}

/// Who may do what on each bucket the items name, read once for the whole batch.
async fn resolve<'a>(
    state: &'a AppState,
    caller: &'a Caller,
    items: &[(usize, Value)],
) -> Result<HashMap<String, BucketAccess<'a>>, ApiError> {
    let mut names: Vec<&str> = items
        .iter()
        .filter_map(|(_, item)| item.get("bucket")?.as_str())
        .filter(|name| LogicalBucketName::parse(name).is_ok())
        .collect();
    names.sort_unstable();
    names.dedup();
    let loaded = futures::future::try_join_all(
        names
            .iter()
            .map(|name| BucketAccess::resolve(state, caller, name)),
    )
    .await?;
    Ok(names.into_iter().map(str::to_owned).zip(loaded).collect())
}

/// Checks, decides, signs (on all cores) and audits (one insert) a run of batch items.
async fn run_chunk<'a>(
    state: &'a AppState,
    caller: &'a Caller,
    items: Vec<(usize, Value)>,
    default_ttl: Option<i64>,
    buckets: &HashMap<String, BucketAccess<'a>>,
) -> Result<Vec<BatchResult>, ApiError> {
    let mut checked = Vec::with_capacity(items.len());
    let mut results: Vec<Option<BatchResult>> = (0..items.len()).map(|_| None).collect();
    for (slot, (index, value)) in items.into_iter().enumerate() {
        let parsed = serde_json::from_value::<SignRequest>(value)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
            .and_then(|request| check(request, default_ttl));
        match parsed {
            Ok(c) => checked.push((slot, index, c)),
            Err(error) => results[slot] = Some(failed(index, &error)),
        }
    }
    let mut trail = AuditTrail::new(state, caller);
    let mut planned = Vec::with_capacity(checked.len());
    for (slot, index, c) in checked {
        let Some(access) = buckets.get(c.bucket.as_str()) else {
            results[slot] = Some(failed(index, &ApiError::Internal));
            continue;
        };
        match plan(state, access, &mut trail, c) {
            Ok(p) => planned.push((slot, index, p)),
            Err(error) => results[slot] = Some(failed(index, &error)),
        }
    }
    let requests = planned
        .iter()
        .map(|(_, _, p)| (p.signer.clone(), p.url.clone()))
        .collect();
    let signed = state
        .signers
        .sign_all(requests, OffsetDateTime::now_utc())
        .await;
    let mut answers = Vec::with_capacity(planned.len());
    for ((slot, index, p), signed) in planned.into_iter().zip(signed) {
        match signed {
            Ok(url) => {
                p.allowed.signed(&mut trail, url.expires_at);
                answers.push((slot, index, p.shape, url));
            }
            Err(error) => results[slot] = Some(failed(index, &error.into())),
        }
    }
    // Every URL's row is committed before any URL of this run is answered.
    trail.commit().await?;
    for (slot, index, shape, url) in answers {
        state
            .metrics
            .url_signed(shape.protocol, shape.method.label());
        results[slot] = Some(BatchResult::Signed {
            index,
            signed: answer(url, shape),
        });
    }
    Ok(results.into_iter().flatten().collect())
}

fn failed(index: usize, error: &ApiError) -> BatchResult {
    BatchResult::Failed {
        index,
        error: error.into(),
    }
}
