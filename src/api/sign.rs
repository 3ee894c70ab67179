//! `POST /v1/sign`, `POST /v1/sign/batch`, `POST /v1/upload-policy`: check, decide, sign, audit,
//! answer, in that order. No URL is answered before its audit row is committed.

use super::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{
    Action, BucketClass, LogicalBucketName, ObjectKey, ObjectPrefix, Scope, check_text,
    control_character,
};
use crate::signing::{
    BucketName, Condition, Expiry, Method, ObjectName, PostKey, PostPolicyRequest, SignedUrl,
    UrlRequest, rfc3339_seconds,
};
use crate::store::{AccessContext, AuditEvent, BucketRecord};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;

/// The default URL lifetime, in seconds.
pub(super) const DEFAULT_TTL: i64 = 900;
/// The most items one batch may carry.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Items signed, audited and sent together when a batch streams as NDJSON.
const STREAM_CHUNK: usize = 500;

/// A request for one signed URL.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Logical bucket, e.g. `u-alice`.
    pub bucket: String,
    /// Object name within the bucket.
    pub object: String,
    /// `GET`, `HEAD`, `PUT`, `DELETE` or `RESUMABLE` (starts a resumable upload).
    pub method: String,
    /// Seconds; default 900, at most the bucket class's limit.
    pub expires_in: Option<i64>,
    /// Uploads: the content type the client must send.
    pub content_type: Option<String>,
    /// Uploads: the base64 MD5 the client must send.
    pub content_md5: Option<String>,
    /// Uploads: the largest size accepted, in bytes.
    pub max_size: Option<u64>,
    /// Uploads: `x-goog-meta-*` metadata the client must send.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Downloads: override the response's Content-Type.
    pub response_content_type: Option<String>,
    /// Downloads: override the response's Content-Disposition.
    pub response_content_disposition: Option<String>,
}

/// A signed URL and how to use it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignResponse {
    pub url: String,
    /// As requested: GET, HEAD, PUT, DELETE or RESUMABLE (sent as POST).
    pub method: String,
    /// Headers the client must send with exactly these values.
    pub headers: BTreeMap<String, String>,
    /// RFC 3339.
    pub expires_at: String,
}

/// Up to 10,000 sign requests.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(value_type = Vec<SignRequest>)]
    pub items: Vec<Value>,
    /// Default lifetime for items that give none.
    pub expires_in: Option<i64>,
}

/// One batch item's outcome: a URL, or an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

/// Why one item got no URL.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemError {
    pub code: String,
    pub message: String,
}

/// All items' outcomes, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

/// A POST policy for an HTML form upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadPolicyRequest {
    pub bucket: String,
    /// Exactly this object; or give `object_prefix`.
    pub object: Option<String>,
    /// Any object under this prefix (the form's file name completes it).
    pub object_prefix: Option<String>,
    pub expires_in: Option<i64>,
    pub content_type: Option<String>,
    pub max_size: Option<u64>,
}

/// Where to POST the form, and its fields (the file goes last).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadPolicyResponse {
    pub url: String,
    pub fields: BTreeMap<String, String>,
    pub expires_at: String,
}

/// The methods of the API and what they mean for signing and deciding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApiMethod {
    Get,
    Head,
    Put,
    Delete,
    Resumable,
}

impl ApiMethod {
    fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "GET" => Ok(Self::Get),
            "HEAD" => Ok(Self::Head),
            "PUT" => Ok(Self::Put),
            "DELETE" => Ok(Self::Delete),
            "RESUMABLE" => Ok(Self::Resumable),
            other => Err(ApiError::bad_request(
                "invalid_method",
                format!("method {other:?}: expected GET, HEAD, PUT, DELETE or RESUMABLE"),
            )),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Resumable => "RESUMABLE",
        }
    }

    fn signing(self) -> Method {
        match self {
            Self::Get => Method::Get,
            Self::Head => Method::Head,
            Self::Put => Method::Put,
            Self::Delete => Method::Delete,
            Self::Resumable => Method::Post,
        }
    }

    fn action(self) -> Action {
        match self {
            Self::Get | Self::Head => Action::Read,
            Self::Put | Self::Resumable => Action::Write,
            Self::Delete => Action::Delete,
        }
    }

    fn uploads(self) -> bool {
        matches!(self, Self::Put | Self::Resumable)
    }
}

/// A sign request whose fields parse; not yet authorized.
pub(super) struct Checked {
    bucket: LogicalBucketName,
    object: ObjectKey,
    method: ApiMethod,
    ttl: i64,
    request: SignRequest,
}

pub(super) fn check(request: SignRequest, default_ttl: Option<i64>) -> Result<Checked, ApiError> {
    let bucket = LogicalBucketName::parse(&request.bucket)
        .map_err(|e| ApiError::bad_request("invalid_bucket_name", e))?;
    let object = ObjectKey::parse(&request.object)
        .map_err(|e| ApiError::bad_request("invalid_object_name", e))?;
    let method = ApiMethod::parse(&request.method)?;
    let ttl = request.expires_in.or(default_ttl).unwrap_or(DEFAULT_TTL);
    Expiry::from_secs(ttl)?;
    let upload_only = [
        ("content_type", request.content_type.is_some()),
        ("content_md5", request.content_md5.is_some()),
        ("max_size", request.max_size.is_some()),
        ("metadata", request.metadata.is_some()),
    ];
    if let Some((field, _)) = upload_only
        .iter()
        .find(|(_, set)| *set)
        .filter(|_| !method.uploads())
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("{field} applies to PUT and RESUMABLE only"),
        ));
    }
    if let Some(md5) = &request.content_md5 {
        // Content-MD5 is the base64 of the 16-byte digest (RFC 1864); storage refuses anything
        // else only after the bytes were sent.
        use base64::Engine;
        let digest = base64::engine::general_purpose::STANDARD.decode(md5);
        if !digest.is_ok_and(|d| d.len() == 16) {
            return Err(ApiError::bad_request(
                "invalid_content_md5",
                "content_md5: the base64 of the object's 16-byte MD5 digest, e.g. \"1B2M2Y8AsgTpgAmY7PhCfg==\"",
            ));
        }
    }
    // Values that become headers or stored metadata: no control characters (a CR LF would
    // smuggle a header). Named only when refused, so the usual request allocates nothing here.
    let fields = [
        ("content_type", &request.content_type),
        ("response_content_type", &request.response_content_type),
        (
            "response_content_disposition",
            &request.response_content_disposition,
        ),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            check_text(field, value).map_err(|e| ApiError::bad_request("invalid_request", e))?;
        }
    }
    for (key, value) in request.metadata.iter().flatten() {
        if control_character(value).is_some() {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("metadata {key:?}: control characters are not allowed"),
            ));
        }
    }
    for key in request.metadata.iter().flat_map(BTreeMap::keys) {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(ApiError::bad_request(
                "invalid_metadata",
                format!("metadata key {key:?}: use a-z, 0-9, '-' and '_'"),
            ));
        }
    }
    let download_only = [
        request.response_content_type.is_some(),
        request.response_content_disposition.is_some(),
    ];
    if download_only.iter().any(|set| *set) && !matches!(method, ApiMethod::Get | ApiMethod::Head) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "response_* overrides apply to GET and HEAD only",
        ));
    }
    Ok(Checked {
        bucket,
        object,
        method,
        ttl,
        request,
    })
}

/// An authorized request, ready to sign, with its audit row waiting for the expiry.
struct Planned {
    request: UrlRequest,
    method: ApiMethod,
    audit: AuditEvent,
}

/// A refusal and, when it was a decision, its audit row (boxed: refusals are the rare path).
type Refusal = Box<(ApiError, Option<AuditEvent>)>;

fn audit_event(
    caller: &Caller,
    action: Action,
    bucket: &str,
    object: &str,
    method: Option<&'static str>,
) -> AuditEvent {
    AuditEvent {
        at: OffsetDateTime::now_utc(),
        request_id: caller.request_id.clone(),
        subject: Some(caller.principal.subject.clone()),
        client: caller.principal.client.clone(),
        action: action.as_str(),
        bucket: Some(bucket.to_owned()),
        object: Some(object.to_owned()),
        method,
        expires_at: None,
        decision: "allow",
        reason: String::new(),
    }
}

/// Decides `action` on `object` of the context's bucket; on success, the bucket and its class.
fn authorize<'a>(
    state: &'a AppState,
    caller: &Caller,
    context: &'a AccessContext,
    action: Action,
    scope: Scope<'_>,
    mut audit: AuditEvent,
) -> Result<(&'a BucketRecord, &'a BucketClass, AuditEvent), Refusal> {
    let refuse =
        |mut audit: AuditEvent, decision: &'static str, reason: String, error: ApiError| {
            state.metrics.decision(decision);
            audit.decision = decision;
            audit.reason = reason;
            Err(Box::new((error, Some(audit))))
        };
    let Some(bucket) = &context.bucket else {
        return refuse(
            audit,
            "not_found",
            "no such bucket".into(),
            ApiError::NotFound,
        );
    };
    let Some((class, level)) = state.class_of(bucket) else {
        tracing::error!(
            bucket = bucket.name,
            class = bucket.class,
            "bucket names a class or level the policies lack"
        );
        return refuse(
            audit,
            "deny",
            "bucket class missing from policies".into(),
            ApiError::Internal,
        );
    };
    let decision = caller.decide(state, bucket, class, level, context, action, scope);
    match decision {
        crate::policy::Decision::Allow(reason) => {
            state.metrics.decision("allow");
            audit.reason = reason;
            Ok((bucket, class, audit))
        }
        crate::policy::Decision::Deny(reason) => refuse(audit, "deny", reason, ApiError::Forbidden),
        crate::policy::Decision::NotFound(reason) => {
            refuse(audit, "not_found", reason, ApiError::NotFound)
        }
    }
}

/// Refuses what the class's limits do not allow; audited as a denial.
fn limit(audit: AuditEvent, code: &'static str, detail: String) -> Refusal {
    let mut audit = audit;
    audit.decision = "deny";
    audit.reason = format!("class limit: {detail}");
    Box::new((ApiError::bad_request(code, detail), Some(audit)))
}

/// The longest URL lifetime for buckets of `class`: the class's limit, and never above what the
/// signer allows (12 hours keyless).
pub(super) fn ttl_limit(state: &AppState, class: &BucketClass) -> u32 {
    class
        .max_ttl
        .as_secs()
        .min(state.signer.max_expiry_seconds())
}

/// Why `ttl` is too long, when it is.
pub(super) fn ttl_too_long(ttl: i64, limit: u32) -> Option<String> {
    (ttl > i64::from(limit))
        .then(|| format!("expires_in {ttl} is above this bucket's limit of {limit} seconds"))
}

/// Refuses a lifetime above `max`; audited as a denial.
fn check_ttl(max: u32, ttl: i64, audit: AuditEvent) -> Result<AuditEvent, Refusal> {
    match ttl_too_long(ttl, max) {
        Some(detail) => Err(limit(audit, "ttl_exceeds_limit", detail)),
        None => Ok(audit),
    }
}

/// Checks an upload's content type and size against the class; the size limit to bind.
fn check_upload(
    class: &BucketClass,
    content_type: Option<&str>,
    max_size: Option<u64>,
    audit: AuditEvent,
) -> Result<(Option<u64>, AuditEvent), Refusal> {
    match content_type {
        Some(ct) if !class.allows_content_type(ct) => {
            return Err(limit(
                audit,
                "content_type_not_allowed",
                format!("content type {ct:?} is not allowed here"),
            ));
        }
        None if !class.allows_content_type("x-unspecified/x-unspecified") => {
            return Err(limit(
                audit,
                "content_type_required",
                "this bucket needs a content_type for uploads".into(),
            ));
        }
        _ => {}
    }
    match (max_size, class.max_object_size) {
        (Some(asked), Some(cap)) if asked > cap => {
            let detail = format!("max_size {asked} is above this bucket's limit of {cap} bytes");
            Err(limit(audit, "max_size_exceeds_limit", detail))
        }
        (asked, cap) => Ok((asked.or(cap), audit)),
    }
}

/// The backend object for `object` in `bucket`.
fn backend_object(
    bucket: &BucketRecord,
    object: &str,
) -> Result<(BucketName, ObjectName), ApiError> {
    let backend = BucketName::parse(&bucket.backend_bucket).map_err(|e| {
        tracing::error!(bucket = bucket.name, error = %e, "stored backend bucket is invalid");
        ApiError::Internal
    })?;
    let name = format!("{}{object}", bucket.backend_prefix);
    let name = ObjectName::parse(&name).map_err(|_| {
        ApiError::bad_request(
            "invalid_object_name",
            "object name too long for this bucket (1024 bytes with its prefix)",
        )
    })?;
    Ok((backend, name))
}

fn plan(
    state: &AppState,
    caller: &Caller,
    checked: Checked,
    context: &AccessContext,
) -> Result<Planned, Refusal> {
    let Checked {
        bucket,
        object,
        method,
        ttl,
        request,
    } = checked;
    let action = method.action();
    let audit = audit_event(
        caller,
        action,
        bucket.as_str(),
        object.as_str(),
        Some(method.label()),
    );
    let (record, class, audit) = authorize(
        state,
        caller,
        context,
        action,
        Scope::Object(object.as_str()),
        audit,
    )?;
    let mut audit = check_ttl(ttl_limit(state, class), ttl, audit)?;
    let expiry = Expiry::from_secs(ttl).map_err(|e| Box::new((e.into(), None)))?;
    let (backend_bucket, backend_name) =
        backend_object(record, object.as_str()).map_err(|e| Box::new((e, None)))?;
    let mut url = UrlRequest::new(method.signing(), backend_bucket, Some(backend_name), expiry);
    if method.uploads() {
        let (max_size, checked_audit) = check_upload(
            class,
            request.content_type.as_deref(),
            request.max_size,
            audit,
        )?;
        audit = checked_audit;
        if let Some(ct) = &request.content_type {
            url = url.header("content-type", ct.as_str());
        }
        if let Some(md5) = &request.content_md5 {
            url = url.header("content-md5", md5.as_str());
        }
        if let Some(max) = max_size {
            url = url.header("x-goog-content-length-range", format!("0,{max}"));
        }
        for (key, value) in request.metadata.iter().flatten() {
            url = url.header(format!("x-goog-meta-{key}"), value.as_str());
        }
        if method == ApiMethod::Resumable {
            url = url.header("x-goog-resumable", "start");
        }
    }
    if let Some(ct) = &request.response_content_type {
        url = url.query("response-content-type", ct.as_str());
    }
    if let Some(cd) = &request.response_content_disposition {
        url = url.query("response-content-disposition", cd.as_str());
    }
    Ok(Planned {
        request: url,
        method,
        audit,
    })
}

fn answer(signed: SignedUrl, method: ApiMethod) -> SignResponse {
    SignResponse {
        url: signed.url,
        method: method.label().to_owned(),
        headers: signed.headers.into_iter().collect(),
        expires_at: rfc3339_seconds(signed.expires_at),
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
    let context = state
        .access_context(checked.bucket.as_str(), &caller)
        .await?;
    let planned = match plan(&state, &caller, checked, &context) {
        Ok(planned) => planned,
        Err(refused) => {
            let (error, audit) = *refused;
            state.audit.record(audit.into_iter().collect()).await?;
            return Err(error);
        }
    };
    let Planned {
        request,
        method,
        mut audit,
    } = planned;
    let signed = state
        .signer
        .sign(request, OffsetDateTime::now_utc())
        .await?;
    audit.expires_at = Some(signed.expires_at);
    state.audit.record(vec![audit]).await?;
    state.metrics.url_signed(method.label());
    Ok(Json(answer(signed, method)))
}

/// Sign up to 10,000 URLs; with `Accept: application/x-ndjson`, one result per line, streamed.
#[utoipa::path(post, path = "/v1/sign/batch", tag = "signing", request_body = BatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = BatchResponse, description = "JSON, or NDJSON lines of BatchResult with Accept: application/x-ndjson"),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 401, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json"),
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
        let mut contexts = HashMap::new();
        let results = run_chunk(&state, &caller, items, batch.expires_in, &mut contexts).await?;
        return Ok(Json(BatchResponse { results }).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut contexts = HashMap::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<(usize, Value)> = items.by_ref().take(STREAM_CHUNK).collect();
            let mut out = Vec::with_capacity(chunk.len() * 700);
            match run_chunk(&state, &caller, chunk, batch.expires_in, &mut contexts).await {
                Ok(results) => {
                    for result in results {
                        if serde_json::to_writer(&mut out, &result).is_ok() {
                            out.push(b'\n');
                        }
                    }
                }
                Err(error) => {
                    // What was sent is audited and valid; say why the rest is missing, and stop.
                    out.extend_from_slice(super::ndjson_error_line(&error).as_bytes());
                    let _ = tx.send(Ok(Bytes::from(out))).await;
                    return;
                }
            }
            if tx.send(Ok(Bytes::from(out))).await.is_err() {
                return; // the client left
            }
        }
    });
    Ok(super::ndjson_response(rx))
}

/// Checks, decides, signs (on all cores) and audits (one insert) a run of batch items.
async fn run_chunk(
    state: &AppState,
    caller: &Caller,
    items: Vec<(usize, Value)>,
    default_ttl: Option<i64>,
    contexts: &mut HashMap<String, Arc<AccessContext>>,
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
    let missing: Vec<String> = {
        let mut names: Vec<String> = checked
            .iter()
            .map(|(_, _, c)| c.bucket.as_str().to_owned())
            .filter(|b| !contexts.contains_key(b))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let loaded = futures::future::try_join_all(
        missing
            .iter()
            .map(|name| state.access_context(name, caller)),
    )
    .await?;
    contexts.extend(missing.into_iter().zip(loaded));

    let mut audits = Vec::with_capacity(checked.len());
    let mut planned = Vec::with_capacity(checked.len());
    for (slot, index, c) in checked {
        let context = &contexts[c.bucket.as_str()];
        match plan(state, caller, c, context) {
            Ok(p) => planned.push((slot, index, p)),
            Err(refused) => {
                let (error, audit) = *refused;
                audits.extend(audit);
                results[slot] = Some(failed(index, &error));
            }
        }
    }
    let requests: Vec<UrlRequest> = planned.iter().map(|(_, _, p)| p.request.clone()).collect();
    let signed = state
        .signer
        .sign_all(requests, OffsetDateTime::now_utc())
        .await;
    let mut answers = Vec::with_capacity(planned.len());
    for ((slot, index, p), signed) in planned.into_iter().zip(signed) {
        match signed {
            Ok(url) => {
                let mut audit = p.audit;
                audit.expires_at = Some(url.expires_at);
                audits.push(audit);
                answers.push((slot, index, p.method, url));
            }
            Err(error) => results[slot] = Some(failed(index, &error.into())),
        }
    }
    // Every URL's row is committed before any URL of this run is answered.
    state.audit.record(audits).await?;
    for (slot, index, method, url) in answers {
        state.metrics.url_signed(method.label());
        results[slot] = Some(BatchResult::Signed {
            index,
            signed: answer(url, method),
        });
    }
    Ok(results.into_iter().flatten().collect())
}

fn failed(index: usize, error: &ApiError) -> BatchResult {
    BatchResult::Failed {
        index,
        error: ItemError {
            code: error.code().to_owned(),
            message: error.detail(),
        },
    }
}

/// A signed POST policy for an HTML form upload.
#[utoipa::path(post, path = "/v1/upload-policy", tag = "signing", request_body = UploadPolicyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UploadPolicyResponse),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 401, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<UploadPolicyRequest>,
) -> Result<Json<UploadPolicyResponse>, ApiError> {
    let bucket = LogicalBucketName::parse(&request.bucket)
        .map_err(|e| ApiError::bad_request("invalid_bucket_name", e))?;
    let (object, exact) = match (&request.object, &request.object_prefix) {
        (Some(object), None) => (
            ObjectKey::parse(object)
                .map_err(|e| ApiError::bad_request("invalid_object_name", e))?
                .into_string(),
            true,
        ),
        (None, Some(prefix)) => (
            ObjectPrefix::parse(prefix)
                .map_err(|e| ApiError::bad_request("invalid_object_name", e))?
                .into_string(),
            false,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of object and object_prefix",
            ));
        }
    };
    if let Some(content_type) = &request.content_type {
        check_text("content_type", content_type)
            .map_err(|e| ApiError::bad_request("invalid_request", e))?;
    }
    let ttl = request.expires_in.unwrap_or(DEFAULT_TTL);
    let expiry = Expiry::from_secs(ttl)?;
    let context = state.access_context(bucket.as_str(), &caller).await?;
    // A policy for a prefix is authorized by prefix rights alone (an exact-object grant on the
    // same bytes is no right on the prefix), and audited as one.
    let (scope, method) = if exact {
        (Scope::Object(&object), "POST_POLICY")
    } else {
        (Scope::Prefix(&object), "POST_POLICY_PREFIX")
    };
    let audit = audit_event(
        &caller,
        Action::Write,
        bucket.as_str(),
        &object,
        Some(method),
    );
    let outcome = authorize(&state, &caller, &context, Action::Write, scope, audit).and_then(
        |(record, class, audit)| {
            let audit = check_ttl(ttl_limit(&state, class), ttl, audit)?;
            let (max_size, audit) = check_upload(
                class,
                request.content_type.as_deref(),
                request.max_size,
                audit,
            )?;
            Ok((record, max_size, audit))
        },
    );
    let (record, max_size, mut audit) = match outcome {
        Ok(ok) => ok,
        Err(refused) => {
            let (error, audit) = *refused;
            state.audit.record(audit.into_iter().collect()).await?;
            return Err(error);
        }
    };
    let (backend_bucket, key) = if exact {
        let (b, name) = backend_object(record, &object)?;
        (b, PostKey::Exact(name))
    } else {
        let (b, _) = backend_object(record, "x")?;
        (
            b,
            PostKey::Prefix(format!("{}{object}", record.backend_prefix)),
        )
    };
    let mut policy = PostPolicyRequest {
        bucket: backend_bucket,
        key,
        expiry,
        fields: Vec::new(),
        conditions: Vec::new(),
    };
    if let Some(ct) = &request.content_type {
        policy.fields.push(("content-type".into(), ct.clone()));
    }
    if let Some(max) = max_size {
        policy
            .conditions
            .push(Condition::ContentLengthRange { min: 0, max });
    }
    let signed = state
        .signer
        .post_policy(policy, OffsetDateTime::now_utc())
        .await?;
    audit.expires_at = Some(signed.expires_at);
    state.audit.record(vec![audit]).await?;
    state.metrics.url_signed("POST_POLICY");
    Ok(Json(UploadPolicyResponse {
        url: signed.url,
        fields: signed.fields.into_iter().collect(),
        expires_at: rfc3339_seconds(signed.expires_at),
    }))
}
