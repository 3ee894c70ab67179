//! Request extractors: the JSON body and the query string (rejections as problem+json) and the
//! authenticated caller.

use super::{ApiError, AppState};
use crate::identity::{Principal, bearer_token};
use crate::store::BucketRecord;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::Json`, with every rejection answered as problem+json.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(e)) => {
                Err(ApiError::UnsupportedMediaType(e.body_text()))
            }
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge(
                    "the request body is too large".into(),
                ))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::bad_request("invalid_request", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_json", e.body_text())),
        }
    }
}

/// `axum::extract::Query`, with every rejection (a number out of range, bad percent-encoding)
/// answered as problem+json `invalid_request`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(e) => Err(ApiError::bad_request("invalid_request", e.body_text())),
        }
    }
}

/// A caller whose token verified, with their personal bucket (made on their first request).
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// `None` when it could not be made just now: only the endpoints that need it fail then.
    pub personal_bucket: Option<BucketRecord>,
    /// What grants may name the caller as: user, groups, roles and `authenticated`.
    pub principals: Vec<crate::policy::GrantPrincipal>,
    /// The same, as stored grants spell them (what the store looks grants up by).
    pub grant_principals: Vec<String>,
    /// The subject and `group:<path>` per group: how project memberships name the caller.
    pub member_keys: Vec<String>,
    pub admin: bool,
    /// Index of the highest classification level among the caller's roles.
    pub clearance: usize,
    pub request_id: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request_id = super::request_id(&parts.headers);
        let Some(token) = bearer_token(&parts.headers) else {
            tracing::info!(request_id, "401: no bearer token");
            return Err(ApiError::Unauthorized);
        };
        let principal = match state.verifier.verify(token).await {
            Ok(principal) => principal,
            Err(reason) => {
                tracing::info!(request_id, %reason, "401: token refused");
                return Err(ApiError::Unauthorized);
            }
        };
        if let Some(limiter) = &state.rate_limit {
            // Keyed on the verified subject: nobody can spend another caller's quota.
            if let Err(not_until) = limiter.check_key(&principal.subject) {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                tracing::info!(request_id, subject = %principal.subject, "429: rate limited");
                state.metrics.decision("rate_limited");
                return Err(ApiError::RateLimited(wait.as_secs().max(1)));
            }
        }
        // Made on the first request; a failure to name it fails only what needs the bucket. A
        // database that does not answer fails the request now (503), as every other step would
        // after waiting again.
        let personal_bucket = match state.personal_bucket(&principal).await {
            Ok(bucket) => Some(bucket),
            Err(ApiError::Unavailable) => return Err(ApiError::Unavailable),
            Err(error) => {
                tracing::error!(request_id, subject = %principal.subject, error = error.detail(), "the personal bucket could not be made");
                None
            }
        };
        let admin = principal.roles.iter().any(|r| *r == state.admin_role);
        let levels = &state.policies.classes.levels;
        let clearance = principal
            .roles
            .iter()
            .chain(&principal.clearances)
            .filter_map(|r| levels.iter().position(|l| l == r))
            .max()
            .unwrap_or(0);
        let principals = principal.grant_principals();
        Ok(Self {
            grant_principals: principals.iter().map(ToString::to_string).collect(),
            principals,
            member_keys: principal.member_keys(),
            principal,
            personal_bucket,
            admin,
            clearance,
            request_id,
        })
    }
}

impl Caller {
    /// The caller as the policy functions see them, with `memberships`.
    pub(super) fn as_policy_caller<'a>(
        &'a self,
        memberships: &'a [crate::policy::Membership],
    ) -> crate::policy::Caller<'a> {
        crate::policy::Caller {
            subject: &self.principal.subject,
            principals: &self.principals,
            memberships,
            clearance: self.clearance,
            admin: self.admin,
        }
    }
}
