//! `GET /v1/buckets/{bucket}/objects` and `POST /v1/sign/prefix`: listing through GCS, filtered
//! to what the caller may read, with backend prefixes never shown. No object byte passes here.

use super::{ApiError, ApiJson, AppState, Caller};
use crate::gcs::{Gcs, ObjectInfo};
use crate::policy::{Action, Decision, ObjectKey, ObjectPrefix, Scope, check_text};
use crate::signing::{BucketName, Expiry, Method, ObjectName, UrlRequest, rfc3339_seconds};
use crate::store::{AccessContext, AuditEvent, BucketRecord};
use axum::Json;
use axum::extract::{Path, Query, State};

use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

/// Listing parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only names starting with this.
    #[serde(default)]
    pub prefix: String,
    /// From a previous answer's `next_page_token`.
    pub page_token: Option<String>,
}

/// One object.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObjectView {
    pub name: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub updated: Option<String>,
}

/// A page of objects the caller may read.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObjectList {
    pub objects: Vec<ObjectView>,
    pub next_page_token: Option<String>,
}

/// Every readable object under a prefix, as download URLs.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixRequest {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    pub expires_in: Option<i64>,
    /// Only objects whose names sort after this one: how a client resumes an interrupted manifest.
    pub start_after: Option<String>,
}

/// One line of a prefix manifest.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestLine {
    pub object: String,
    pub size: Option<u64>,
    pub url: String,
    pub expires_at: String,
}

/// A bucket the caller can see, its context, and the control plane to list it with.
struct Listable<'a> {
    gcs: &'a Gcs,
    record: BucketRecord,
    context: Arc<AccessContext>,
}

async fn listable<'a>(
    state: &'a AppState,
    caller: &Caller,
    bucket: &str,
    prefix: &str,
) -> Result<Listable<'a>, ApiError> {
    ObjectPrefix::parse(prefix).map_err(|e| ApiError::bad_request("invalid_prefix", e))?;
    let context = state.access_context(bucket, caller).await?;
    let record = context.bucket.clone().ok_or(ApiError::NotFound)?;
    let (class, level) = state.class_of(&record).ok_or(ApiError::Internal)?;
    // Visible at all? (Any right on the bucket makes it visible.)
    if let Decision::NotFound(_) = caller.decide(
        state,
        &record,
        class,
        level,
        &context,
        Action::Read,
        Scope::Prefix(prefix),
    ) {
        return Err(ApiError::NotFound);
    }
    let Some(gcs) = &state.gcs else {
        tracing::error!(
            "listing needs a storage control plane (BROKER_STORAGE_ENDPOINT or a service-account key)"
        );
        return Err(ApiError::Unavailable);
    };
    Ok(Listable {
        gcs,
        record,
        context,
    })
}

impl Listable<'_> {
    /// One page from GCS, as logical names the caller may read.
    async fn page(
        &self,
        state: &AppState,
        caller: &Caller,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Vec<ObjectInfo>, Option<String>), ApiError> {
        let backend_prefix = format!("{}{prefix}", self.record.backend_prefix);
        let start = start_after.map(|after| format!("{}{after}", self.record.backend_prefix));
        let page = self
            .gcs
            .list_from(
                &self.record.backend_bucket,
                &backend_prefix,
                start.as_deref(),
                token,
            )
            .await
            .map_err(|e| ApiError::from_storage(&e, &self.record.name))?;
        let (class, level) = state.class_of(&self.record).ok_or(ApiError::Internal)?;
        let readable = page
            .items
            .into_iter()
            .filter_map(|mut object| {
                object.name = object
                    .name
                    .strip_prefix(self.record.backend_prefix.as_str())?
                    .to_owned();
                // startOffset includes the name itself.
                if start_after.is_some_and(|after| object.name.as_str() <= after) {
                    return None;
                }
                let decision = caller.decide(
                    state,
                    &self.record,
                    class,
                    level,
                    &self.context,
                    Action::Read,
                    Scope::Object(&object.name),
                );
                matches!(decision, Decision::Allow(_)).then_some(object)
            })
            .collect();
        Ok((readable, page.next_page_token))
    }
}

fn view(object: ObjectInfo) -> ObjectView {
    ObjectView {
        size: object.size.as_deref().and_then(|s| s.parse().ok()),
        name: object.name,
        content_type: object.content_type,
        updated: object.updated,
    }
}

/// The objects under a prefix that the caller may read, a page at a time.
#[utoipa::path(get, path = "/v1/buckets/{bucket}/objects", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ListQuery),
    responses((status = 200, body = ObjectList), (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ObjectList>, ApiError> {
    let listable = listable(&state, &caller, &bucket, &query.prefix).await?;
    // Page tokens are storage's own, sealed: they reveal nothing (storage's may be the name of
    // an object the caller cannot see) and work only for the listing that gave them.
    let subject = &caller.principal.subject;
    let backend_token = match &query.page_token {
        Some(token) => Some(state.page_tokens().await?.open(
            token,
            &bucket,
            &query.prefix,
            subject,
        )?),
        None => None,
    };
    let (objects, next) = listable
        .page(
            &state,
            &caller,
            &query.prefix,
            None,
            backend_token.as_deref(),
        )
        .await?;
    let next_page_token = match next {
        Some(next) => Some(state.page_tokens().await?.seal(
            &bucket,
            &query.prefix,
            subject,
            &next,
        )?),
        None => None,
    };
    Ok(Json(ObjectList {
        objects: objects.into_iter().map(view).collect(),
        next_page_token,
    }))
}

/// An NDJSON stream of signed GET URLs, one per readable object under the prefix, sent as
/// listing pages arrive: a page is listed, signed, audited, then written; the next page is not
/// listed until the client has taken the previous one.
#[utoipa::path(post, path = "/v1/sign/prefix", tag = "signing", request_body = PrefixRequest, security(("bearer" = [])),
    responses((status = 200, body = ManifestLine, content_type = "application/x-ndjson", description = "one ManifestLine per line"),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn sign_prefix(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PrefixRequest>,
) -> Result<Response, ApiError> {
    let ttl = request.expires_in.unwrap_or(super::sign::DEFAULT_TTL);
    let expiry = Expiry::from_secs(ttl)?;
    if let Some(after) = &request.start_after {
        check_text("start_after", after)
            .map_err(|e| ApiError::bad_request("invalid_object_name", e))?;
    }
    let listable = listable(&state, &caller, &request.bucket, &request.prefix).await?;
    let (class, _) = state.class_of(&listable.record).ok_or(ApiError::Internal)?;
    if let Some(detail) = super::sign::ttl_too_long(ttl, super::sign::ttl_limit(&state, class)) {
        return Err(ApiError::bad_request("ttl_exceeds_limit", detail));
    }
    let backend =
        BucketName::parse(&listable.record.backend_bucket).map_err(|_| ApiError::Internal)?;
    let (record, context) = (listable.record.clone(), listable.context.clone());
    // One page in flight: the stream waits for the client before listing on.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let Some(gcs) = &state.gcs else { return };
        let listable = Listable {
            gcs,
            record,
            context,
        };
        let mut token: Option<String> = None;
        loop {
            let result = manifest_page(
                &state,
                &caller,
                &listable,
                &backend,
                expiry,
                &request,
                token.as_deref(),
            )
            .await;
            let (chunk, next) = match result {
                Ok(page) => page,
                Err(error) => {
                    let _ = tx
                        .send(Ok(Bytes::from(super::ndjson_error_line(&error))))
                        .await;
                    return;
                }
            };
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the client left
            }
            match next {
                Some(next) => token = Some(next),
                None => return,
            }
        }
    });
    Ok(super::ndjson_response(rx))
}

/// Lists one page, signs what the caller may read, audits it, and renders the lines.
async fn manifest_page(
    state: &AppState,
    caller: &Caller,
    listable: &Listable<'_>,
    backend: &BucketName,
    expiry: Expiry,
    request: &PrefixRequest,
    token: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let (objects, next) = listable
        .page(
            state,
            caller,
            &request.prefix,
            request.start_after.as_deref(),
            token,
        )
        .await?;
    // Each object keeps its own request: a name the broker will not sign (a control character,
    // a dot segment a client would resolve to another object, too long with the backend
    // prefix) gets an error line of its own, and never shifts another object's URL.
    let mut signable = Vec::with_capacity(objects.len());
    let mut unsignable = Vec::new();
    for object in objects {
        let full = format!("{}{}", listable.record.backend_prefix, object.name);
        match ObjectKey::parse(&object.name)
            .map_err(|e| e.to_string())
            .and_then(|_| ObjectName::parse(&full).map_err(|e| e.to_string()))
        {
            Ok(name) => signable.push((object, name)),
            Err(reason) => unsignable.push((object.name, reason)),
        }
    }
    let requests = signable
        .iter()
        .map(|(_, name)| UrlRequest::new(Method::Get, backend.clone(), Some(name.clone()), expiry))
        .collect();
    let signed = state
        .signer
        .sign_all(requests, OffsetDateTime::now_utc())
        .await;
    let mut lines = Vec::with_capacity(signable.len() * 600);
    for (object, reason) in unsignable {
        let line = serde_json::json!({
            "object": object,
            "error": { "code": "invalid_object_name", "message": format!("not signed: {reason}") },
        });
        if serde_json::to_writer(&mut lines, &line).is_ok() {
            lines.push(b'\n');
        }
    }
    let mut audits = Vec::with_capacity(signable.len());
    let mut rendered = Vec::with_capacity(signable.len());
    for ((object, _), signed) in signable.into_iter().zip(signed) {
        let signed = signed?;
        audits.push(AuditEvent {
            at: OffsetDateTime::now_utc(),
            request_id: caller.request_id.clone(),
            subject: Some(caller.principal.subject.clone()),
            client: caller.principal.client.clone(),
            action: Action::Read.as_str(),
            bucket: Some(listable.record.name.clone()),
            object: Some(object.name.clone()),
            method: Some("GET"),
            expires_at: Some(signed.expires_at),
            decision: "allow",
            reason: "prefix manifest".into(),
        });
        rendered.push(ManifestLine {
            size: object.size.as_deref().and_then(|s| s.parse().ok()),
            object: object.name,
            url: signed.url,
            expires_at: rfc3339_seconds(signed.expires_at),
        });
    }
    // The page's rows are committed before any of its URLs is written.
    state.audit.record(audits).await?;
    for line in rendered {
        state.metrics.url_signed("GET");
        if serde_json::to_writer(&mut lines, &line).is_ok() {
            lines.push(b'\n');
        }
    }
    Ok((lines, next))
}
