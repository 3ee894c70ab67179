//! `/v1/buckets`: the buckets a caller can see; project buckets; registering existing GCS
//! buckets (brownfield); deleting by the class's release policy.

use super::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{
    Action, Decision, LogicalBucketName, ObjectPrefix, ProjectSlug, Release, Scope,
};

/// The names of personal buckets start so, and no other bucket's may.
const PERSONAL_NAME_PREFIX: &str = "u-";
use crate::signing::BucketName;
use crate::store::{BucketRecord, NewBucket};
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

/// The caller's view of `record`, or `None` when they may not see it.
async fn view(
    state: &AppState,
    caller: &Caller,
    record: BucketRecord,
) -> Result<Option<BucketView>, ApiError> {
    let Some((class, level)) = state.class_of(&record) else {
        return Ok(None);
    };
    let context = state.access_context(&record.name, caller).await?;
    let decide_on = |action| {
        caller.decide(
            state,
            &record,
            class,
            level,
            &context,
            action,
            Scope::Prefix(""),
        )
    };
    if matches!(decide_on(Action::Read), Decision::NotFound(_)) {
        return Ok(None);
    }
    let actions = Action::ALL
        .into_iter()
        .filter(|a| matches!(decide_on(*a), Decision::Allow(_)))
        .collect();
    let prefix_grants = context
        .grants
        .iter()
        .filter(|g| !g.prefix.is_empty())
        .map(|g| PrefixGrant {
            prefix: g.prefix.clone(),
            exact: g.exact,
            role: g.role.clone(),
        })
        .collect();
    let read_only = record.read_only || class.read_only;
    Ok(Some(BucketView {
        name: record.name,
        class: record.class,
        owner: record.owner,
        project: record.project,
        classification: record.classification,
        read_only,
        actions,
        prefix_grants,
    }))
}

/// Buckets the caller can see, with the caller's actions on each.
#[utoipa::path(get, path = "/v1/buckets", tag = "buckets", security(("bearer" = [])),
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
        buckets.extend(view(&state, &caller, record).await?);
    }
    Ok(Json(BucketList { buckets }))
}

/// One bucket; 404 unless the caller can see it.
#[utoipa::path(get, path = "/v1/buckets/{bucket}", tag = "buckets", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 200, body = BucketView), (status = 404, body = super::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> Result<Json<BucketView>, ApiError> {
    let context = state.access_context(&bucket, &caller).await?;
    let record = context.bucket.clone().ok_or(ApiError::NotFound)?;
    view(&state, &caller, record)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Create a project bucket (project owners), or register an existing GCS bucket or prefix
/// (storage admins, classes whose release policy is `retain`).
#[utoipa::path(post, path = "/v1/buckets", tag = "buckets", request_body = NewBucketBody, security(("bearer" = [])),
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
    // Classification is a clearance, not a permission: nobody, storage admins included, makes
    // a bucket they could not see.
    if class.classification > caller.clearance {
        let reason = format!(
            "class {} is classified {}, above the caller's clearance",
            class.name, state.policies.classes.levels[class.classification]
        );
        return refuse_create(&state, &caller, name.as_str(), &reason).await;
    }
    if (brownfield || body.read_only.is_some()) && !caller.admin {
        let reason = "only storage admins register existing buckets or set read_only";
        return refuse_create(&state, &caller, name.as_str(), reason).await;
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
        // Registered only if storage has it and lets the broker list it: a typo would
        // otherwise surface later as a failure of every listing.
        match &state.gcs {
            Some(gcs) => gcs.check_listable(backend.as_str(), &prefix).await.map_err(|e| {
                if e.is_not_found() {
                    ApiError::bad_request(
                        "backend_bucket_not_found",
                        format!("storage has no bucket {:?}", backend.as_str()),
                    )
                } else if e.is_denied() {
                    ApiError::bad_request(
                        "backend_bucket_denied",
                        format!(
                            "storage refuses the broker access to bucket {:?}; grant its service account object access there first",
                            backend.as_str()
                        ),
                    )
                } else {
                    tracing::error!(error = %e, "checking a bucket to register failed");
                    ApiError::Unavailable
                }
            })?,
            None => tracing::warn!(
                backend = backend.as_str(),
                "no storage control plane: registering a bucket without checking that it exists"
            ),
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
        let memberships = state.store.memberships(&caller.member_keys).await?;
        let mine: Vec<_> = memberships
            .iter()
            .filter(|m| m.project == project.as_str())
            .collect();
        if mine.is_empty() && !caller.admin {
            return Err(ApiError::NotFound);
        }
        let owns = mine.iter().any(|m| {
            state
                .policies
                .roles
                .actions(&m.role)
                .contains(Action::Admin)
        });
        if !owns && !caller.admin {
            let reason = format!(
                "creating a bucket of project {} needs its owner role",
                project.as_str()
            );
            return refuse_create(&state, &caller, name.as_str(), &reason).await;
        }
        (
            class.backend_bucket.as_str().to_owned(),
            class.render_prefix(None, Some(project)),
        )
    };
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
        .await
        .map_err(|e| match e {
            // A project that does not exist (foreign key).
            crate::store::StoreError::MissingReference(_) => ApiError::Missing {
                code: "project_not_found",
                detail: "no such project".into(),
            },
            other => other.into(),
        })?;
    let Some(record) = created else {
        return Err(ApiError::Conflict {
            code: "bucket_exists",
            detail: format!("bucket {:?} exists", name.as_str()),
        });
    };
    let reason = format!(
        "bucket {} of class {} at gs://{backend_bucket}/{backend_prefix}",
        record.name, record.class
    );
    super::Change {
        action: Action::Admin,
        bucket: Some(name.as_str()),
        object: None,
        operation: "CREATE_BUCKET",
    }
    .done(&state, &caller, &reason)
    .await?;
    let shown = view(&state, &caller, record.clone())
        .await?
        .ok_or(ApiError::Internal)?;
    Ok((StatusCode::CREATED, Json(shown)))
}

/// Audits a refused bucket creation and answers 403.
async fn refuse_create(
    state: &AppState,
    caller: &Caller,
    name: &str,
    reason: &str,
) -> Result<(StatusCode, Json<BucketView>), ApiError> {
    super::Change {
        action: Action::Admin,
        bucket: Some(name),
        object: None,
        operation: "CREATE_BUCKET",
    }
    .refused(state, caller, reason)
    .await?;
    Err(ApiError::Forbidden)
}

/// Delete a bucket (needs `admin` on it): `retain` classes keep the objects, `delete` classes
/// delete every object under the bucket's prefix first.
#[utoipa::path(delete, path = "/v1/buckets/{bucket}", tag = "buckets", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 204), (status = 403, body = super::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> Result<StatusCode, ApiError> {
    let context = state.access_context(&bucket, &caller).await?;
    let record = context.bucket.clone().ok_or(ApiError::NotFound)?;
    let (class, level) = state.class_of(&record).ok_or(ApiError::Internal)?;
    match caller.decide(
        &state,
        &record,
        class,
        level,
        &context,
        Action::Admin,
        Scope::Prefix(""),
    ) {
        Decision::Allow(_) => {}
        Decision::NotFound(_) => return Err(ApiError::NotFound),
        Decision::Deny(reason) => {
            super::Change {
                action: Action::Admin,
                bucket: Some(&bucket),
                object: None,
                operation: "DELETE_BUCKET",
            }
            .refused(&state, &caller, &reason)
            .await?;
            return Err(ApiError::Forbidden);
        }
    }
    let mut reason = format!(
        "bucket {bucket} deleted; release policy {:?}",
        class.release
    );
    if class.release == Release::Delete {
        let Some(gcs) = &state.gcs else {
            tracing::error!(
                bucket,
                "a delete-policy bucket cannot be deleted: no storage control plane configured"
            );
            return Err(ApiError::Unavailable);
        };
        // On failure the bucket stays, to be deleted again.
        let removed = gcs
            .delete_prefix(&record.backend_bucket, &record.backend_prefix)
            .await
            .map_err(|e| ApiError::from_storage(&e, &bucket))?;
        reason.push_str(&format!(", {removed} objects deleted"));
    }
    if state.store.delete_bucket(&bucket).await? {
        super::Change {
            action: Action::Admin,
            bucket: Some(&bucket),
            object: None,
            operation: "DELETE_BUCKET",
        }
        .done(&state, &caller, &reason)
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
