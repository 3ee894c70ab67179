//! `GET /v1/buckets/{bucket}/audit` (callers holding `admin` on the bucket) and `GET /v1/audit`
//! (storage admins): who touched what, newest first, filtered, a page at a time. Page tokens are
//! sealed like listing tokens, bound to the caller, the scope and the filters, so a token shows
//! nothing and works only for the query that gave it. Reading the audit is itself audited.

use super::access::{AuditTrail, BucketAccess, Operation};
use super::{ApiError, ApiQuery, AppState, Caller};
use crate::policy::{Action, Scope, may_read_all_audit};
use crate::store::{AuditFilter, AuditRow};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Rows per page: the default, and the most a caller may ask for.
const PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;
/// The longest filter value taken.
const MAX_FILTER: usize = 1024;

/// Audit filters; every one is optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this caller (a token's `sub`).
    pub subject: Option<String>,
    /// Only objects whose names start with this.
    pub object_prefix: Option<String>,
    /// `allow`, `deny` or `not_found`.
    pub decision: Option<String>,
    /// RFC 3339: rows at or after.
    pub since: Option<String>,
    /// RFC 3339: rows before.
    pub until: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// From a previous answer's `next_page_token`.
    pub page_token: Option<String>,
}

/// `GET /v1/audit`'s one filter more.
#[derive(Debug, Deserialize)]
pub struct OnlyBucket {
    pub bucket: Option<String>,
}

/// One audited decision.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// RFC 3339, to the microsecond.
    pub at: String,
    pub request_id: String,
    pub subject: Option<String>,
    pub client: Option<String>,
    /// What was asked: `SIGN`, `LIST`, `CREATE_GRANT`, `READ_AUDIT`, …
    pub action: String,
    pub bucket: Option<String>,
    pub object: Option<String>,
    pub method: Option<String>,
    pub expires_at: Option<String>,
    /// `allow`, `deny` or `not_found`.
    pub decision: String,
    pub reason: String,
}

/// A page of audit rows, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditView>,
    pub next_page_token: Option<String>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| crate::signing::rfc3339_seconds(at))
}

impl From<AuditRow> for AuditView {
    /// The row as the API and the exports show it.
    fn from(row: AuditRow) -> Self {
        view(row)
    }
}

fn view(row: AuditRow) -> AuditView {
    AuditView {
        id: row.id,
        at: rfc3339(row.at),
        request_id: row.request_id,
        subject: row.subject,
        client: row.client,
        action: row.action,
        bucket: row.bucket,
        object: row.object,
        method: row.method,
        expires_at: row.expires_at.map(rfc3339),
        decision: row.decision,
        reason: row.reason,
    }
}

/// The filter a query asks for, checked.
fn filter(query: &AuditQuery, bucket: Option<String>) -> Result<AuditFilter, ApiError> {
    let text = |name: &'static str, value: &Option<String>| -> Result<Option<String>, ApiError> {
        match value {
            Some(v) if v.len() > MAX_FILTER => Err(ApiError::bad_request(
                "invalid_filter",
                format!("{name}: at most {MAX_FILTER} bytes"),
            )),
            Some(v) if v.is_empty() => Ok(None),
            other => Ok(other.clone()),
        }
    };
    let time =
        |name: &'static str, value: &Option<String>| -> Result<Option<OffsetDateTime>, ApiError> {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                        ApiError::bad_request(
                            "invalid_filter",
                            format!("{name}: an RFC 3339 time, like 2026-11-25T10:00:00Z"),
                        )
                    })
                })
                .transpose()
        };
    let decision = text("decision", &query.decision)?;
    if let Some(d) = &decision
        && !["allow", "deny", "not_found"].contains(&d.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_filter",
            "decision: allow, deny or not_found",
        ));
    }
    Ok(AuditFilter {
        bucket: text("bucket", &bucket)?,
        subject: text("subject", &query.subject)?,
        object_prefix: text("object_prefix", &query.object_prefix)?,
        decision,
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
    })
}

/// What a page token is bound to besides the caller: the scope and every filter.
fn binding(filter: &AuditFilter) -> String {
    serde_json::json!([
        filter.subject,
        filter.object_prefix,
        filter.decision,
        filter.since.map(|t| t.unix_timestamp_nanos().to_string()),
        filter.until.map(|t| t.unix_timestamp_nanos().to_string()),
    ])
    .to_string()
}

/// Reads one page for `caller` (who may read it) in `scope` (a bucket, or `*`).
async fn page(
    state: &AppState,
    caller: &Caller,
    scope: &str,
    filter: AuditFilter,
    query: &AuditQuery,
) -> Result<AuditPage, ApiError> {
    let limit = query.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_filter",
            format!("limit: 1 to {MAX_PAGE}"),
        ));
    }
    let subject = &caller.principal.subject;
    let bound = binding(&filter);
    let after = match &query.page_token {
        Some(token) => {
            let cursor = state
                .page_tokens()
                .await?
                .open(token, scope, &bound, subject)?;
            Some(parse_cursor(&cursor).ok_or(ApiError::bad_request(
                "invalid_page_token",
                "page_token: not one this query gave",
            ))?)
        }
        None => None,
    };
    // One row more than the page says whether there is a next one.
    let mut rows = state.store.audit_page(&filter, after, limit + 1).await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        match rows.last() {
            Some(last) => Some(state.page_tokens().await?.seal(
                scope,
                &bound,
                subject,
                &format!("{}:{}", last.at.unix_timestamp_nanos(), last.id),
            )?),
            None => None,
        }
    } else {
        None
    };
    Ok(AuditPage {
        events: rows.into_iter().map(view).collect(),
        next_page_token,
    })
}

fn parse_cursor(cursor: &str) -> Option<(OffsetDateTime, i64)> {
    let (at, id) = cursor.split_once(':')?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(at.parse().ok()?).ok()?;
    Some((at, id.parse().ok()?))
}

/// Who touched this bucket's objects and settings, newest first (needs `admin` on the bucket).
#[utoipa::path(get, path = "/v1/buckets/{bucket}/audit", operation_id = "bucket_audit", tag = "audit", security(("bearer" = [])),
    params(("bucket" = String, Path), AuditQuery),
    responses((status = 200, body = AuditPage),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn bucket_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = filter(&query, Some(bucket.clone()))?;
    let access = BucketAccess::resolve(&state, &caller, &bucket).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    match access.authorize(&mut trail, Action::Admin, Scope::Prefix(""), "READ_AUDIT") {
        Ok(granted) => granted.allowed.done(&mut trail),
        Err(error) => return Err(trail.fail(error).await),
    }
    trail.commit().await?;
    Ok(Json(page(&state, &caller, &bucket, filter, &query).await?))
}

/// Every bucket's audit, newest first (storage admins only).
#[utoipa::path(get, path = "/v1/audit", operation_id = "audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery, ("bucket" = Option<String>, Query, description = "Only this bucket.")),
    responses((status = 200, body = AuditPage),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json")))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
    ApiQuery(only): ApiQuery<OnlyBucket>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = filter(&query, only.bucket.filter(|b| !b.is_empty()))?;
    let mut trail = AuditTrail::new(&state, &caller);
    let operation = Operation {
        action: Action::Admin,
        bucket: filter.bucket.as_deref(),
        object: None,
        method: "READ_AUDIT",
    };
    let decision = may_read_all_audit(&caller.as_policy_caller(&[]));
    match trail.settle(operation, decision) {
        Ok(allowed) => allowed.done(&mut trail),
        Err(error) => return Err(trail.fail(error).await),
    }
    trail.commit().await?;
    Ok(Json(page(&state, &caller, "*", filter, &query).await?))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bucket_audit))
        .routes(routes!(audit))
}
