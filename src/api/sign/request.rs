//! What a sign request says, and the checks it passes before anything is decided: names parse,
//! the method is known, fields fit the method, values cannot smuggle headers.

use super::DEFAULT_TTL;
use crate::api::ApiError;
use crate::policy::{Action, LogicalBucketName, ObjectKey, check_text, control_character};
use crate::signer::ObjectMethod;
use crate::signing::Expiry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A request for one signed URL.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Logical bucket, e.g. `u-alice`.
    pub bucket: String,
    /// Object name within the bucket.
    pub object: String,
    /// `GET`, `HEAD`, `PUT`, `DELETE` or `RESUMABLE` (starts a resumable upload).
    pub method: String,
    /// Seconds; default 900, at most the bucket class's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// Uploads: the content type the client must send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Uploads: the base64 MD5 the client must send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    /// Uploads: the largest size accepted, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Uploads: the exact size of the upload, in bytes, bound where the backend can bind it
    /// (GCS's size range, S3's Content-Length). Required on S3 when a size limit applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Uploads: metadata the client must send (`x-goog-meta-*`, `x-amz-meta-*`, `x-ms-meta-*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Downloads: override the response's Content-Type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_content_type: Option<String>,
    /// Downloads: override the response's Content-Disposition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_content_disposition: Option<String>,
}

/// A signed URL and how to use it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignResponse {
    pub url: String,
    /// As requested: GET, HEAD, PUT, DELETE or RESUMABLE (sent as POST).
    pub method: String,
    /// Headers the client must send with exactly these values.
    pub headers: BTreeMap<String, String>,
    /// RFC 3339.
    pub expires_at: String,
    /// What the client speaks to storage: `gcs-v4`, `s3-sigv4` or `azure-sas` (which upload
    /// flows exist: GCS resumable, S3 multipart, Azure blocks).
    pub protocol: String,
    /// Limits of the bucket's class its storage cannot enforce on this URL (`max_object_size`,
    /// `content_types`): advice the client is asked to follow, not a guarantee.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisory_limits: Vec<String>,
}

/// The methods of the API and what they mean for signing and deciding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ApiMethod {
    Get,
    Head,
    Put,
    Delete,
    Resumable,
}

impl ApiMethod {
    pub(super) fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "GET" => Ok(Self::Get),
            "HEAD" => Ok(Self::Head),
            "PUT" => Ok(Self::Put),
            "DELETE" => Ok(Self::Delete),
            "RESUMABLE" => Ok(Self::Resumable),
            other => Err(ApiError::bad_request(
                "invalid_method",
                format!("method {other:?}: expected GET, HEAD, PUT, DELETE or RESUMABLE"),
            )),
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Resumable => "RESUMABLE",
        }
    }

    pub(super) fn object_method(self) -> ObjectMethod {
        match self {
            Self::Get => ObjectMethod::Get,
            Self::Head => ObjectMethod::Head,
            Self::Put => ObjectMethod::Put,
            Self::Delete => ObjectMethod::Delete,
            Self::Resumable => ObjectMethod::Resumable,
        }
    }

    pub(super) fn action(self) -> Action {
        match self {
            Self::Get | Self::Head => Action::Read,
            Self::Put | Self::Resumable => Action::Write,
            Self::Delete => Action::Delete,
        }
    }

    pub(super) fn uploads(self) -> bool {
        matches!(self, Self::Put | Self::Resumable)
    }
}

/// A sign request whose fields parse; not yet authorized.
pub(in crate::api) struct Checked {
    pub(super) bucket: LogicalBucketName,
    pub(super) object: ObjectKey,
    pub(super) method: ApiMethod,
    pub(super) ttl: i64,
    pub(super) request: SignRequest,
}

pub(in crate::api) fn check(
    request: SignRequest,
    default_ttl: Option<i64>,
) -> Result<Checked, ApiError> {
    let bucket = LogicalBucketName::parse(&request.bucket)
        .map_err(|e| ApiError::bad_request("invalid_bucket_name", e))?;
    let object = ObjectKey::parse(&request.object)
        .map_err(|e| ApiError::bad_request("invalid_object_name", e))?;
    let method = ApiMethod::parse(&request.method)?;
    let ttl = request.expires_in.or(default_ttl).unwrap_or(DEFAULT_TTL);
    Expiry::from_secs(ttl)?;
    let upload_only = [
        ("content_type", request.content_type.is_some()),
        ("content_md5", request.content_md5.is_some()),
        ("max_size", request.max_size.is_some()),
        ("size", request.size.is_some()),
        ("metadata", request.metadata.is_some()),
    ];
    if let Some((field, _)) = upload_only
        .iter()
        .find(|(_, set)| *set)
        .filter(|_| !method.uploads())
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("{field} applies to PUT and RESUMABLE only"),
        ));
    }
    if let Some(md5) = &request.content_md5 {
        // Content-MD5 is the base64 of the 16-byte digest (RFC 1864); storage refuses anything
        // else only after the bytes were sent.
        use base64::Engine;
        let digest = base64::engine::general_purpose::STANDARD.decode(md5);
        if !digest.is_ok_and(|d| d.len() == 16) {
            return Err(ApiError::bad_request(
                "invalid_content_md5",
                "content_md5: the base64 of the object's 16-byte MD5 digest, e.g. \"1B2M2Y8AsgTpgAmY7PhCfg==\"",
            ));
        }
    }
    // Values that become headers or stored metadata: no control characters (a CR LF would
    // smuggle a header). Named only when refused, so the usual request allocates nothing here.
    let fields = [
        ("content_type", &request.content_type),
        ("response_content_type", &request.response_content_type),
        (
            "response_content_disposition",
            &request.response_content_disposition,
        ),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            check_text(field, value).map_err(|e| ApiError::bad_request("invalid_request", e))?;
        }
    }
    check_metadata(request.metadata.as_ref())?;
    let download_only = [
        request.response_content_type.is_some(),
        request.response_content_disposition.is_some(),
    ];
    if download_only.iter().any(|set| *set) && !matches!(method, ApiMethod::Get | ApiMethod::Head) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "response_* overrides apply to GET and HEAD only",
        ));
    }
    Ok(Checked {
        bucket,
        object,
        method,
        ttl,
        request,
    })
}

/// Metadata keys and values: keys of a-z, 0-9, '-' and '_'; values without control characters
/// (a CR LF would smuggle a header).
pub(super) fn check_metadata(metadata: Option<&BTreeMap<String, String>>) -> Result<(), ApiError> {
    for (key, value) in metadata.into_iter().flatten() {
        if control_character(value).is_some() {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("metadata {key:?}: control characters are not allowed"),
            ));
        }
    }
    for key in metadata.into_iter().flat_map(BTreeMap::keys) {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(ApiError::bad_request(
                "invalid_metadata",
                format!("metadata key {key:?}: use a-z, 0-9, '-' and '_'"),
            ));
        }
    }
    Ok(())
}
