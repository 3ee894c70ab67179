//! `GET /v1/buckets/{bucket}/objects` and `POST /v1/sign/prefix`: listing through the bucket's
//! backend, filtered to what the caller may read, with backend prefixes never shown. No object byte passes here.

use super::access::{Allowed, AuditTrail, BucketAccess, Granted};
use super::{ApiError, ApiJson, ApiQuery, AppState, Caller, ItemError, StreamError};
use crate::backends::{ControlPlane, ObjectInfo};
use crate::policy::{Action, ObjectKey, ObjectPrefix, Scope, check_text, check_ttl};
use crate::signer::{BackendSigner, ObjectMethod, ObjectUrl};
use crate::signing::{BucketName, Expiry, ObjectName, rfc3339_seconds};
use crate::store::BucketRecord;
use axum::Json;
use axum::extract::{Path, State};
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Listing parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixRequest {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// Only objects whose names sort after this one: how a client resumes an interrupted manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
}

/// One line of a prefix manifest.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestLine {
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub url: String,
    pub expires_at: String,
    /// `gcs-v4`, `s3-sigv4` or `azure-sas` (absent in manifests written before backends).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
}

/// Any line of a prefix manifest: a URL, an object the broker would not sign, or why the
/// stream stopped (always its last line).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ManifestEntry {
    Signed(ManifestLine),
    Unsigned { object: String, error: ItemError },
    Stopped(StreamError),
}

/// A bucket the caller may list, the control plane to list it with and the signer of its URLs.
struct Listable<'a> {
    storage: &'a ControlPlane,
    signer: Arc<BackendSigner>,
    access: BucketAccess<'a>,
}

impl<'a> Listable<'a> {
    /// Authorizes listing `prefix` of `access`'s bucket (audited as `method`); the allowance
    /// and the bucket's class, for what the operation checks next.
    fn authorize(
        state: &'a AppState,
        access: BucketAccess<'a>,
        trail: &mut AuditTrail<'_>,
        prefix: &str,
        method: &'static str,
    ) -> Result<(Self, Allowed, u32), ApiError> {
        ObjectPrefix::parse(prefix).map_err(|e| ApiError::bad_request("invalid_prefix", e))?;
        let Granted { class, allowed, .. } = access.authorize_listing(trail, prefix, method)?;
        let ttl_limit = state.ttl_limit(class);
        let signer = match state.signer(class) {
            Ok(signer) => signer.clone(),
            Err(error) => return Err(allowed.refuse(trail, "no signer".into(), error)),
        };
        let Some(storage) = state.control_plane(class) else {
            tracing::error!(
                "listing needs a storage control plane (BROKER_STORAGE_ENDPOINT or a service-account key)"
            );
            return Err(allowed.refuse(
                trail,
                "no storage control plane".into(),
                ApiError::Unavailable,
            ));
        };
        Ok((
            Self {
                storage,
                signer,
                access,
            },
            allowed,
            ttl_limit,
        ))
    }

    fn record(&self) -> Result<&BucketRecord, ApiError> {
        self.access.record().ok_or(ApiError::Internal)
    }

    /// One page from GCS, as logical names the caller may read.
    async fn page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Vec<ObjectInfo>, Option<String>), ApiError> {
        let record = self.record()?;
        let backend_prefix = format!("{}{prefix}", record.backend_prefix);
        let start = start_after.map(|after| format!("{}{after}", record.backend_prefix));
        let page = self
            .storage
            .list(
                &record.backend_bucket,
                &backend_prefix,
                start.as_deref(),
                token,
            )
            .await
            .map_err(|e| ApiError::from_storage(&e, &record.name))?;
        let readable = page
            .items
            .into_iter()
            .filter_map(|mut object| {
                object.name = object
                    .name
                    .strip_prefix(record.backend_prefix.as_str())?
                    .to_owned();
                self.access
                    .permits(Action::Read, Scope::Object(&object.name))
                    .then_some(object)
            })
            .collect();
        Ok((readable, page.next_page_token))
    }
}

fn view(object: ObjectInfo) -> ObjectView {
    ObjectView {
        size: object.size,
        name: object.name,
        content_type: object.content_type,
        updated: object.updated,
    }
}

/// The objects under a prefix that the caller may read, a page at a time.
#[utoipa::path(get, path = "/v1/buckets/{bucket}/objects", operation_id = "list_objects", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ListQuery),
    responses((status = 200, body = ObjectList), (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ObjectList>, ApiError> {
    let access = BucketAccess::resolve(&state, &caller, &bucket).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    let listable = match Listable::authorize(&state, access, &mut trail, &query.prefix, "LIST") {
        Ok((listable, allowed, _)) => {
            allowed.done(&mut trail);
            trail.commit().await?;
            listable
        }
        Err(error) => return Err(trail.fail(error).await),
    };
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
        .page(&query.prefix, None, backend_token.as_deref())
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
    responses((status = 200, body = ManifestEntry, content_type = "application/x-ndjson", description = "one ManifestEntry per line: a URL, an object not signed, or (last) why the stream stopped"),
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
    let access = BucketAccess::resolve(&state, &caller, &request.bucket).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    let authorized = Listable::authorize(
        &state,
        access.clone(),
        &mut trail,
        &request.prefix,
        "MANIFEST",
    )
    .and_then(
        |(listable, allowed, ttl_limit)| match check_ttl(ttl, ttl_limit) {
            Ok(()) => Ok((listable, allowed)),
            Err(limit) => Err(allowed.exceeds(&mut trail, limit)),
        },
    );
    let (backend, (storage, window), signer) = match authorized {
        Ok((listable, allowed)) => {
            let backend = listable
                .record()
                .and_then(|r| BucketName::parse(&r.backend_bucket).map_err(|_| ApiError::Internal));
            let storage = state.class_of(listable.record()?).map(|(class, _)| {
                let window = state.reuse_window(class, expiry.as_secs());
                (class.backend.clone(), window)
            });
            allowed.done(&mut trail);
            trail.commit().await?;
            (
                backend?,
                storage.ok_or(ApiError::Internal)?,
                listable.signer,
            )
        }
        Err(error) => return Err(trail.fail(error).await),
    };
    let context = access.context();
    drop(access);
    // One page in flight: the stream waits for the client before listing on.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let Some(storage) = state.storage.get(&storage) else {
            return;
        };
        let listable = Listable {
            storage,
            signer,
            access: BucketAccess::with_context(&state, &caller, &request.bucket, context),
        };
        let mut token: Option<String> = None;
        loop {
            let result = manifest_page(
                &state,
                &caller,
                &listable,
                &backend,
                (expiry, window),
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
    (expiry, window): (Expiry, u32),
    request: &PrefixRequest,
    token: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let (objects, next) = listable
        .page(&request.prefix, request.start_after.as_deref(), token)
        .await?;
    // Each object keeps its own request: a name the broker will not sign (a control character,
    // a dot segment a client would resolve to another object, too long with the backend
    // prefix) gets an error line of its own, and never shifts another object's URL.
    let mut signable = Vec::with_capacity(objects.len());
    let mut unsignable = Vec::new();
    for object in objects {
        let full = format!("{}{}", listable.record()?.backend_prefix, object.name);
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
        .map(|(_, name)| {
            let mut url = ObjectUrl::new(ObjectMethod::Get, backend.clone(), name.clone(), expiry);
            url.reuse_window = window;
            (listable.signer.clone(), url)
        })
        .collect();
    let signed = state
        .signers
        .sign_all(requests, OffsetDateTime::now_utc())
        .await;
    let mut lines = Vec::with_capacity(signable.len() * 600);
    for (object, reason) in unsignable {
        let line = ManifestEntry::Unsigned {
            object,
            error: ItemError {
                code: "invalid_object_name".to_owned(),
                message: format!("not signed: {reason}"),
            },
        };
        if serde_json::to_writer(&mut lines, &line).is_ok() {
            lines.push(b'\n');
        }
    }
    let mut trail = AuditTrail::new(state, caller);
    let mut rendered = Vec::with_capacity(signable.len());
    for ((object, _), signed) in signable.into_iter().zip(signed) {
        let signed = signed?;
        // Each URL is authorized, and recorded, on its own (the listing kept only these).
        let granted =
            listable
                .access
                .authorize(&mut trail, Action::Read, Scope::Object(&object.name), "GET");
        match granted {
            Ok(granted) => granted
                .allowed
                .noting("prefix manifest")
                .signed(&mut trail, signed.expires_at),
            Err(_) => continue,
        }
        rendered.push(ManifestLine {
            size: object.size,
            object: object.name,
            url: signed.url,
            expires_at: rfc3339_seconds(signed.expires_at),
            protocol: listable.signer.protocol().to_owned(),
        });
    }
    // The page's rows are committed before any of its URLs is written.
    trail.commit().await?;
    for line in rendered {
        state.metrics.url_signed(&line.protocol, "GET");
        if serde_json::to_writer(&mut lines, &line).is_ok() {
            lines.push(b'\n');
        }
    }
    Ok((lines, next))
}

/// `/v1/buckets/{bucket}/objects` and `/v1/sign/prefix`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(sign_prefix))
}
