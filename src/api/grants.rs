//! `GET, POST /v1/buckets/{bucket}/grants`, `DELETE /v1/buckets/{bucket}/grants/{id}`: only
//! holders of `share` manage grants, and nobody grants more than they hold.

use super::access::{AuditTrail, BucketAccess};
use super::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{Action, GrantPrincipal, ObjectKey, ObjectPrefix, Scope};
use crate::signing::rfc3339_seconds;
use crate::store::{GrantRecord, NewGrant};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// A grant to create: on a prefix, or on a single object.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrantBody {
    /// Objects whose names start with this ("" is the whole bucket). Or give `object`.
    pub prefix: Option<String>,
    /// Exactly this object.
    pub object: Option<String>,
    /// `user:<sub>`, `group:<path>`, `role:<name>`, `project:<slug>` or `authenticated`.
    pub principal: String,
    pub role: String,
    /// RFC 3339; the grant stops working then.
    pub expires_at: Option<String>,
}

/// A grant.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: Uuid,
    pub bucket: String,
    pub prefix: String,
    /// The grant covers the object named `prefix` only.
    pub exact: bool,
    pub principal: String,
    pub role: String,
    pub expires_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

/// A bucket's grants.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantList {
    pub grants: Vec<GrantView>,
}

fn view(g: GrantRecord) -> GrantView {
    GrantView {
        id: g.id,
        bucket: g.bucket,
        prefix: g.prefix,
        exact: g.exact,
        principal: g.principal,
        role: g.role,
        expires_at: g.expires_at.map(rfc3339_seconds),
        created_by: g.created_by,
        created_at: rfc3339_seconds(g.created_at),
    }
}

/// Authorizes `share` on `scope` of `bucket` (audited as `method`), and records it once done:
/// for the operations on grants that change nothing themselves.
async fn authorize_share(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
    scope: Scope<'_>,
    method: &'static str,
) -> Result<(), ApiError> {
    let access = BucketAccess::resolve(state, caller, bucket).await?;
    let mut trail = AuditTrail::new(state, caller);
    match access.authorize(&mut trail, Action::Share, scope, method) {
        Ok(granted) => granted.allowed.done(&mut trail),
        Err(error) => return Err(trail.fail(error).await),
    }
    trail.commit().await
}

/// The grants on a bucket (needs `share` on the whole bucket).
#[utoipa::path(get, path = "/v1/buckets/{bucket}/grants", operation_id = "list_grants", tag = "grants", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 200, body = GrantList), (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> Result<Json<GrantList>, ApiError> {
    authorize_share(&state, &caller, &bucket, Scope::Prefix(""), "LIST_GRANTS").await?;
    let grants = state
        .store
        .grants(&bucket)
        .await?
        .into_iter()
        .map(view)
        .collect();
    Ok(Json(GrantList { grants }))
}

/// Grant a role on a prefix or an object (needs `share` there, and every action of the role).
#[utoipa::path(post, path = "/v1/buckets/{bucket}/grants", operation_id = "create_grant", tag = "grants", request_body = NewGrantBody,
    security(("bearer" = [])), params(("bucket" = String, Path)),
    responses((status = 201, body = GrantView),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
    ApiJson(body): ApiJson<NewGrantBody>,
) -> Result<(StatusCode, Json<GrantView>), ApiError> {
    let (scope, exact) = match (&body.prefix, &body.object) {
        (Some(prefix), None) => (
            ObjectPrefix::parse(prefix)
                .map_err(|e| ApiError::bad_request("invalid_prefix", e))?
                .into_string(),
            false,
        ),
        (None, Some(object)) => (
            ObjectKey::parse(object)
                .map_err(|e| ApiError::bad_request("invalid_object_name", e))?
                .into_string(),
            true,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of prefix and object",
            ));
        }
    };
    let scope_of = if exact { Scope::Object } else { Scope::Prefix };
    let principal = GrantPrincipal::parse(&body.principal)
        .map_err(|e| ApiError::bad_request("invalid_principal", e))?;
    if !state.policies.roles.contains(&body.role) {
        return Err(ApiError::bad_request(
            "invalid_role",
            format!("role {:?} is not defined", body.role),
        ));
    }
    let expires_at = match &body.expires_at {
        None => None,
        Some(text) => {
            let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                ApiError::bad_request("invalid_expiry", "expires_at: an RFC 3339 time")
            })?;
            if at <= OffsetDateTime::now_utc() {
                return Err(ApiError::bad_request(
                    "invalid_expiry",
                    "expires_at is in the past",
                ));
            }
            // As stored: PostgreSQL keeps microseconds.
            let micros = at.nanosecond() / 1_000 * 1_000;
            Some(at.replace_nanosecond(micros).unwrap_or(at))
        }
    };
    let access = BucketAccess::resolve(&state, &caller, &bucket).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    // The right to share there, then: nobody grants more, or longer, than they hold.
    let allowed = access
        .authorize(&mut trail, Action::Share, scope_of(&scope), "CREATE_GRANT")
        .and_then(|granted| {
            access.check_grant(
                &mut trail,
                granted,
                &body.role,
                scope_of(&scope),
                expires_at,
            )
        });
    let allowed = match allowed {
        Ok(allowed) => allowed,
        Err(error) => return Err(trail.fail(error).await),
    };
    let made = async {
        // A grant to a project that does not exist would go to whoever creates it later.
        if let GrantPrincipal::Project(slug) = &principal
            && state.store.project(slug).await?.is_none()
        {
            return Err(ApiError::bad_request(
                "unknown_project",
                format!("no project {slug:?}: grants name existing projects"),
            ));
        }
        Ok(state
            .store
            .create_grant(NewGrant {
                bucket: &bucket,
                prefix: &scope,
                exact,
                principal: &body.principal,
                role: &body.role,
                expires_at,
                created_by: &caller.principal.subject,
            })
            .await?)
    }
    .await;
    let grant = match made {
        Ok(grant) => grant,
        Err(error) => {
            let reason = format!("not made: {}", error.detail());
            return Err(allowed.fail(trail, reason, error).await);
        }
    };
    let what = format!(
        "grant {}: {} {} on {scope:?}",
        grant.id, body.principal, body.role
    );
    allowed.changed(trail, &what).await?;
    Ok((StatusCode::CREATED, Json(view(grant))))
}

/// Revoke a grant (needs `share` on its scope). Every replica stops honouring it within a second.
#[utoipa::path(delete, path = "/v1/buckets/{bucket}/grants/{id}", operation_id = "delete_grant", tag = "grants", security(("bearer" = [])),
    params(("bucket" = String, Path), ("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let missing = || ApiError::Missing {
        code: "grant_not_found",
        detail: "no such grant on this bucket".into(),
    };
    let id = Uuid::parse_str(&id).map_err(|_| missing())?;
    // Visibility first: an invisible bucket is 404 whatever the id (and a grant id that is not
    // on the bucket needs `share` on the whole bucket to be told so).
    let access = BucketAccess::resolve(&state, &caller, &bucket).await?;
    let grant = match access.record() {
        Some(_) => state.store.grant(&bucket, id).await?,
        None => None,
    };
    let Some(grant) = grant else {
        authorize_share(&state, &caller, &bucket, Scope::Prefix(""), "DELETE_GRANT").await?;
        return Err(missing());
    };
    // Revoking needs `share` on the grant's scope, decided as creating it is: a prefix grant by
    // prefix rights alone.
    let scope = if grant.exact {
        Scope::Object(&grant.prefix)
    } else {
        Scope::Prefix(&grant.prefix)
    };
    let mut trail = AuditTrail::new(&state, &caller);
    let allowed = match access.authorize(&mut trail, Action::Share, scope, "DELETE_GRANT") {
        Ok(granted) => granted.allowed,
        Err(error) => return Err(trail.fail(error).await),
    };
    let deleted = match state.store.delete_grant(&bucket, id).await {
        Ok(deleted) => deleted,
        Err(error) => {
            let error = ApiError::from(error);
            let reason = format!("not revoked: {}", error.detail());
            return Err(allowed.fail(trail, reason, error).await);
        }
    };
    if deleted {
        let what = format!(
            "grant {id} revoked: {} {} on {:?}",
            grant.principal, grant.role, grant.prefix
        );
        allowed.changed(trail, &what).await?;
    } else {
        // Revoked meanwhile by someone else.
        allowed.done(&mut trail);
        trail.commit().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `/v1/buckets/{bucket}/grants` and `/v1/buckets/{bucket}/grants/{id}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(delete))
}
