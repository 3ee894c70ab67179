//! One error type for the API, answered as `application/problem+json` (RFC 9457) with a stable
//! `code`. Bodies of 5xx answers say nothing internal; the cause goes to the log.

use crate::signing::SigningError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// Missing or bad token; the reason is logged, not answered.
    Unauthorized,
    /// The bucket does not exist or the caller may not know it does.
    NotFound,
    /// The caller sees the bucket but lacks the right.
    Forbidden,
    /// No such route.
    NoRoute,
    MethodNotAllowed,
    /// Bad input, with a stable code.
    BadRequest {
        code: &'static str,
        detail: String,
    },
    /// A named thing (a grant, a member) that does not exist, once the caller may know of it.
    Missing {
        code: &'static str,
        detail: String,
    },
    /// The request conflicts with the current state (a name taken, the last owner).
    Conflict {
        code: &'static str,
        detail: String,
    },
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// The caller sent more requests than its rate limit allows; retry after this many seconds.
    RateLimited(u64),
    /// Storage says the backend bucket behind a logical bucket does not exist, or refuses the
    /// broker access to it: a configuration to fix, not a reason to retry.
    StorageMisconfigured {
        code: &'static str,
        detail: String,
    },
    /// The database (or another dependency) is down: retry.
    Unavailable,
    /// A bug; the cause was logged.
    Internal,
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Missing { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::StorageMisconfigured { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::NoRoute => "no_route",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadRequest { code, .. }
            | Self::Missing { code, .. }
            | Self::Conflict { code, .. }
            | Self::StorageMisconfigured { code, .. } => code,
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The human-readable detail.
    pub fn detail(&self) -> String {
        match self {
            Self::Unauthorized => "a valid bearer token is required".into(),
            Self::NotFound => "no such bucket".into(),
            Self::Forbidden => "not allowed".into(),
            Self::NoRoute => "no such route".into(),
            Self::MethodNotAllowed => "method not allowed on this route".into(),
            Self::BadRequest { detail, .. }
            | Self::Missing { detail, .. }
            | Self::Conflict { detail, .. }
            | Self::StorageMisconfigured { detail, .. }
            | Self::PayloadTooLarge(detail)
            | Self::UnsupportedMediaType(detail) => detail.clone(),
            Self::RateLimited(seconds) => {
                format!("too many requests from this caller; retry in {seconds} s")
            }
            Self::Unavailable => "the service is temporarily unavailable; retry shortly".into(),
            Self::Internal => "internal error".into(),
        }
    }

    /// The body of a problem answer, also used for per-item errors in batches.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            r#type: format!("urn:storage-broker:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
        }
    }
}

/// Why one item of a batch or manifest got no URL, or why a stream stopped: a problem's `code`
/// and `detail`, carried inside an NDJSON line or a batch result.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ItemError {
    pub code: String,
    pub message: String,
}

impl From<&ApiError> for ItemError {
    fn from(error: &ApiError) -> Self {
        Self {
            code: error.code().to_owned(),
            message: error.detail(),
        }
    }
}

/// The last line of an NDJSON stream that had to stop.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StreamError {
    pub error: ItemError,
}

/// An RFC 9457 problem.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    pub r#type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
}

/// The problem `code` of an error answer, left in its extensions for the metrics.
#[derive(Clone, Copy, Debug)]
pub struct ProblemCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        response.extensions_mut().insert(ProblemCode(self.code()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            Self::RateLimited(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::Unavailable
            }
            StoreError::Overlap(_) => Self::Conflict {
                code: "prefix_in_use",
                detail: "another bucket already maps to that storage location".into(),
            },
            StoreError::BadValue(cause) => {
                tracing::warn!(%cause, "a value the database refused passed validation");
                Self::bad_request("invalid_request", "a value in the request cannot be stored")
            }
            StoreError::MissingReference(cause)
            | StoreError::MissingPartition(cause)
            | StoreError::Other(cause) => {
                tracing::error!(%cause, "database error");
                Self::Internal
            }
        }
    }
}

impl ApiError {
    /// A failed control-plane call about logical bucket `bucket`: storage's "no such bucket"
    /// and "access denied" are configurations to fix (502 with their own codes); anything else
    /// is a retry.
    pub fn from_storage(err: &crate::backends::StorageError, bucket: &str) -> Self {
        if err.is_not_found() {
            tracing::error!(bucket, error = %err, "the storage bucket behind this bucket does not exist");
            Self::StorageMisconfigured {
                code: "storage_bucket_missing",
                detail: format!(
                    "storage has no bucket behind {bucket:?} (was it deleted?); a storage admin must fix or remove this bucket's registration"
                ),
            }
        } else if err.is_denied() {
            tracing::error!(bucket, error = %err, "storage refuses the broker access");
            Self::StorageMisconfigured {
                code: "storage_access_denied",
                detail: format!(
                    "storage refuses the broker access to the bucket behind {bucket:?}; a storage admin must grant it"
                ),
            }
        } else {
            tracing::error!(bucket, error = %err, "storage call failed");
            Self::Unavailable
        }
    }
}

impl From<SigningError> for ApiError {
    fn from(err: SigningError) -> Self {
        match err {
            SigningError::Backend(cause) => {
                tracing::error!(%cause, "signing failed");
                Self::Internal
            }
            // Logged where it happened (IAM signBlob after its retries).
            SigningError::Unavailable(_) => Self::Unavailable,
            other => Self::bad_request(other.code(), other.to_string()),
        }
    }
}
