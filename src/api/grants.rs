//! `GET, POST /v1/buckets/{bucket}/grants`, `DELETE /v1/buckets/{bucket}/grants/{id}`: only
//! holders of `share` manage grants, and nobody grants more than they hold.

use super::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{Action, Decision, GrantPrincipal, Holding, ObjectKey, ObjectPrefix, Scope};
use crate::signing::rfc3339_seconds;
use crate::store::{AccessContext, BucketRecord, GrantRecord, NewGrant};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
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

/// The bucket, if the caller holds `share` on `scope` of it; refusals audited.
async fn sharer(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
    scope: Scope<'_>,
    operation: &'static str,
) -> Result<(BucketRecord, std::sync::Arc<AccessContext>), ApiError> {
    let context = state.access_context(bucket, caller).await?;
    let record = context.bucket.clone().ok_or(ApiError::NotFound)?;
    let (class, level) = state.class_of(&record).ok_or(ApiError::Internal)?;
    match caller.decide(state, &record, class, level, &context, Action::Share, scope) {
        Decision::Allow(_) => Ok((record, context)),
        Decision::NotFound(_) => Err(ApiError::NotFound),
        Decision::Deny(reason) => {
            super::Change {
                action: Action::Share,
                bucket: Some(bucket),
                object: Some(scope.as_str()),
                operation,
            }
            .refused(state, caller, &reason)
            .await?;
            Err(ApiError::Forbidden)
        }
    }
}

/// The grants on a bucket (needs `share` on the whole bucket).
#[utoipa::path(get, path = "/v1/buckets/{bucket}/grants", tag = "grants", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 200, body = GrantList), (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> Result<Json<GrantList>, ApiError> {
    sharer(&state, &caller, &bucket, Scope::Prefix(""), "LIST_GRANTS").await?;
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
#[utoipa::path(post, path = "/v1/buckets/{bucket}/grants", tag = "grants", request_body = NewGrantBody,
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
    let (record, context) =
        sharer(&state, &caller, &bucket, scope_of(&scope), "CREATE_GRANT").await?;
    // A grant to a project that does not exist would go to whoever creates it later.
    if let GrantPrincipal::Project(slug) = &principal
        && state.store.project(slug).await?.is_none()
    {
        return Err(ApiError::bad_request(
            "unknown_project",
            format!("no project {slug:?}: grants name existing projects"),
        ));
    }
    // Nobody grants more than they hold: every action of the role, on the whole scope (a
    // prefix by prefix rights only, never by a grant on one object of that name)...
    let (class, level) = state.class_of(&record).ok_or(ApiError::Internal)?;
    let role_actions = state.policies.roles.actions(&body.role);
    let change = super::Change {
        action: Action::Share,
        bucket: Some(&bucket),
        object: Some(&scope),
        operation: "CREATE_GRANT",
    };
    for action in role_actions.iter() {
        if !matches!(
            caller.decide(
                &state,
                &record,
                class,
                level,
                &context,
                action,
                scope_of(&scope)
            ),
            Decision::Allow(_)
        ) {
            let reason = format!(
                "cannot grant {}: the caller does not hold {action} on {scope:?}",
                body.role
            );
            change.refused(&state, &caller, &reason).await?;
            return Err(ApiError::Forbidden);
        }
    }
    // ...nor for longer than they hold it.
    match caller.held_until(&state, &record, &context, role_actions, scope_of(&scope)) {
        Some(Holding::Forever) => {}
        Some(Holding::Until(end)) if expires_at.is_some_and(|at| at <= end) => {}
        Some(Holding::Until(end)) => {
            let end = rfc3339_seconds(end);
            let reason = format!(
                "cannot grant {} beyond {end}: the caller holds it only through grants ending then",
                body.role
            );
            change.refused(&state, &caller, &reason).await?;
            return Err(ApiError::bad_request(
                "expiry_exceeds_holding",
                format!(
                    "you hold this role here only until {end}, through grants that end then; give an expires_at at or before it"
                ),
            ));
        }
        None => {
            tracing::error!("a right allowed by decide is not held; refusing the grant");
            return Err(ApiError::Internal);
        }
    }
    let grant = state
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
        .await?;
    let reason = format!(
        "grant {}: {} {} on {scope:?}",
        grant.id, body.principal, body.role
    );
    super::Change {
        action: Action::Share,
        bucket: Some(&bucket),
        object: Some(&scope),
        operation: "CREATE_GRANT",
    }
    .done(&state, &caller, &reason)
    .await?;
    Ok((StatusCode::CREATED, Json(view(grant))))
}

/// Revoke a grant (needs `share` on its scope). Every replica stops honouring it within a second.
#[utoipa::path(delete, path = "/v1/buckets/{bucket}/grants/{id}", tag = "grants", security(("bearer" = [])),
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
    // Visibility first: an invisible bucket is 404 whatever the id.
    let context = state.access_context(&bucket, &caller).await?;
    if context.bucket.is_none() {
        return Err(ApiError::NotFound);
    }
    let grant = state.store.grant(&bucket, id).await?;
    let Some(grant) = grant else {
        sharer(&state, &caller, &bucket, Scope::Prefix(""), "DELETE_GRANT").await?;
        return Err(missing());
    };
    // Revoking needs `share` on the grant's scope, decided as creating it is: a prefix grant by
    // prefix rights alone.
    let scope = if grant.exact {
        Scope::Object(&grant.prefix)
    } else {
        Scope::Prefix(&grant.prefix)
    };
    sharer(&state, &caller, &bucket, scope, "DELETE_GRANT").await?;
    if state.store.delete_grant(&bucket, id).await? {
        let reason = format!(
            "grant {id} revoked: {} {} on {:?}",
            grant.principal, grant.role, grant.prefix
        );
        super::Change {
            action: Action::Share,
            bucket: Some(&bucket),
            object: Some(&grant.prefix),
            operation: "DELETE_GRANT",
        }
        .done(&state, &caller, &reason)
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
