//! `POST /v1/upload-policy`: a signed POST policy, for browsers that upload with an HTML form.

use super::DEFAULT_TTL;
use super::plan::backend_object;
use crate::api::access::{AuditTrail, BucketAccess, Granted};
use crate::api::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{
    Action, LogicalBucketName, ObjectKey, ObjectPrefix, Scope, check_text, check_ttl, check_upload,
};
use crate::signing::{Condition, Expiry, PostKey, PostPolicyRequest, rfc3339_seconds};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

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
    /// `gcs-v4` or `s3-sigv4` (Azure has no form uploads).
    pub protocol: String,
}

/// A signed POST policy for an HTML form upload.
#[utoipa::path(post, path = "/v1/upload-policy", tag = "signing", request_body = UploadPolicyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UploadPolicyResponse),
        (status = 400, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::Problem, content_type = "application/problem+json"),
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
    let access = BucketAccess::resolve(&state, &caller, bucket.as_str()).await?;
    // A policy for a prefix is authorized by prefix rights alone (an exact-object grant on the
    // same bytes is no right on the prefix), and audited as one.
    let (scope, method) = if exact {
        (Scope::Object(&object), "POST_POLICY")
    } else {
        (Scope::Prefix(&object), "POST_POLICY_PREFIX")
    };
    let mut trail = AuditTrail::new(&state, &caller);
    let planned = access
        .authorize(&mut trail, Action::Write, scope, method)
        .and_then(|granted| {
            let Granted {
                record,
                class,
                allowed,
            } = granted;
            let checked = check_ttl(ttl, state.ttl_limit(class)).and_then(|()| {
                check_upload(class, request.content_type.as_deref(), request.max_size)
            });
            let key = checked.map(|max_size| {
                let signer = state.signer(class).cloned();
                (
                    max_size,
                    policy_key(record, &object, exact).and_then(|key| Ok((key, signer?))),
                )
            });
            match key {
                Ok((max_size, Ok((key, signer)))) => Ok((max_size, key, signer, allowed)),
                Ok((_, Err(error))) => {
                    let reason = format!("not signable: {}", error.detail());
                    Err(allowed.refuse(&mut trail, reason, error))
                }
                Err(limit) => Err(allowed.exceeds(&mut trail, limit)),
            }
        });
    let (max_size, (backend_bucket, key), signer, allowed) = match planned {
        Ok(planned) => planned,
        Err(error) => return Err(trail.fail(error).await),
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
    let signed = match signer.post_policy(policy, OffsetDateTime::now_utc()).await {
        Ok(signed) => signed,
        Err(error) => return Err(trail.fail(error.into()).await),
    };
    allowed.signed(&mut trail, signed.expires_at);
    trail.commit().await?;
    state.metrics.url_signed(signer.protocol(), "POST_POLICY");
    Ok(Json(UploadPolicyResponse {
        url: signed.url,
        fields: signed.fields.into_iter().collect(),
        expires_at: rfc3339_seconds(signed.expires_at),
        protocol: signer.protocol().to_owned(),
    }))
}

/// The backend bucket and the key condition of a policy for `object` (or, unless `exact`, any
/// object under it) in `bucket`.
fn policy_key(
    bucket: &crate::store::BucketRecord,
    object: &str,
    exact: bool,
) -> Result<(crate::signing::BucketName, PostKey), ApiError> {
    if exact {
        let (backend, name) = backend_object(bucket, object)?;
        return Ok((backend, PostKey::Exact(name)));
    }
    // The prefix is checked as the name of an object in it would be.
    let (backend, _) = backend_object(bucket, "x")?;
    Ok((
        backend,
        PostKey::Prefix(format!("{}{object}", bucket.backend_prefix)),
    ))
}
