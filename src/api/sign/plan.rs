//! From a checked sign request to the request to sign: authorized through the one path,
//! within the limits of the bucket's class, mapped to the backend object.

use super::request::{ApiMethod, Checked};
use crate::api::access::{Allowed, AuditTrail, BucketAccess, Granted};
use crate::api::{ApiError, AppState};
use crate::policy::BackendKind;
use crate::policy::{Scope, check_ttl, check_upload};
use crate::signer::{BackendSigner, ObjectUrl, Upload};
use crate::signing::{BucketName, Expiry, ObjectName};
use crate::store::BucketRecord;
use std::sync::Arc;

/// An authorized request, ready to sign with its backend's signer, with its audit row waiting
/// for the expiry.
pub(super) struct Planned {
    pub url: ObjectUrl,
    pub signer: Arc<BackendSigner>,
    pub allowed: Allowed,
    pub shape: Shape,
}

/// What the answer says beside the URL.
pub(super) struct Shape {
    pub method: ApiMethod,
    /// `gcs-v4`, `s3-sigv4` or `azure-sas`.
    pub protocol: &'static str,
    /// The class's limits its backend cannot enforce.
    pub advisory: Vec<&'static str>,
}

/// The backend object for `object` in `bucket`.
pub(super) fn backend_object(
    bucket: &BucketRecord,
    object: &str,
) -> Result<(BucketName, ObjectName), ApiError> {
    let backend = BucketName::parse(&bucket.backend_bucket).map_err(|e| {
        tracing::error!(bucket = bucket.name, error = %e, "stored backend bucket is invalid");
        ApiError::Internal
    })?;
    let name = format!("{}{object}", bucket.backend_prefix);
    let name = ObjectName::parse(&name).map_err(|_| {
        ApiError::bad_request(
            "invalid_object_name",
            "object name too long for this bucket (1024 bytes with its prefix)",
        )
    })?;
    Ok((backend, name))
}

/// Authorizes `checked` on `access`'s bucket and builds the request to sign; refusals are
/// recorded in `trail`.
pub(super) fn plan(
    state: &AppState,
    access: &BucketAccess<'_>,
    trail: &mut AuditTrail<'_>,
    checked: Checked,
) -> Result<Planned, ApiError> {
    let Checked {
        object,
        method,
        ttl,
        request,
        ..
    } = checked;
    let Granted {
        record,
        class,
        allowed,
    } = access.authorize(
        trail,
        method.action(),
        Scope::Object(object.as_str()),
        method.label(),
    )?;
    if let Err(limit) = check_ttl(ttl, state.ttl_limit(class)) {
        return Err(allowed.exceeds(trail, limit));
    }
    let built = Expiry::from_secs(ttl)
        .map_err(ApiError::from)
        .and_then(|expiry| Ok((expiry, backend_object(record, object.as_str())?)));
    let (expiry, (backend_bucket, backend_name)) = match built {
        Ok(built) => built,
        Err(error) => {
            let reason = format!("not signable: {}", error.detail());
            return Err(allowed.refuse(trail, reason, error));
        }
    };
    let signer = match state.signer(class) {
        Ok(signer) => signer.clone(),
        Err(error) => return Err(allowed.refuse(trail, "no signer for its backend".into(), error)),
    };
    let mut url = ObjectUrl::new(method.object_method(), backend_bucket, backend_name, expiry);
    if method.uploads() {
        let kind = class.backend_kind;
        let max_size = match check_upload(class, request.content_type.as_deref(), request.max_size)
            .and_then(|max| check_size(request.size, max).map(|()| max))
        {
            Ok(max_size) => max_size,
            Err(limit) => return Err(allowed.exceeds(trail, limit)),
        };
        let unsupported = match kind {
            BackendKind::S3 | BackendKind::Azure if method == ApiMethod::Resumable => Some(
                "RESUMABLE is a GCS upload; this bucket's storage takes large uploads as multipart (S3) or blocks (Azure) with a PUT URL",
            ),
            BackendKind::S3 if request.size.is_none() && max_size.is_some() => Some(
                "this bucket's storage (S3) binds an upload's size only as its exact Content-Length: give size, the upload's size in bytes",
            ),
            BackendKind::Azure
                if request
                    .metadata
                    .iter()
                    .flatten()
                    .any(|(key, _)| !azure_metadata_name(key)) =>
            {
                Some(
                    "this bucket's storage (Azure) takes metadata keys that are identifiers: a-z, 0-9 and '_', not starting with a digit",
                )
            }
            _ => None,
        };
        if let Some(why) = unsupported {
            let error = ApiError::bad_request("unsupported_by_backend", why);
            return Err(allowed.refuse(trail, format!("not signable: {why}"), error));
        }
        url.upload = Upload {
            content_type: request.content_type.clone(),
            content_md5: request.content_md5.clone(),
            size: request.size,
            // Advisory on a backend that cannot bind it: checked above, never signed.
            max_size: max_size.filter(|_| kind.binds_upload_size()),
            metadata: request
                .metadata
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
    }
    url.response_content_type = request.response_content_type.clone();
    url.response_content_disposition = request.response_content_disposition.clone();
    // Reads only: the signer reuses nothing else.
    url.reuse_window = state.reuse_window(class, expiry.as_secs());
    let shape = Shape {
        method,
        protocol: signer.protocol(),
        advisory: class.advisory.clone(),
    };
    Ok(Planned {
        url,
        signer,
        allowed,
        shape,
    })
}

/// Refuses a declared size above the size limit.
fn check_size(size: Option<u64>, max: Option<u64>) -> Result<(), crate::policy::LimitExceeded> {
    match (size, max) {
        (Some(asked), Some(limit)) if asked > limit => {
            Err(crate::policy::LimitExceeded::Size { asked, limit })
        }
        _ => Ok(()),
    }
}

/// Azure metadata names are C# identifiers.
fn azure_metadata_name(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !key.starts_with(|c: char| c.is_ascii_digit())
}
