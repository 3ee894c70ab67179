//! S3 SigV4 presigned URLs (query-string authentication) for S3-compatible stores: AWS, MinIO,
//! Ceph, SeaweedFS, R2, Spaces. The canonical request is the one V4 algorithm GCS uses too
//! (`src/signing/v4.rs`); S3 adds its names, a credential scope of
//! `DATE/REGION/s3/aws4_request`, a `host` signed with its port unless it is the scheme's
//! default, and a path encoded once and never normalised. The broker's own calls to S3 (the
//! control plane: listings, batch deletes) are signed the same way in their `Authorization`
//! header instead ([`S3Signer::authorize`]).

use super::endpoint::{Endpoint, Scheme, UrlStyle};
use super::expiry::Stamp;
use super::expiry::rfc3339_seconds;
use super::post_policy::{check_fields, push_condition, push_json_string, push_starts_with};
use super::url::{object_path, unsigned_url};
use super::{
    BucketName, Method, ObjectName, PostKey, PostPolicy, PostPolicyRequest, PreparedUrl, SignedUrl,
    SigningError, UrlRequest, encoding, v4,
};
use aws_lc_rs::hmac;
use base64::Engine;
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;

/// The algorithm name SigV4 writes.
pub const AWS4_HMAC_SHA256: &str = "AWS4-HMAC-SHA256";

/// An access key, and the session token that comes with temporary credentials (STS).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Credentials {
    pub access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

impl S3Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Result<Self, SigningError> {
        let credentials = Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        };
        credentials.check()
    }

    /// Reads `{"access_key_id", "secret_access_key", "session_token"?}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SigningError> {
        let credentials: Self = serde_json::from_slice(bytes).map_err(|e| {
            SigningError::KeyFileInvalid(format!(
                "expected {{\"access_key_id\", \"secret_access_key\", \"session_token\"?}} ({e})"
            ))
        })?;
        credentials.check()
    }

    /// Reads a credentials file as [`from_json`](Self::from_json) does.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        Self::from_json(&super::credentials::read_key_file(path)?)
    }

    fn check(self) -> Result<Self, SigningError> {
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| (b'!'..=b'~').contains(&b));
        if !printable(&self.access_key_id) {
            return Err(SigningError::KeyFileInvalid(
                "access_key_id must be non-empty printable ASCII without spaces".to_owned(),
            ));
        }
        if !printable(&self.secret_access_key) {
            return Err(SigningError::KeyFileInvalid(
                "secret_access_key must be non-empty printable ASCII without spaces".to_owned(),
            ));
        }
        if self.session_token.as_deref().is_some_and(|t| !printable(t)) {
            return Err(SigningError::KeyFileInvalid(
                "session_token must be non-empty printable ASCII without spaces".to_owned(),
            ));
        }
        Ok(self)
    }

    /// The SigV4 signing key for one day, region and service.
    pub(crate) fn day_key(&self, date: &str, region: &str, service: &str) -> hmac::Key {
        let mut root = Vec::with_capacity(4 + self.secret_access_key.len());
        root.extend_from_slice(b"AWS4");
        root.extend_from_slice(self.secret_access_key.as_bytes());
        let mut key = hmac::Key::new(hmac::HMAC_SHA256, &root);
        for part in [date, region, service, "aws4_request"] {
            let tag = hmac::sign(&key, part.as_bytes());
            key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
        }
        key
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// A region name as it goes into a credential scope and an AWS host name: letters, digits and
/// `-` (`auto` for R2).
pub fn check_region(region: &str) -> Result<(), SigningError> {
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(SigningError::InvalidRegion(region.to_owned()));
    }
    Ok(())
}

/// Signs S3 URLs with one access key for one endpoint and region.
#[derive(Clone, Debug)]
pub struct S3Signer {
    credentials: S3Credentials,
    region: String,
    service: String,
    endpoint: Endpoint,
    style: UrlStyle,
    /// The signing key of the last day signed for; shared by clones, which sign for the same
    /// day with the same key.
    day_key: Arc<v4::DayKeys>,
}

impl S3Signer {
    /// A signer for `region` (`auto` for R2) at `endpoint`, addressing buckets in `style`
    /// (path or virtual-hosted; a bucket-bound hostname works as for GCS).
    pub fn new(
        credentials: S3Credentials,
        region: &str,
        endpoint: Endpoint,
        style: UrlStyle,
    ) -> Result<Self, SigningError> {
        check_region(region)?;
        Ok(Self {
            credentials,
            region: region.to_owned(),
            service: "s3".to_owned(),
            endpoint,
            style,
            day_key: Arc::default(),
        })
    }

    /// The same signer for another SigV4 service than `s3` (the generic test suite signs for
    /// `service`).
    pub fn for_service(mut self, service: &str) -> Self {
        service.clone_into(&mut self.service);
        self.day_key = Arc::default();
        self
    }

    /// The MAC of `message` with the signing key of `date` (`YYYYMMDD`).
    fn mac(&self, date: &str, message: &[u8]) -> hmac::Tag {
        self.day_key.mac(date, message, || {
            self.credentials.day_key(date, &self.region, &self.service)
        })
    }

    /// The access key's id.
    pub fn access_key_id(&self) -> &str {
        &self.credentials.access_key_id
    }

    /// Canonicalises `request` without signing it.
    pub fn prepare(
        &self,
        request: &UrlRequest,
        at: OffsetDateTime,
    ) -> Result<PreparedUrl, SigningError> {
        let location = self.endpoint.locate(&self.style, &request.bucket);
        let path = object_path(
            location.bucket_in_path,
            &request.bucket,
            request.object.as_ref(),
        );
        self.prepare_at(
            location.scheme,
            &location.authority,
            &path,
            request,
            None,
            at,
        )
    }

    /// Canonicalises a request for `path` (unencoded; encoded once here, never normalised) on
    /// the endpoint's host, with the payload's SHA-256 signed when given: the generic form the
    /// SigV4 test suite checks. `request`'s bucket and object are not used.
    pub fn prepare_path(
        &self,
        path: &str,
        request: &UrlRequest,
        payload_sha256: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<PreparedUrl, SigningError> {
        let location = self.endpoint.locate(&UrlStyle::Path, &request.bucket);
        let mut encoded = String::with_capacity(path.len() + 8);
        encoding::push_path(&mut encoded, path);
        self.prepare_at(
            location.scheme,
            &location.authority,
            &encoded,
            request,
            payload_sha256,
            at,
        )
    }

    fn prepare_at(
        &self,
        scheme: Scheme,
        authority: &str,
        path: &str,
        request: &UrlRequest,
        payload: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<PreparedUrl, SigningError> {
        let stamp = Stamp::new(at)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            stamp.date(),
            self.region,
            self.service
        );
        let credential = format!("{}/{scope}", self.credentials.access_key_id);
        let host = signed_host(scheme, authority);
        let canonical = v4::canonicalize(
            &v4::AWS4,
            &v4::Auth {
                algorithm: AWS4_HMAC_SHA256,
                credential: &credential,
                scope: &scope,
                security_token: self.credentials.session_token.as_deref(),
            },
            &stamp,
            &v4::Request {
                method: request.method.as_str(),
                host,
                path,
                query: &request.query,
                headers: &request.headers,
                expires: request.expiry.as_secs(),
                payload,
            },
        )?;
        Ok(PreparedUrl::new(
            request.method,
            unsigned_url(scheme, authority, path, &canonical.query),
            canonical,
            &stamp,
            request.expiry,
            "&X-Amz-Signature=",
        ))
    }

    /// The signature of a prepared URL's string-to-sign.
    pub fn signature(&self, prepared: &PreparedUrl) -> Vec<u8> {
        self.mac(prepared.date(), prepared.string_to_sign().as_bytes())
            .as_ref()
            .to_vec()
    }

    /// Signs one URL.
    pub fn sign(
        &self,
        request: &UrlRequest,
        at: OffsetDateTime,
    ) -> Result<SignedUrl, SigningError> {
        let prepared = self.prepare(request, at)?;
        let signature = self.signature(&prepared);
        Ok(prepared.finish(&signature))
    }
}

/// A call to S3's REST API that the broker makes itself (a listing, a batch delete), signed in
/// its `Authorization` header: nothing is handed to a client, so nothing needs to outlive the
/// call the way a presigned URL does.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: Method,
    pub bucket: BucketName,
    /// `None` for a call on the bucket itself.
    pub object: Option<ObjectName>,
    /// Query parameters, unencoded, in the order the URL carries them.
    pub query: Vec<(String, String)>,
    /// Headers to send and sign besides the ones the signer writes.
    pub headers: Vec<(String, String)>,
}

impl ApiRequest {
    /// A call with no query parameters or headers of its own.
    pub fn new(method: Method, bucket: BucketName, object: Option<ObjectName>) -> Self {
        Self {
            method,
            bucket,
            object,
            query: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Adds a header the signature binds.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An [`ApiRequest`] signed in its `Authorization` header: where to send it and what with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedRequest {
    pub method: Method,
    /// `SCHEME://AUTHORITY/PATH[?QUERY]`, encoded exactly as signed: send it as it is.
    pub url: String,
    /// Every header to send, `host` aside (the URL's authority is the signed host): lower-case
    /// names, values as signed. The request's own, `x-amz-content-sha256`, `x-amz-date`,
    /// `x-amz-security-token` with temporary credentials, then `authorization`.
    pub headers: Vec<(String, String)>,
    /// What was signed (for tests and debugging).
    pub canonical_request: String,
    pub string_to_sign: String,
}

/// Headers the header-signing form writes itself; a request may not set them.
const SIGNER_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

impl S3Signer {
    /// Signs a REST API call with `body` (empty for a GET) in its `Authorization` header, as S3
    /// wants it from a server-side client: the body's SHA-256 sent in `x-amz-content-sha256` and
    /// signed, the bucket and object in the signer's URL style, the object name encoded once and
    /// never normalised as in [`sign`](Self::sign).
    pub fn authorize(
        &self,
        request: &ApiRequest,
        body: &[u8],
        at: OffsetDateTime,
    ) -> Result<AuthorizedRequest, SigningError> {
        refuse_signer_headers(&request.headers, &SIGNER_HEADERS)?;
        let location = self.endpoint.locate(&self.style, &request.bucket);
        let path = object_path(
            location.bucket_in_path,
            &request.bucket,
            request.object.as_ref(),
        );
        let payload = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body));
        let mut headers = request.headers.clone();
        headers.push(("x-amz-content-sha256".to_owned(), payload.clone()));
        let target = Target {
            scheme: location.scheme,
            authority: &location.authority,
            path: &path,
        };
        self.authorize_at(&target, request, headers, &payload, at)
    }

    /// Signs a call to `path` (unencoded; encoded once here, never normalised) on the endpoint's
    /// host in its `Authorization` header, with `payload_sha256` in the canonical request and no
    /// `x-amz-content-sha256` unless `request` carries one: the generic form the SigV4 test
    /// suite checks. `request`'s bucket and object are not used.
    pub fn authorize_path(
        &self,
        path: &str,
        request: &ApiRequest,
        payload_sha256: &str,
        at: OffsetDateTime,
    ) -> Result<AuthorizedRequest, SigningError> {
        refuse_signer_headers(&request.headers, &SIGNER_HEADERS[..3])?;
        let location = self.endpoint.locate(&UrlStyle::Path, &request.bucket);
        let mut encoded = String::with_capacity(path.len() + 8);
        encoding::push_path(&mut encoded, path);
        let target = Target {
            scheme: location.scheme,
            authority: &location.authority,
            path: &encoded,
        };
        self.authorize_at(
            &target,
            request,
            request.headers.clone(),
            payload_sha256,
            at,
        )
    }

    fn authorize_at(
        &self,
        target: &Target<'_>,
        request: &ApiRequest,
        mut headers: Vec<(String, String)>,
        payload_sha256: &str,
        at: OffsetDateTime,
    ) -> Result<AuthorizedRequest, SigningError> {
        let Target {
            scheme,
            authority,
            path,
        } = *target;
        let stamp = Stamp::new(at)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            stamp.date(),
            self.region,
            self.service
        );
        let credential = format!("{}/{scope}", self.credentials.access_key_id);
        headers.push(("x-amz-date".to_owned(), stamp.datetime().to_owned()));
        if let Some(token) = &self.credentials.session_token {
            headers.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        let canonical = v4::canonicalize_for_header(
            &v4::AWS4,
            &v4::Auth {
                algorithm: AWS4_HMAC_SHA256,
                credential: &credential,
                scope: &scope,
                security_token: None,
            },
            &stamp,
            &v4::Request {
                method: request.method.as_str(),
                host: signed_host(scheme, authority),
                path,
                query: &request.query,
                headers: &headers,
                // Header signing has no lifetime of its own (S3 allows 15 minutes of skew).
                expires: 0,
                payload: Some(payload_sha256),
            },
        )?;
        let signature = hex::encode(self.mac(stamp.date(), canonical.string_to_sign.as_bytes()));
        let mut url =
            String::with_capacity(authority.len() + path.len() + canonical.query.len() + 16);
        for part in [scheme.as_str(), "://", authority, path] {
            url.push_str(part);
        }
        if !canonical.query.is_empty() {
            url.push('?');
            url.push_str(&canonical.query);
        }
        let mut headers = canonical.headers;
        headers.push((
            "authorization".to_owned(),
            format!(
                "{AWS4_HMAC_SHA256} Credential={credential}, SignedHeaders={}, Signature={signature}",
                canonical.signed_headers
            ),
        ));
        Ok(AuthorizedRequest {
            method: request.method,
            url,
            headers,
            canonical_request: canonical.canonical_request,
            string_to_sign: canonical.string_to_sign,
        })
    }
}

/// Where an API request goes: the path already encoded.
#[derive(Clone, Copy)]
struct Target<'a> {
    scheme: Scheme,
    authority: &'a str,
    path: &'a str,
}

/// The `host` botocore signs: the URL's authority without the scheme's default port.
fn signed_host(scheme: Scheme, authority: &str) -> &str {
    let default_port = match scheme {
        Scheme::Https => ":443",
        Scheme::Http => ":80",
    };
    authority.strip_suffix(default_port).unwrap_or(authority)
}

fn refuse_signer_headers(
    headers: &[(String, String)],
    reserved: &[&str],
) -> Result<(), SigningError> {
    match headers
        .iter()
        .find(|(name, _)| reserved.iter().any(|r| name.eq_ignore_ascii_case(r)))
    {
        Some((name, _)) => Err(SigningError::InvalidHeader {
            name: name.clone(),
            reason: "the signer writes it",
        }),
        None => Ok(()),
    }
}

/// Form fields the signer writes; a request may not set them.
const RESERVED_FIELDS: [&str; 9] = [
    "bucket",
    "key",
    "file",
    "policy",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-signature",
];

impl S3Signer {
    /// Signs an S3 POST policy for an HTML form upload, written as botocore's
    /// `generate_presigned_post` writes it (byte for byte: Python's `json.dumps` with its
    /// default separators and ASCII escapes): the request's fields, each an exact-match
    /// condition, then its conditions, then bucket, key and the signer's fields.
    pub fn post_policy(
        &self,
        request: &PostPolicyRequest,
        at: OffsetDateTime,
    ) -> Result<PostPolicy, SigningError> {
        let stamp = Stamp::new(at)?;
        check_fields(&request.fields, &RESERVED_FIELDS)?;
        let location = self.endpoint.locate(&self.style, &request.bucket);
        let url = if location.bucket_in_path {
            format!(
                "{}://{}/{}",
                location.scheme.as_str(),
                location.authority,
                request.bucket
            )
        } else {
            format!("{}://{}/", location.scheme.as_str(), location.authority)
        };
        let credential = format!(
            "{}/{}/{}/{}/aws4_request",
            self.credentials.access_key_id,
            stamp.date(),
            self.region,
            self.service
        );
        let expires_at = stamp.at + time::Duration::seconds(i64::from(request.expiry.as_secs()));
        let key = match &request.key {
            PostKey::Exact(name) => name.as_str().to_owned(),
            PostKey::Prefix(prefix) => format!("{prefix}${{filename}}"),
        };
        let mut signer_fields = vec![
            ("x-amz-algorithm", AWS4_HMAC_SHA256),
            ("x-amz-credential", credential.as_str()),
            ("x-amz-date", stamp.datetime()),
        ];
        if let Some(token) = &self.credentials.session_token {
            signer_fields.push(("x-amz-security-token", token));
        }

        let mut conditions: Vec<String> = Vec::with_capacity(request.fields.len() + 8);
        let object = |name: &str, value: &str| {
            let mut doc = String::new();
            push_json_object_spaced(&mut doc, name, value);
            doc
        };
        for (name, value) in &request.fields {
            conditions.push(object(name, value));
        }
        for condition in &request.conditions {
            let mut doc = String::new();
            push_condition(&mut doc, condition, ", ")?;
            conditions.push(doc);
        }
        conditions.push(object("bucket", request.bucket.as_str()));
        match &request.key {
            PostKey::Exact(name) => conditions.push(object("key", name.as_str())),
            PostKey::Prefix(prefix) => {
                let mut doc = String::new();
                push_starts_with(&mut doc, "key", prefix, ", ");
                conditions.push(doc);
            }
        }
        for (name, value) in &signer_fields {
            conditions.push(object(name, value));
        }
        let mut doc = String::with_capacity(512);
        doc.push_str("{\"expiration\": ");
        push_json_string(&mut doc, &rfc3339_seconds(expires_at));
        doc.push_str(", \"conditions\": [");
        doc.push_str(&conditions.join(", "));
        doc.push_str("]}");
        let policy = base64::engine::general_purpose::STANDARD.encode(doc);
        let signature = hex::encode(self.mac(stamp.date(), policy.as_bytes()).as_ref());

        let mut fields = request.fields.clone();
        fields.push(("key".to_owned(), key));
        fields.extend(
            signer_fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        fields.push(("policy".to_owned(), policy));
        fields.push(("x-amz-signature".to_owned(), signature));
        Ok(PostPolicy {
            url,
            fields,
            expires_at,
        })
    }
}

/// `{"name": "value"}`, as Python's `json.dumps` writes it.
fn push_json_object_spaced(doc: &mut String, name: &str, value: &str) {
    doc.push('{');
    push_json_string(doc, name);
    doc.push_str(": ");
    push_json_string(doc, value);
    doc.push('}');
}

/// The query parameters of the multipart-upload calls, for [`UrlRequest::query`]:
/// CreateMultipartUpload (`POST ?uploads`), UploadPart (`PUT ?partNumber&uploadId`),
/// CompleteMultipartUpload (`POST ?uploadId`), AbortMultipartUpload (`DELETE ?uploadId`).
pub mod multipart {
    /// `?uploads`.
    pub fn create() -> Vec<(String, String)> {
        vec![("uploads".to_owned(), String::new())]
    }

    /// `?partNumber=N&uploadId=ID`.
    pub fn part(upload_id: &str, part_number: u32) -> Vec<(String, String)> {
        vec![
            ("partNumber".to_owned(), part_number.to_string()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ]
    }

    /// `?uploadId=ID`: complete (POST) or abort (DELETE).
    pub fn upload(upload_id: &str) -> Vec<(String, String)> {
        vec![("uploadId".to_owned(), upload_id.to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{BucketName, Expiry, Method, ObjectName};

    /// The key and bucket style of AWS's documented examples.
    fn documentation_signer() -> S3Signer {
        let credentials = S3Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        )
        .expect("credentials");
        S3Signer::new(
            credentials,
            "us-east-1",
            Endpoint::custom("https://s3.amazonaws.com", Scheme::Https).expect("endpoint"),
            UrlStyle::VirtualHosted,
        )
        .expect("signer")
    }

    /// The S3 developer guide's presigned example ("Authenticating Requests: Using Query
    /// Parameters"), as quoted in ../shared/conformance/aws-sigv4/README.md.
    #[test]
    fn the_aws_documentation_example() {
        let signer = documentation_signer();
        let request = UrlRequest::new(
            Method::Get,
            BucketName::parse("examplebucket").expect("bucket"),
            Some(ObjectName::parse("test.txt").expect("object")),
            Expiry::from_secs(86_400).expect("expiry"),
        );
        let at = time::macros::datetime!(2013-05-24 00:00:00 UTC);
        let signed = signer.sign(&request, at).expect("signed");
        assert_eq!(
            signed.url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    /// The S3 API reference's examples of header signing ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in a Single Chunk"): GET Object with a range,
    /// PUT Object with a body, GET Bucket Lifecycle and GET Bucket (a listing).
    #[test]
    fn the_aws_documentation_header_examples() {
        let signer = documentation_signer();
        let bucket = BucketName::parse("examplebucket").expect("bucket");
        let object = |name: &str| Some(ObjectName::parse(name).expect("object"));
        let at = time::macros::datetime!(2013-05-24 00:00:00 UTC);
        let cases = [
            (
                ApiRequest::new(Method::Get, bucket.clone(), object("test.txt"))
                    .header("Range", "bytes=0-9"),
                &b""[..],
                "https://examplebucket.s3.amazonaws.com/test.txt",
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
            (
                ApiRequest::new(Method::Put, bucket.clone(), object("test$file.text"))
                    .header("Date", "Fri, 24 May 2013 00:00:00 GMT")
                    .header("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                &b"Welcome to Amazon S3."[..],
                "https://examplebucket.s3.amazonaws.com/test%24file.text",
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
            (
                ApiRequest::new(Method::Get, bucket.clone(), None).query("lifecycle", ""),
                &b""[..],
                "https://examplebucket.s3.amazonaws.com/?lifecycle=",
                "host;x-amz-content-sha256;x-amz-date",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
            (
                ApiRequest::new(Method::Get, bucket.clone(), None)
                    .query("max-keys", "2")
                    .query("prefix", "J"),
                &b""[..],
                "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
                "host;x-amz-content-sha256;x-amz-date",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ];
        for (request, body, url, signed_headers, signature) in cases {
            let signed = signer.authorize(&request, body, at).expect("signed");
            assert_eq!(signed.url, url);
            let authorization = format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
            );
            let header = |name: &str| {
                signed
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(
                header("authorization"),
                Some(authorization.as_str()),
                "{url}"
            );
            assert_eq!(header("x-amz-date"), Some("20130524T000000Z"));
            let payload = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body));
            assert_eq!(header("x-amz-content-sha256"), Some(payload.as_str()));
            assert_eq!(header("x-amz-security-token"), None);
        }
    }

    #[test]
    fn header_signing_sends_the_session_token_and_refuses_the_signers_headers() {
        let credentials =
            S3Credentials::new("AKID", "secret", Some("session-token".into())).expect("creds");
        let signer = S3Signer::new(
            credentials,
            "eu-west-3",
            Endpoint::custom("http://127.0.0.1:8333", Scheme::Http).expect("endpoint"),
            UrlStyle::Path,
        )
        .expect("signer");
        let bucket = BucketName::parse("b-1").expect("bucket");
        let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let request = ApiRequest::new(
            Method::Delete,
            bucket.clone(),
            Some(ObjectName::parse("a b/../é?#+").expect("object")),
        );
        let signed = signer.authorize(&request, b"", at).expect("signed");
        // The path as presigned URLs encode it: once, never normalised.
        assert_eq!(
            signed.url,
            "http://127.0.0.1:8333/b-1/a%20b/../%C3%A9%3F%23%2B"
        );
        assert!(
            signed
                .canonical_request
                .starts_with("DELETE\n/b-1/a%20b/../%C3%A9%3F%23%2B\n\nhost:127.0.0.1:8333\n")
        );
        assert!(signed.headers.contains(&(
            "x-amz-security-token".to_owned(),
            "session-token".to_owned()
        )));
        assert!(signed.headers.iter().any(|(n, v)| n == "authorization"
            && v.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
            )));
        for name in [
            "Authorization",
            "X-Amz-Date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ] {
            let request = ApiRequest::new(Method::Get, bucket.clone(), None).header(name, "forged");
            let err = signer.authorize(&request, b"", at).expect_err(name);
            assert_eq!(err.code(), "invalid_header", "{name}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let credentials =
            S3Credentials::new("AKID", "very-secret", Some("session-tok".into())).expect("creds");
        let shown = format!("{credentials:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret") && !shown.contains("session-tok"));
    }

    #[test]
    fn bad_credentials_and_regions_are_refused() {
        assert!(S3Credentials::from_json(br#"{"access_key_id":"a"}"#).is_err());
        assert!(
            S3Credentials::from_json(br#"{"access_key_id":"a b","secret_access_key":"s"}"#)
                .is_err()
        );
        assert!(
            S3Credentials::from_json(br#"{"access_key_id":"a","secret_access_key":"s","extra":1}"#)
                .is_err()
        );
        let credentials = S3Credentials::new("a", "s", None).expect("creds");
        for region in ["", "us east", "us/east", "é"] {
            let err = S3Signer::new(
                credentials.clone(),
                region,
                Endpoint::default(),
                UrlStyle::Path,
            )
            .expect_err(region);
            assert_eq!(err.code(), "invalid_region");
        }
    }
}
