//! S3 SigV4 presigned URLs (query-string authentication) for S3-compatible stores: AWS, MinIO,
//! Ceph, SeaweedFS, R2, Spaces. The canonical request is the one V4 algorithm GCS uses too
//! ([`super::v4`]); S3 adds its names, a credential scope of `DATE/REGION/s3/aws4_request`, a
//! `host` signed with its port unless it is the scheme's default, and a path encoded once and
//! never normalised.

use super::endpoint::{Endpoint, Scheme, UrlStyle};
use super::expiry::Stamp;
use super::expiry::rfc3339_seconds;
use super::post_policy::{check_fields, push_json_string};
use super::url::{object_path, unsigned_url};
use super::{
    Condition, PostKey, PostPolicy, PostPolicyRequest, PreparedUrl, SignedUrl, SigningError,
    UrlRequest, encoding, v4,
};
use aws_lc_rs::hmac;
use base64::Engine;
use serde::Deserialize;
use std::fmt;
use std::path::Path;
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
        })
    }

    /// The same signer for another SigV4 service than `s3` (the generic test suite signs for
    /// `service`).
    pub fn for_service(mut self, service: &str) -> Self {
        service.clone_into(&mut self.service);
        self
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
        // botocore signs the URL's authority, dropping only the scheme's default port.
        let default_port = match scheme {
            Scheme::Https => ":443",
            Scheme::Http => ":80",
        };
        let host = authority.strip_suffix(default_port).unwrap_or(authority);
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
        let key = self
            .credentials
            .day_key(prepared.date(), &self.region, &self.service);
        hmac::sign(&key, prepared.string_to_sign().as_bytes())
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
            match condition {
                Condition::StartsWith { field, prefix } => {
                    let field = field.strip_prefix('$').unwrap_or(field);
                    doc.push_str("[\"starts-with\", ");
                    push_json_string(&mut doc, &format!("${field}"));
                    doc.push_str(", ");
                    push_json_string(&mut doc, prefix);
                    doc.push(']');
                }
                Condition::ContentLengthRange { min, max } => {
                    if min > max {
                        return Err(SigningError::InvalidPolicyField {
                            name: "content-length-range".to_owned(),
                            reason: "the minimum is above the maximum",
                        });
                    }
                    doc.push_str(&format!("[\"content-length-range\", {min}, {max}]"));
                }
            }
            conditions.push(doc);
        }
        conditions.push(object("bucket", request.bucket.as_str()));
        match &request.key {
            PostKey::Exact(name) => conditions.push(object("key", name.as_str())),
            PostKey::Prefix(prefix) => {
                let mut doc = String::from("[\"starts-with\", \"$key\", ");
                push_json_string(&mut doc, prefix);
                doc.push(']');
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
        let key_for_day = self
            .credentials
            .day_key(stamp.date(), &self.region, &self.service);
        let signature = hex::encode(hmac::sign(&key_for_day, policy.as_bytes()).as_ref());

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

    /// The S3 developer guide's presigned example ("Authenticating Requests: Using Query
    /// Parameters"), as quoted in ../shared/conformance/aws-sigv4/README.md.
    #[test]
    fn the_aws_documentation_example() {
        let credentials = S3Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        )
        .expect("credentials");
        let signer = S3Signer::new(
            credentials,
            "us-east-1",
            Endpoint::custom("https://s3.amazonaws.com", Scheme::Https).expect("endpoint"),
            UrlStyle::VirtualHosted,
        )
        .expect("signer");
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
