//! V4 signed URLs: the canonical request, the string-to-sign and the URL around the signature
//! (<https://cloud.google.com/storage/docs/authentication/canonical-requests>).

use super::endpoint::{Endpoint, Scheme, UrlStyle};
use super::expiry::Stamp;
use super::{BucketName, Expiry, ObjectName, SigningError, SigningIdentity, encoding, v4};
use std::str::FromStr;
use time::OffsetDateTime;

/// The HTTP method a URL is signed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Put,
    Delete,
    /// With `x-goog-resumable: start`, begins a resumable upload.
    Post,
}

impl Method {
    /// The method's name, as signed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Post => "POST",
        }
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Self::Get),
            "HEAD" => Ok(Self::Head),
            "PUT" => Ok(Self::Put),
            "DELETE" => Ok(Self::Delete),
            "POST" => Ok(Self::Post),
            _ => Err(format!(
                "unknown method {s:?}: expected GET, HEAD, PUT, DELETE or POST"
            )),
        }
    }
}

/// What to sign: a method on an object, or on the bucket itself (listing) when `object` is `None`.
#[derive(Clone, Debug)]
pub struct UrlRequest {
    pub method: Method,
    pub bucket: BucketName,
    pub object: Option<ObjectName>,
    pub expiry: Expiry,
    /// Headers the client will send and that the signature binds, in any case and order;
    /// a repeated name is joined into one comma-separated value, in the order given.
    pub headers: Vec<(String, String)>,
    /// Extra query parameters, unencoded.
    pub query: Vec<(String, String)>,
}

impl UrlRequest {
    /// A request with no extra headers or query parameters.
    pub fn new(
        method: Method,
        bucket: BucketName,
        object: Option<ObjectName>,
        expiry: Expiry,
    ) -> Self {
        Self {
            method,
            bucket,
            object,
            expiry,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    /// Adds a header the signature binds.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
}

/// A canonicalised request waiting for its signature.
#[derive(Clone, Debug)]
pub struct PreparedUrl {
    method: Method,
    /// Everything up to the query string's end, without `X-Goog-Signature`.
    unsigned_url: String,
    canonical_request: String,
    string_to_sign: String,
    date: String,
    expires_at: OffsetDateTime,
    headers: Vec<(String, String)>,
    /// `&X-Goog-Signature=` or `&X-Amz-Signature=`.
    signature_param: &'static str,
}

impl PreparedUrl {
    pub(crate) fn new(
        method: Method,
        unsigned_url: String,
        canonical: v4::Canonical,
        stamp: &Stamp,
        expiry: Expiry,
        signature_param: &'static str,
    ) -> Self {
        Self {
            method,
            unsigned_url,
            canonical_request: canonical.canonical_request,
            string_to_sign: canonical.string_to_sign,
            date: stamp.date().to_owned(),
            expires_at: stamp.at + time::Duration::seconds(i64::from(expiry.as_secs())),
            headers: canonical.headers,
            signature_param,
        }
    }

    /// The canonical request (for tests and debugging).
    pub fn canonical_request(&self) -> &str {
        &self.canonical_request
    }

    /// The text the signer signs.
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }

    /// The credential scope's date, `YYYYMMDD`, that HMAC signers derive their key from.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// Appends the signature and yields the URL.
    pub fn finish(self, signature: &[u8]) -> SignedUrl {
        let mut url = self.unsigned_url;
        url.reserve(20 + signature.len() * 2);
        url.push_str(self.signature_param);
        url.push_str(&hex::encode(signature));
        SignedUrl {
            url,
            method: self.method,
            expires_at: self.expires_at,
            headers: self.headers,
        }
    }
}

/// A signed URL and what the client must do to use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUrl {
    pub url: String,
    pub method: Method,
    pub expires_at: OffsetDateTime,
    /// Headers the client must send exactly so (lower-case names, normalised values); `host` aside.
    pub headers: Vec<(String, String)>,
}

/// Builds the canonical request and string-to-sign for `request`, signed at `at`.
pub fn prepare_url(
    identity: &SigningIdentity,
    endpoint: &Endpoint,
    style: &UrlStyle,
    request: &UrlRequest,
    at: OffsetDateTime,
) -> Result<PreparedUrl, SigningError> {
    let stamp = Stamp::new(at)?;
    let location = endpoint.locate(style, &request.bucket);
    let path = object_path(
        location.bucket_in_path,
        &request.bucket,
        request.object.as_ref(),
    );
    let scope = format!("{}/auto/storage/goog4_request", stamp.date());
    let credential = format!("{}/{scope}", identity.credential_id);
    let canonical = v4::canonicalize(
        &v4::GOOG4,
        &v4::Auth {
            algorithm: identity.algorithm.as_str(),
            credential: &credential,
            scope: &scope,
            security_token: None,
        },
        &stamp,
        &v4::Request {
            method: request.method.as_str(),
            host: &location.host,
            path: &path,
            query: &request.query,
            headers: &request.headers,
            expires: request.expiry.as_secs(),
            payload: None,
        },
    )?;
    Ok(PreparedUrl::new(
        request.method,
        unsigned_url(
            location.scheme,
            &location.authority,
            &path,
            &canonical.query,
        ),
        canonical,
        &stamp,
        request.expiry,
        "&X-Goog-Signature=",
    ))
}

/// `/BUCKET/OBJECT` or `/OBJECT`, encoded: a slash separates segments and stays, every other
/// byte but the unreserved ones is escaped, and nothing is normalised (`a/../b` stays).
pub(crate) fn object_path(
    bucket_in_path: bool,
    bucket: &BucketName,
    object: Option<&ObjectName>,
) -> String {
    let mut path = String::with_capacity(80);
    path.push('/');
    if bucket_in_path {
        path.push_str(bucket.as_str());
        if object.is_some() {
            path.push('/');
        }
    }
    if let Some(object) = object {
        encoding::push_path(&mut path, object.as_str());
    }
    path
}

/// `SCHEME://AUTHORITY/PATH?QUERY`, room left for the signature.
pub(crate) fn unsigned_url(scheme: Scheme, authority: &str, path: &str, query: &str) -> String {
    let mut url = String::with_capacity(authority.len() + path.len() + query.len() + 600);
    for part in [scheme.as_str(), "://", authority, path, "?", query] {
        url.push_str(part);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_once_and_never_normalised() {
        let bucket = BucketName::parse("b-1").expect("bucket");
        let object = ObjectName::parse("a b/../é?#+").expect("object");
        assert_eq!(
            object_path(true, &bucket, Some(&object)),
            "/b-1/a%20b/../%C3%A9%3F%23%2B"
        );
        assert_eq!(
            object_path(false, &bucket, Some(&object)),
            "/a%20b/../%C3%A9%3F%23%2B"
        );
        assert_eq!(object_path(true, &bucket, None), "/b-1");
    }
}
