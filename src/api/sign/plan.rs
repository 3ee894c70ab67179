//! From a checked sign request to the request to sign: authorized through the one path,
//! within the limits of the bucket's class, mapped to the backend object.

use super::request::{ApiMethod, Checked};
use crate::api::access::{Allowed, AuditTrail, BucketAccess, Granted};
use crate::api::{ApiError, AppState};
use crate::policy::{Scope, check_ttl, check_upload};
use crate::signing::{BucketName, Expiry, ObjectName, UrlRequest};
use crate::store::BucketRecord;

/// An authorized request, ready to sign, with its audit row waiting for the expiry.
pub(super) struct Planned {
    pub request: UrlRequest,
    pub method: ApiMethod,
    pub allowed: Allowed,
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
    let mut url = UrlRequest::new(method.signing(), backend_bucket, Some(backend_name), expiry);
    if method.uploads() {
        let max_size = match check_upload(class, request.content_type.as_deref(), request.max_size)
        {
            Ok(max_size) => max_size,
            Err(limit) => return Err(allowed.exceeds(trail, limit)),
        };
        if let Some(ct) = &request.content_type {
            url = url.header("content-type", ct.as_str());
        }
        if let Some(md5) = &request.content_md5 {
            url = url.header("content-md5", md5.as_str());
        }
        if let Some(max) = max_size {
            url = url.header("x-goog-content-length-range", format!("0,{max}"));
        }
        for (key, value) in request.metadata.iter().flatten() {
            url = url.header(format!("x-goog-meta-{key}"), value.as_str());
        }
        if method == ApiMethod::Resumable {
            url = url.header("x-goog-resumable", "start");
        }
    }
    if let Some(ct) = &request.response_content_type {
        url = url.query("response-content-type", ct.as_str());
    }
    if let Some(cd) = &request.response_content_disposition {
        url = url.query("response-content-disposition", cd.as_str());
    }
    Ok(Planned {
        request: url,
        method,
        allowed,
    })
}
