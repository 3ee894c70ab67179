//! `POST /v1/sign/multipart`: S3 multipart uploads, for objects too large for one PUT. Four
//! steps, each authorized as `write` on the object and audited: `create`
//! (CreateMultipartUpload), `parts` (UploadPart URLs for a range of parts of an `upload_id`),
//! `complete` (CompleteMultipartUpload) and `abort` (AbortMultipartUpload). Every part URL binds
//! its part's exact Content-Length, computed from the declared `size` and `part_size`, so the
//! parts a client can upload never add up to more than it declared — the class's size limit
//! holds for multipart uploads too. GCS (resumable uploads) and Azure (blocks on a PUT URL)
//! answer `unsupported_by_backend`.

use super::DEFAULT_TTL;
use super::plan::backend_object;
use crate::api::access::{Allowed, AuditTrail, BucketAccess, Granted};
use crate::api::{ApiError, ApiJson, AppState, Caller};
use crate::policy::{
    Action, BackendKind, LimitExceeded, LogicalBucketName, ObjectKey, Scope, check_text, check_ttl,
    check_upload,
};
use crate::signer::{BackendSigner, ObjectMethod, ObjectUrl, Upload};
use crate::signing::s3::multipart;
use crate::signing::{Expiry, rfc3339_seconds};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest object: 5 TiB.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// One step of a multipart upload.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MultipartRequest {
    pub bucket: String,
    pub object: String,
    /// `create`, `parts`, `complete` or `abort`.
    pub action: String,
    /// What `create` answered (S3's `UploadId`); required by every other step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// `create`: the object's content type, bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `create`: metadata, bound as `x-amz-meta-*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// `create` and `parts`: the whole object's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `parts`: bytes per part, 5 MiB to 5 GiB (the last part holds the rest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// `parts`: the first part to sign (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_part: Option<u32>,
    /// `parts`: how many parts to sign from `first_part` (default: all that remain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// One signed request of a multipart step.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MultipartUrl {
    /// `parts` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<u32>,
    pub url: String,
    /// POST (create, complete), PUT (a part) or DELETE (abort).
    pub method: String,
    /// Headers the client must send with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// The signed requests of one step.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MultipartResponse {
    /// Always `s3-sigv4`.
    pub protocol: String,
    /// `create`, where the class limits object sizes: the part size `parts` must use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// One request, or one per part.
    pub requests: Vec<MultipartUrl>,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Parts,
    Complete,
    Abort,
}

impl Step {
    fn parse(action: &str) -> Result<Self, ApiError> {
        match action {
            "create" => Ok(Self::Create),
            "parts" => Ok(Self::Parts),
            "complete" => Ok(Self::Complete),
            "abort" => Ok(Self::Abort),
            other => Err(ApiError::bad_request(
                "invalid_request",
                format!("action {other:?}: expected create, parts, complete or abort"),
            )),
        }
    }

    /// As audited.
    fn label(self) -> &'static str {
        match self {
            Self::Create => "MULTIPART_CREATE",
            Self::Parts => "MULTIPART_PARTS",
            Self::Complete => "MULTIPART_COMPLETE",
            Self::Abort => "MULTIPART_ABORT",
        }
    }
}

/// The part size of every multipart upload into a class whose objects are at most `limit`
/// bytes: the smallest whole MiB, at least 5 MiB, that reaches `limit` in 10,000 parts. Fixed
/// by the class, not chosen by the client: were it free, parts signed under different part
/// sizes (each declaration within the limit) could be mixed into one upload larger than the
/// limit. With it fixed, part N is never longer than `min(P, limit - (N-1)·P)`, so no mix of
/// signed parts adds up to more than `limit`.
pub fn bounded_part_size(limit: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    limit
        .div_ceil(MAX_PARTS)
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .max(MIN_PART_SIZE)
}

/// The parts to sign: numbers and sizes.
fn parts(request: &MultipartRequest) -> Result<Vec<(u32, u64)>, ApiError> {
    let bad = |detail: String| ApiError::bad_request("invalid_parts", detail);
    let (Some(size), Some(part_size)) = (request.size, request.part_size) else {
        return Err(bad(
            "parts: give size (the whole object) and part_size".into()
        ));
    };
    if size == 0 || size > MAX_OBJECT_SIZE {
        return Err(bad(format!("size: 1 to {MAX_OBJECT_SIZE} bytes")));
    }
    if !(1..=MAX_PART_SIZE).contains(&part_size) {
        return Err(bad(format!("part_size: at most {MAX_PART_SIZE} bytes")));
    }
    let total = size.div_ceil(part_size);
    if total > 1 && part_size < MIN_PART_SIZE {
        return Err(bad(format!(
            "part_size: at least {MIN_PART_SIZE} bytes (5 MiB) when there is more than one part"
        )));
    }
    if total > MAX_PARTS {
        return Err(bad(format!(
            "{total} parts: at most {MAX_PARTS}; use a larger part_size"
        )));
    }
    let first = u64::from(request.first_part.unwrap_or(1));
    if first == 0 || first > total {
        return Err(bad(format!("first_part: 1 to {total}")));
    }
    let count = request
        .part_count
        .map_or(total - first + 1, u64::from)
        .min(total - first + 1);
    if count == 0 {
        return Err(bad("part_count: at least 1".into()));
    }
    Ok((first..first + count)
        .map(|n| {
            let start = (n - 1) * part_size;
            // Numbers fit: n ≤ 10,000.
            (n as u32, part_size.min(size - start))
        })
        .collect())
}

/// An upload id as it goes into a query: what S3 answered, never a way to smuggle a parameter.
fn upload_id(request: &MultipartRequest) -> Result<&str, ApiError> {
    let id = request.upload_id.as_deref().ok_or_else(|| {
        ApiError::bad_request("invalid_request", "upload_id: what create answered")
    })?;
    if id.is_empty() || id.len() > 1024 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_upload_id",
            "upload_id: 1-1024 printable ASCII characters",
        ));
    }
    Ok(id)
}

/// What a step asks for, checked.
struct Asked<'a> {
    request: &'a MultipartRequest,
    step: Step,
    object: &'a ObjectKey,
    ttl: i64,
    expiry: Expiry,
    upload_id: Option<&'a str>,
    parts: &'a [(u32, u64)],
}

/// The signed requests a step needs, each numbered if it is a part.
type StepUrls = Vec<(Option<u32>, ObjectUrl)>;

/// Authorizes `asked` as `write` on its object and builds its requests; refusals are recorded
/// in `trail`.
fn plan(
    state: &AppState,
    access: &BucketAccess<'_>,
    trail: &mut AuditTrail<'_>,
    asked: Asked<'_>,
) -> Result<(Arc<BackendSigner>, StepUrls, Allowed, Option<u64>), ApiError> {
    let Asked {
        request,
        step,
        object,
        ttl,
        expiry,
        upload_id,
        parts,
    } = asked;
    let Granted {
        record,
        class,
        allowed,
    } = access.authorize(
        trail,
        Action::Write,
        Scope::Object(object.as_str()),
        step.label(),
    )?;
    if class.backend_kind != BackendKind::S3 {
        let why = match class.backend_kind {
            BackendKind::Gcs => {
                "multipart uploads are S3's; this bucket is on GCS: sign a RESUMABLE upload"
            }
            _ => {
                "multipart uploads are S3's; this bucket is on Azure: upload blocks with a PUT URL"
            }
        };
        let error = ApiError::bad_request("unsupported_by_backend", why);
        return Err(allowed.refuse(trail, why.into(), error));
    }
    if let Err(limit) = check_ttl(ttl, state.ttl_limit(class)) {
        return Err(allowed.exceeds(trail, limit));
    }
    if step == Step::Create {
        if let Err(limit) = check_upload(class, request.content_type.as_deref(), None) {
            return Err(allowed.exceeds(trail, limit));
        }
        if class.max_object_size.is_some() && request.size.is_none() {
            let why = "this bucket limits object sizes: give size, the whole object's size";
            let error = ApiError::bad_request("invalid_parts", why);
            return Err(allowed.refuse(trail, why.into(), error));
        }
    }
    if let (Some(asked), Some(limit)) = (request.size, class.max_object_size)
        && asked > limit
    {
        return Err(allowed.exceeds(trail, LimitExceeded::Size { asked, limit }));
    }
    if let (Step::Parts, Some(limit)) = (step, class.max_object_size) {
        let fixed = bounded_part_size(limit);
        if request.part_size != Some(fixed) {
            let why = format!(
                "this bucket limits objects to {limit} bytes: its multipart parts are {fixed} bytes each (part_size {fixed}; the last holds the rest)"
            );
            let error = ApiError::bad_request("invalid_parts", why.clone());
            return Err(allowed.refuse(trail, why, error));
        }
    }
    let signer = match state.signer(class) {
        Ok(signer) => signer.clone(),
        Err(error) => return Err(allowed.refuse(trail, "no signer".into(), error)),
    };
    let (backend_bucket, backend_name) = match backend_object(record, object.as_str()) {
        Ok(names) => names,
        Err(error) => {
            let reason = format!("not signable: {}", error.detail());
            return Err(allowed.refuse(trail, reason, error));
        }
    };
    let url = |method: ObjectMethod, query: Vec<(String, String)>| {
        let mut url = ObjectUrl::new(method, backend_bucket.clone(), backend_name.clone(), expiry);
        url.query = query;
        url
    };
    let urls = match (step, upload_id) {
        (Step::Create, _) => {
            let mut create = url(ObjectMethod::Post, multipart::create());
            create.upload = Upload {
                content_type: request.content_type.clone(),
                metadata: request
                    .metadata
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..Upload::default()
            };
            vec![(None, create)]
        }
        (Step::Parts, Some(id)) => parts
            .iter()
            .map(|&(number, size)| {
                let mut part = url(ObjectMethod::Put, multipart::part(id, number));
                part.upload.size = Some(size);
                (Some(number), part)
            })
            .collect(),
        (Step::Complete, Some(id)) => vec![(None, url(ObjectMethod::Post, multipart::upload(id)))],
        (Step::Abort, Some(id)) => vec![(None, url(ObjectMethod::Delete, multipart::upload(id)))],
        (_, None) => return Err(allowed.refuse(trail, "no upload id".into(), ApiError::Internal)),
    };
    let part_size = class.max_object_size.map(bounded_part_size);
    Ok((signer, urls, allowed, part_size))
}

/// Sign one step of an S3 multipart upload.
#[utoipa::path(post, path = "/v1/sign/multipart", tag = "signing", request_body = MultipartRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = MultipartResponse),
        (status = 400, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn multipart(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<MultipartRequest>,
) -> Result<Json<MultipartResponse>, ApiError> {
    let bucket = LogicalBucketName::parse(&request.bucket)
        .map_err(|e| ApiError::bad_request("invalid_bucket_name", e))?;
    let object = ObjectKey::parse(&request.object)
        .map_err(|e| ApiError::bad_request("invalid_object_name", e))?;
    let step = Step::parse(&request.action)?;
    let ttl = request.expires_in.unwrap_or(DEFAULT_TTL);
    let expiry = Expiry::from_secs(ttl)?;
    let only = |field: &str, set: bool, steps: &[Step]| {
        if set && !steps.contains(&step) {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("{field} does not apply to action {:?}", request.action),
            ));
        }
        Ok(())
    };
    only(
        "content_type",
        request.content_type.is_some(),
        &[Step::Create],
    )?;
    only("metadata", request.metadata.is_some(), &[Step::Create])?;
    only("size", request.size.is_some(), &[Step::Create, Step::Parts])?;
    only("part_size", request.part_size.is_some(), &[Step::Parts])?;
    only("first_part", request.first_part.is_some(), &[Step::Parts])?;
    only("part_count", request.part_count.is_some(), &[Step::Parts])?;
    if let Some(ct) = &request.content_type {
        check_text("content_type", ct).map_err(|e| ApiError::bad_request("invalid_request", e))?;
    }
    super::request::check_metadata(request.metadata.as_ref())?;
    let upload_id = match step {
        Step::Create => None,
        _ => Some(upload_id(&request)?),
    };
    let parts = match step {
        Step::Parts => parts(&request)?,
        _ => Vec::new(),
    };

    let access = BucketAccess::resolve(&state, &caller, bucket.as_str()).await?;
    let mut trail = AuditTrail::new(&state, &caller);
    let asked = Asked {
        request: &request,
        step,
        object: &object,
        ttl,
        expiry,
        upload_id,
        parts: &parts,
    };
    let (signer, urls, allowed, part_size) = match plan(&state, &access, &mut trail, asked) {
        Ok(planned) => planned,
        Err(error) => return Err(trail.fail(error).await),
    };
    let (numbers, requests): (Vec<Option<u32>>, Vec<_>) = urls
        .into_iter()
        .map(|(number, url)| (number, (signer.clone(), url)))
        .unzip();
    let signed = state
        .signers
        .sign_all(requests, OffsetDateTime::now_utc())
        .await;
    let mut answered = Vec::with_capacity(signed.len());
    let mut expires_at = None;
    for (number, signed) in numbers.into_iter().zip(signed) {
        match signed {
            Ok(signed) => {
                expires_at = Some(signed.expires_at);
                answered.push(MultipartUrl {
                    part_number: number,
                    url: signed.url,
                    method: signed.method.as_str().to_owned(),
                    headers: signed.headers.into_iter().collect(),
                });
            }
            // Nothing is answered: the allowance is not recorded, as none was used.
            Err(error) => return Err(trail.fail(error.into()).await),
        }
    }
    let Some(expires_at) = expires_at else {
        return Err(ApiError::Internal);
    };
    let note = match parts.first().zip(parts.last()) {
        Some(((first, _), (last, _))) => format!("parts {first}-{last}"),
        None => step.label().to_ascii_lowercase(),
    };
    allowed.noting(&note).signed(&mut trail, expires_at);
    trail.commit().await?;
    state.metrics.url_signed(signer.protocol(), step.label());
    Ok(Json(MultipartResponse {
        part_size: part_size.filter(|_| step == Step::Create),
        protocol: signer.protocol().to_owned(),
        requests: answered,
        expires_at: rfc3339_seconds(expires_at),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(
        size: u64,
        part_size: u64,
        first: Option<u32>,
        count: Option<u32>,
    ) -> MultipartRequest {
        MultipartRequest {
            bucket: "b".into(),
            object: "o".into(),
            action: "parts".into(),
            upload_id: Some("id".into()),
            content_type: None,
            metadata: None,
            size: Some(size),
            part_size: Some(part_size),
            first_part: first,
            part_count: count,
            expires_in: None,
        }
    }

    #[test]
    fn a_fixed_part_size_bounds_any_mix_of_signed_parts_by_the_limit() {
        const MIB: u64 = 1024 * 1024;
        for limit in [
            1,
            5 * MIB,
            5 * MIB + 1,
            12 * MIB + 1,
            53_687_091_200,
            MAX_OBJECT_SIZE,
        ] {
            let part = bounded_part_size(limit);
            assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part), "{limit}");
            assert!(limit.div_ceil(part) <= MAX_PARTS, "{limit}");
            // The longest part N any declaration within the limit can sign, summed over N.
            let mut worst = 0u64;
            for declared in [1, limit / 3, limit / 2 + 1, limit.saturating_sub(1), limit] {
                let declared = declared.clamp(1, limit);
                let signed = parts(&asking(declared, part, None, None)).expect("parts");
                for (n, len) in signed {
                    assert!(
                        len <= part.min(limit - (u64::from(n) - 1) * part),
                        "{limit} {declared} part {n}"
                    );
                }
            }
            for n in 1..=limit.div_ceil(part) {
                worst += part.min(limit - (n - 1) * part);
            }
            assert_eq!(worst, limit, "{limit}");
        }
    }

    #[test]
    fn parts_cover_the_declared_size_exactly() {
        const MIB: u64 = 1024 * 1024;
        let all = parts(&asking(12 * MIB + 1, 5 * MIB, None, None)).expect("parts");
        assert_eq!(all, vec![(1, 5 * MIB), (2, 5 * MIB), (3, 2 * MIB + 1)]);
        assert_eq!(all.iter().map(|(_, s)| s).sum::<u64>(), 12 * MIB + 1);
        let range = parts(&asking(12 * MIB + 1, 5 * MIB, Some(2), Some(5))).expect("parts");
        assert_eq!(range, vec![(2, 5 * MIB), (3, 2 * MIB + 1)]);
        assert_eq!(
            parts(&asking(10, 10, None, None)).expect("one"),
            vec![(1, 10)]
        );
        let refused = [
            ("small parts", asking(12 * MIB, MIB, None, None)),
            (
                "too many parts",
                asking(10_001 * 5 * MIB, 5 * MIB, None, None),
            ),
            (
                "a part past the end",
                asking(10 * MIB, 5 * MIB, Some(3), None),
            ),
            ("part zero", asking(10 * MIB, 5 * MIB, Some(0), None)),
            ("no parts", asking(10 * MIB, 5 * MIB, None, Some(0))),
            ("nothing", asking(0, 5 * MIB, None, None)),
            (
                "huge parts",
                asking(MAX_OBJECT_SIZE, MAX_PART_SIZE + 1, None, None),
            ),
        ];
        for (name, request) in refused {
            assert!(parts(&request).is_err(), "{name}");
        }
    }
}
