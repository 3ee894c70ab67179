//! `/v1/buckets`: the buckets a caller can see; project buckets; registering existing GCS
//! buckets (brownfield); deleting by the class's release policy.

use super::access::{AuditTrail, BucketAccess, Granted, authorize_new_bucket};
use super::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{Action, LogicalBucketName, ObjectPrefix, ProjectSlug, Release, Scope};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The names of personal buckets start so, and no other bucket's may.
const PERSONAL_NAME_PREFIX: &str = "u-";
use crate::signing::BucketName;
use crate::store::{BucketRecord, NewBucket, StoreError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// A bucket as its users see it: never its backend location.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BucketView {
    pub name: String,
    pub class: String,
    pub owner: Option<String>,
    pub project: Option<String>,
    pub classification: String,
    pub read_only: bool,
    /// What the caller may do on the whole bucket.
    pub actions: Vec<Action>,
    /// Rights limited to prefixes.
    pub prefix_grants: Vec<PrefixGrant>,
}

/// A right on the objects under one prefix, or (`exact`) on the one object named `prefix`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrefixGrant {
    pub prefix: String,
    /// The right covers the object named `prefix` only, not the names it prefixes.
    #[serde(default)]
    pub exact: bool,
    pub role: String,
}

/// The visible buckets.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BucketList {
    pub buckets: Vec<BucketView>,
}

/// A bucket to create: a project's, or (storage admins) an existing GCS bucket or prefix.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBucketBody {
    pub name: String,
    pub class: String,
    /// The project a project bucket belongs to.
    pub project: Option<String>,
    /// Brownfield (storage admins): the existing GCS bucket.
    pub backend_bucket: Option<String>,
    /// Brownfield: the prefix in it ("" or ending in "/").
    pub backend_prefix: Option<String>,
    /// Storage admins: refuse write and delete whatever the grants.
    pub read_only: Option<bool>,
}

/// The caller's view of the bucket of `access`, or `None` when they may not see it.
fn view(access: &BucketAccess<'_>) -> Option<BucketView> {
    let actions = access.actions()?.iter().collect();
    let record = access.record()?;
    let prefix_grants = access
        .grants()
        .iter()
        .filter(|g| !g.prefix.is_empty())
        .map(|g| PrefixGrant {
            prefix: g.prefix.clone(),
            exact: g.exact,
            role: g.role.clone(),
        })
        .collect();
    Some(BucketView {
        name: record.name.clone(),
        class: record.class.clone(),
        owner: record.owner.clone(),
        project: record.project.clone(),
        classification: record.classification.clone(),
        read_only: access.read_only(),
        actions,
        prefix_grants,
    })
}

/// Buckets the caller can see, with the caller's actions on each.
#[utoipa::path(get, path = "/v1/buckets", operation_id = "list_buckets", tag = "buckets", security(("bearer" = [])),
    responses((status = 200, body = BucketList), (status = 401, body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BucketList>, ApiError> {
    let records = state
        .store
        .visible_buckets(
            &caller.principal.subject,
            &caller.grant_principals,
            &caller.member_keys,
            caller.admin,
        )
        .await?;
    let mut buckets = Vec::with_capacity(records.len());
    for record in records {
        // A bucket whose class left the policies is left out (and logged), not the whole list.
        let access = BucketAccess::resolve(&state, &caller, &record.name).await?;
        buckets.extend(view(&access));
    }
    Ok(Json(BucketList { buckets }))
}

/// One bucket; 404 unless the caller can see it.
#[utoipa::path(get, path = "/v1/buckets/{bucket}", operation_id = "get_bucket", tag = "buckets", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 200, body = BucketView), (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> Result<Json<BucketView>, ApiError> {
    let access = BucketAccess::resolve(&state, &caller, &bucket).await?;
    if access.misconfigured() {
        return Err(ApiError::Internal);
    }
    view(&access).map(Json).ok_or(ApiError::NotFound)
}

/// Create a project bucket (project owners), or register an existing GCS bucket or prefix
/// (storage admins, classes whose release policy is `retain`).
#[utoipa::path(post, path = "/v1/buckets", operation_id = "create_bucket", tag = "buckets", request_body = NewBucketBody, security(("bearer" = [])),
    responses((status = 201, body = BucketView),
        (status = 400, body = super::Problem, content_type = "application/problem+json"),
        (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 409, body = super::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewBucketBody>,
) -> Result<(StatusCode, Json<BucketView>), ApiError> {
    let name = LogicalBucketName::parse(&body.name)
        .map_err(|e| ApiError::bad_request("invalid_bucket_name", e))?;
    let class = state.policies.classes.get(&body.class).ok_or_else(|| {
        ApiError::bad_request("invalid_class", format!("no bucket class {:?}", body.class))
    })?;
    let brownfield = body.backend_bucket.is_some() || body.backend_prefix.is_some();
    if body.class == "personal" && !brownfield {
        return Err(ApiError::bad_request(
            "invalid_class",
            "personal buckets are made on a user's first request",
        ));
    }
    // `u-…` names belong to personal buckets alone: nobody may take a user's name before them.
    if name.as_str().starts_with(PERSONAL_NAME_PREFIX) {
        return Err(ApiError::bad_request(
            "reserved_bucket_name",
            "names starting with \"u-\" are reserved for personal buckets",
        ));
    }
    let project = body
        .project
        .as_deref()
        .map(ProjectSlug::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_slug", e))?;
    let (backend_bucket, backend_prefix) = if brownfield {
        if class.release != Release::Retain {
            return Err(ApiError::bad_request(
                "class_must_retain",
                "existing buckets are registered with a class whose release policy is retain",
            ));
        }
        let backend = body.backend_bucket.as_deref().ok_or_else(|| {
            ApiError::bad_request("invalid_request", "backend_bucket is required")
        })?;
        let backend = BucketName::parse(backend)?;
        class
            .backend_kind
            .check_bucket_name(backend.as_str())
            .map_err(|e| {
                ApiError::bad_request("invalid_bucket_name", format!("backend_bucket: {e}"))
            })?;
        let prefix = body.backend_prefix.clone().unwrap_or_default();
        let prefix = ObjectPrefix::parse(&prefix)
            .map_err(|e| ApiError::bad_request("invalid_prefix", format!("backend_{e}")))?
            .into_string();
        if !(prefix.is_empty() || prefix.ends_with('/')) || prefix.len() > 512 {
            return Err(ApiError::bad_request(
                "invalid_prefix",
                "backend_prefix: empty, or ending with '/', at most 512 bytes",
            ));
        }
        (backend.as_str().to_owned(), prefix)
    } else {
        let Some(project) = &project else {
            return Err(ApiError::bad_request(
                "invalid_request",
                "a project bucket names its project",
            ));
        };
        if !class.prefix.contains("{project}") {
            return Err(ApiError::bad_request(
                "invalid_class",
                format!("class {:?} is not for project buckets", body.class),
            ));
        }
        (
            class.backend_bucket.as_str().to_owned(),
            class.render_prefix(None, Some(project)),
        )
    };
    let mut trail = AuditTrail::new(&state, &caller);
    let new = crate::policy::NewBucket {
        class,
        project: project
            .as_ref()
            .filter(|_| !brownfield)
            .map(ProjectSlug::as_str),
        registers: brownfield || body.read_only.is_some(),
    };
    let allowed = match authorize_new_bucket(&mut trail, name.as_str(), new).await {
        Ok(allowed) => allowed,
        Err(error) => return Err(trail.fail(error).await),
    };
    let made = async {
        // Registered only if storage has it and lets the broker list it: a typo would
        // otherwise surface later as a failure of every listing. (Asked for storage admins
        // only: nobody else may make the broker probe storage.)
        if brownfield {
            check_registrable(&state, class, &backend_bucket, &backend_prefix).await?;
        }
        if state.store.bucket_exists(name.as_str()).await? {
            return Err(ApiError::Conflict {
                code: "bucket_exists",
                detail: format!("bucket {:?} exists", name.as_str()),
            });
        }
        if state
            .store
            .backend_overlaps(&backend_bucket, &backend_prefix)
            .await?
        {
            return Err(ApiError::Conflict {
                code: "prefix_in_use",
                detail: "another bucket already maps to that storage location".into(),
            });
        }
        let created = state
            .store
            .create_bucket(NewBucket {
                name: name.as_str(),
                class: &class.name,
                owner: None,
                project: project.as_ref().map(ProjectSlug::as_str),
                backend_bucket: &backend_bucket,
                backend_prefix: &backend_prefix,
                classification: &state.policies.classes.levels[class.classification],
                read_only: body.read_only.unwrap_or(false),
                created_by: &caller.principal.subject,
            })
            .await;
        match created {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(ApiError::Conflict {
                code: "bucket_exists",
                detail: format!("bucket {:?} exists", name.as_str()),
            }),
            // A project that does not exist (foreign key).
            Err(StoreError::MissingReference(_)) => Err(project_not_found(project.as_ref())),
            Err(other) => Err(other.into()),
        }
    }
    .await;
    let record = match made {
        Ok(record) => record,
        Err(error) => {
            let reason = format!("not made: {}", error.detail());
            return Err(allowed.fail(trail, reason, error).await);
        }
    };
    let what = format!(
        "bucket {} of class {} at gs://{backend_bucket}/{backend_prefix}",
        record.name, record.class
    );
    allowed.changed(trail, &what).await?;
    let access = BucketAccess::resolve(&state, &caller, &record.name).await?;
    let shown = view(&access).ok_or(ApiError::Internal)?;
    Ok((StatusCode::CREATED, Json(shown)))
}

/// A project that does not exist, named to someone who may know: a storage admin, or a member
/// of a project deleted a moment ago.
fn project_not_found(project: Option<&ProjectSlug>) -> ApiError {
    ApiError::Missing {
        code: "project_not_found",
        detail: match project {
            Some(slug) => format!("no project {:?}", slug.as_str()),
            None => "no such project".into(),
        },
    }
}

/// Refuses to register `prefix` of storage bucket `backend` unless storage has the bucket and
/// lets the broker list it.
async fn check_registrable(
    state: &AppState,
    class: &crate::policy::BucketClass,
    backend: &str,
    prefix: &str,
) -> Result<(), ApiError> {
    let Some(storage) = state.control_plane(class) else {
        tracing::warn!(
            backend,
            "no storage control plane: registering a bucket without checking that it exists"
        );
        return Ok(());
    };
    storage.check_listable(backend, prefix).await.map_err(|e| {
        if e.is_not_found() {
            ApiError::bad_request(
                "backend_bucket_not_found",
                format!("storage has no bucket {backend:?}"),
            )
        } else if e.is_denied() {
            ApiError::bad_request(
                "backend_bucket_denied",
                format!(
                    "storage refuses the broker access to bucket {backend:?}; grant its service account object access there first"
                ),
            )
        } else {
            tracing::error!(error = %e, "checking a bucket to register failed");
            ApiError::Unavailable
        }
    })
}

/// Delete a bucket (needs `admin` on it): `retain` classes keep the objects, `delete` classes
/// delete every object under the bucket's prefix first.
#[utoipa::path(delete, path = "/v1/buckets/{bucket}", operation_id = "delete_bucket", tag = "buckets", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 204), (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> Result<StatusCode, ApiError> {
    let access = BucketAccess::resolve(&state, &caller, &bucket).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    let Granted {
        record,
        class,
        allowed,
    } = match access.authorize(
        &mut trail,
        Action::Admin,
        Scope::Prefix(""),
        "DELETE_BUCKET",
    ) {
        Ok(granted) => granted,
        Err(error) => return Err(trail.fail(error).await),
    };
    let deleted = release(&state, record, class).await;
    match deleted {
        Ok(Some(what)) => allowed.changed(trail, &what).await?,
        // Deleted meanwhile by someone else: nothing changed here.
        Ok(None) => {
            allowed.done(&mut trail);
            trail.commit().await?;
        }
        Err(error) => {
            let reason = format!("not deleted: {}", error.detail());
            return Err(allowed.fail(trail, reason, error).await);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes `record` by its class's release policy; what was done, or `None` when the bucket
/// was gone already.
async fn release(
    state: &AppState,
    record: &BucketRecord,
    class: &crate::policy::BucketClass,
) -> Result<Option<String>, ApiError> {
    let bucket = &record.name;
    let mut reason = format!(
        "bucket {bucket} deleted; release policy {:?}",
        class.release
    );
    if class.release == Release::Delete {
        let Some(storage) = state.control_plane(class) else {
            tracing::error!(
                bucket,
                "a delete-policy bucket cannot be deleted: no storage control plane configured"
            );
            return Err(ApiError::Unavailable);
        };
        // On failure the bucket stays, to be deleted again.
        let removed = storage
            .delete_prefix(&record.backend_bucket, &record.backend_prefix)
            .await
            .map_err(|e| ApiError::from_storage(&e, bucket))?;
        reason.push_str(&format!(", {removed} objects deleted"));
    }
    if !state.store.delete_bucket(bucket).await? {
        return Ok(None);
    }
    Ok(Some(reason))
}

/// `/v1/buckets` and `/v1/buckets/{bucket}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, delete))
}
