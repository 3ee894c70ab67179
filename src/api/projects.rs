//! Projects and their members: `/v1/projects`, `/v1/projects/{slug}`,
//! `/v1/projects/{slug}/members/{member}`.

use super::access::{AuditTrail, Operation, authorize_member_change};
use super::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{Action, Membership, ProjectSlug, REQUIRED_ROLES, control_character};
use crate::signing::rfc3339_seconds;
use crate::store::{MemberChange, MemberRecord, ProjectRecord};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

/// A project to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 3–63 of a-z, 0-9 and '-'.
    pub slug: String,
    pub name: String,
}

/// A project, with the caller's role in it and, for members, its members.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectView {
    pub slug: String,
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    /// The caller's role (the strongest, when they are a member more than once).
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberView>>,
}

/// One member: a subject, or `group:<path>`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub member: String,
    pub role: String,
    pub added_by: String,
    pub added_at: String,
}

/// The caller's projects.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

/// A member's role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// viewer, editor or owner.
    pub role: String,
}

fn view(
    project: ProjectRecord,
    role: Option<String>,
    members: Option<Vec<MemberRecord>>,
) -> ProjectView {
    ProjectView {
        slug: project.slug,
        name: project.name,
        created_by: project.created_by,
        created_at: rfc3339_seconds(project.created_at),
        role,
        members: members.map(|list| {
            list.into_iter()
                .map(|m| MemberView {
                    member: m.member,
                    role: m.role,
                    added_by: m.added_by,
                    added_at: rfc3339_seconds(m.added_at),
                })
                .collect()
        }),
    }
}

/// The caller's strongest role in `slug`, if they are a member (directly or through a group).
async fn role_in(
    state: &AppState,
    caller: &Caller,
    slug: &str,
) -> Result<Option<String>, ApiError> {
    let memberships = state.store.memberships(&caller.member_keys).await?;
    Ok(strongest_role(state, &memberships, slug))
}

/// The strongest of the roles `memberships` give in `slug`.
fn strongest_role(state: &AppState, memberships: &[Membership], slug: &str) -> Option<String> {
    let mine = memberships
        .iter()
        .filter(|m| m.project == slug)
        .map(|m| m.role.as_str());
    state.policies.roles.strongest(mine).map(str::to_owned)
}

/// Create a project; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/projects", operation_id = "create_project", tag = "projects", request_body = NewProject, security(("bearer" = [])),
    responses((status = 201, body = ProjectView),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 409, body = super::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewProject>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let slug =
        ProjectSlug::parse(&body.slug).map_err(|e| ApiError::bad_request("invalid_slug", e))?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name: 1-200 characters, no control characters",
        ));
    }
    let created = state
        .store
        .create_project(slug.as_str(), name, &caller.principal.subject)
        .await?;
    let Some(project) = created else {
        return Err(ApiError::Conflict {
            code: "project_exists",
            detail: format!("project {:?} exists", slug.as_str()),
        });
    };
    // Any signed-in caller may make a project (and owns it).
    let trail = AuditTrail::new(&state, &caller);
    let operation = Operation {
        action: Action::Admin,
        bucket: None,
        object: Some(slug.as_str()),
        method: "CREATE_PROJECT",
    };
    trail
        .allow(&operation, "any signed-in caller".into())
        .changed(trail, "created")
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(project, Some("owner".into()), None)),
    ))
}

/// The projects the caller belongs to (storage admins: all).
#[utoipa::path(get, path = "/v1/projects", operation_id = "list_projects", tag = "projects", security(("bearer" = [])),
    responses((status = 200, body = ProjectList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectList>, ApiError> {
    let memberships = state.store.memberships(&caller.member_keys).await?;
    let slugs: Vec<String> = memberships.iter().map(|m| m.project.clone()).collect();
    let projects = state.store.projects(&slugs, caller.admin).await?;
    let projects = projects
        .into_iter()
        .map(|p| {
            let role = strongest_role(&state, &memberships, &p.slug);
            view(p, role, None)
        })
        .collect();
    Ok(Json(ProjectList { projects }))
}

/// One project with its members; 404 unless the caller belongs to it.
#[utoipa::path(get, path = "/v1/projects/{slug}", operation_id = "get_project", tag = "projects", security(("bearer" = [])),
    params(("slug" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let role = role_in(&state, &caller, &slug).await?;
    if role.is_none() && !caller.admin {
        return Err(ApiError::NotFound);
    }
    let project = state
        .store
        .project(&slug)
        .await?
        .ok_or(ApiError::NotFound)?;
    let members = state.store.members(&slug).await?;
    Ok(Json(view(project, role, Some(members))))
}

/// The member key of `member` as the path gives it: `user:<sub>` or `group:<path>`, and a bare
/// subject is a user's. Users and groups live in separate key spaces: a user whose subject reads
/// `group:/x` is `user:group:/x`, never the group.
fn member_key(member: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_member",
            "member: user:<subject>, group:<path>, or a subject (at most 255 bytes, no control characters)",
        )
    };
    let (kind, value) = match member.split_once(':') {
        Some(("group", path)) => ("group", path),
        Some(("user", sub)) => ("user", sub),
        _ => ("user", member),
    };
    if value.is_empty() || value.len() > 255 || control_character(value).is_some() {
        return Err(bad());
    }
    Ok(format!("{kind}:{value}"))
}

/// Add a member or change their role (needs `share` in the project).
#[utoipa::path(put, path = "/v1/projects/{slug}/members/{member}", tag = "projects", request_body = MemberRole,
    security(("bearer" = [])), params(("slug" = String, Path), ("member" = String, Path, description = "a subject, or group:<path>, URL-encoded")),
    responses((status = 200, body = MemberView),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 409, body = super::Problem, content_type = "application/problem+json")))]
pub async fn put_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberRole>,
) -> Result<Json<MemberView>, ApiError> {
    let member = member_key(&member)?;
    if !REQUIRED_ROLES.contains(&body.role.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_role",
            "role: viewer, editor or owner",
        ));
    }
    let mut trail = AuditTrail::new(&state, &caller);
    let allowed = match authorize_member_change(&mut trail, &slug, &member, Some(&body.role)).await
    {
        Ok(allowed) => allowed,
        Err(error) => return Err(trail.fail(error).await),
    };
    let changed = state
        .store
        .put_member(&slug, &member, &body.role, &caller.principal.subject)
        .await
        .map_err(ApiError::from)
        .and_then(|change| match change {
            MemberChange::Done => Ok(()),
            MemberChange::LastOwner => Err(last_owner()),
            MemberChange::NoProject | MemberChange::NotAMember => Err(project_not_found(&slug)),
        });
    if let Err(error) = changed {
        let reason = format!("not changed: {}", error.detail());
        return Err(allowed.fail(trail, reason, error).await);
    }
    let what = format!("{member} is {} in {slug}", body.role);
    allowed.changed(trail, &what).await?;
    let added = state
        .store
        .members(&slug)
        .await?
        .into_iter()
        .find(|m| m.member == member)
        .ok_or(ApiError::Internal)?;
    Ok(Json(MemberView {
        member: added.member,
        role: added.role,
        added_by: added.added_by,
        added_at: rfc3339_seconds(added.added_at),
    }))
}

/// Remove a member (needs `share` in the project).
#[utoipa::path(delete, path = "/v1/projects/{slug}/members/{member}", tag = "projects", security(("bearer" = [])),
    params(("slug" = String, Path), ("member" = String, Path)),
    responses((status = 204), (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 409, body = super::Problem, content_type = "application/problem+json")))]
pub async fn delete_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, member)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let member = member_key(&member)?;
    let mut trail = AuditTrail::new(&state, &caller);
    let allowed = match authorize_member_change(&mut trail, &slug, &member, None).await {
        Ok(allowed) => allowed,
        Err(error) => return Err(trail.fail(error).await),
    };
    let removed = state
        .store
        .remove_member(&slug, &member)
        .await
        .map_err(ApiError::from)
        .and_then(|change| match change {
            MemberChange::Done => Ok(()),
            MemberChange::NoProject => Err(project_not_found(&slug)),
            MemberChange::NotAMember => Err(ApiError::Missing {
                code: "member_not_found",
                detail: format!("{member} is not a member of {slug}"),
            }),
            MemberChange::LastOwner => Err(last_owner()),
        });
    if let Err(error) = removed {
        let reason = format!("not removed: {}", error.detail());
        return Err(allowed.fail(trail, reason, error).await);
    }
    allowed
        .changed(trail, &format!("{member} removed from {slug}"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn last_owner() -> ApiError {
    ApiError::Conflict {
        code: "last_owner",
        detail: "a project keeps at least one owner".into(),
    }
}

/// A project that does not exist, named to someone who may know (a storage admin).
fn project_not_found(slug: &str) -> ApiError {
    ApiError::Missing {
        code: "project_not_found",
        detail: format!("no project {slug:?}"),
    }
}

/// `/v1/projects`, `/v1/projects/{slug}` and its members.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get))
        .routes(routes!(put_member, delete_member))
}
