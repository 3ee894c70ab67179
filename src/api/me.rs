//! `GET /v1/me`: who the broker thinks the caller is.

use super::{ApiError, AppState, Caller};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The caller.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    pub subject: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub personal_bucket: String,
    pub projects: Vec<ProjectRole>,
}

/// A project the caller belongs to, directly or through a group, with that membership's role.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectRole {
    pub slug: String,
    pub role: String,
}

/// The caller's identity, personal bucket and projects.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = super::Problem, content_type = "application/problem+json")))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    // A member directly and through groups is listed once, with the strongest role.
    let memberships = state.store.memberships(&caller.member_keys).await?;
    let mut by_project: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for m in &memberships {
        by_project.entry(&m.project).or_default().push(&m.role);
    }
    let projects = by_project
        .into_iter()
        .filter_map(|(slug, roles)| {
            Some(ProjectRole {
                slug: slug.to_owned(),
                role: state.policies.roles.strongest(roles)?.to_owned(),
            })
        })
        .collect();
    let personal_bucket = match caller.personal_bucket {
        Some(bucket) => bucket,
        None => state.personal_bucket(&caller.principal).await?,
    };
    let p = caller.principal;
    Ok(Json(Me {
        subject: p.subject,
        username: p.username,
        email: p.email,
        groups: p.groups,
        roles: p.roles,
        personal_bucket: personal_bucket.name,
        projects,
    }))
}

/// `/v1/me`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}
