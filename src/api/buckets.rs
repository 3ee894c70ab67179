//! `GET /v1/buckets`: the buckets a caller can see, with what they may do on each.

use super::{ApiError, AppState, Caller};
use crate::policy::{Action, Decision};
use axum::Json;
use axum::extract::State;
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

/// A right on the objects under one prefix.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrefixGrant {
    pub prefix: String,
    pub role: String,
}

/// The visible buckets.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BucketList {
    pub buckets: Vec<BucketView>,
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
        let Some((class, level)) = state.class_of(&record) else {
            continue;
        };
        let context = state.access_context(&record.name, &caller).await?;
        let decide_on = |action| caller.decide(&state, &record, class, level, &context, action, "");
        if matches!(decide_on(Action::Read), Decision::NotFound(_)) && !caller.admin {
            continue; // above the caller's clearance
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
                role: g.role.clone(),
            })
            .collect();
        let read_only = record.read_only || class.read_only;
        buckets.push(BucketView {
            name: record.name,
            class: record.class,
            owner: record.owner,
            project: record.project,
            classification: record.classification,
            read_only,
            actions,
            prefix_grants,
        });
    }
    Ok(Json(BucketList { buckets }))
}
