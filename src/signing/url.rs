//! V4 signed URLs: the canonical request, the string-to-sign and the URL around the signature
//! (<https://cloud.google.com/storage/docs/authentication/canonical-requests>).

use super::endpoint::{Endpoint, UrlStyle};
use super::expiry::Stamp;
use super::{BucketName, Expiry, ObjectName, SigningError, SigningIdentity, encoding};
use aws_lc_rs::digest;
use std::fmt::Write;
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
}

impl PreparedUrl {
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
        url.push_str("&X-Goog-Signature=");
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

/// Query parameters the signer writes itself; a request may not carry them.
const RESERVED_QUERY: [&str; 6] = [
    "x-goog-algorithm",
    "x-goog-credential",
    "x-goog-date",
    "x-goog-expires",
    "x-goog-signedheaders",
    "x-goog-signature",
];

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

    let headers = canonical_headers(&request.headers, &location.host)?;
    let mut signed_headers = String::with_capacity(headers.len() * 16);
    for (i, (name, _)) in headers.iter().enumerate() {
        if i > 0 {
            signed_headers.push(';');
        }
        signed_headers.push_str(name);
    }

    let mut path = String::with_capacity(80);
    path.push('/');
    if location.bucket_in_path {
        path.push_str(request.bucket.as_str());
        if request.object.is_some() {
            path.push('/');
        }
    }
    if let Some(object) = &request.object {
        encoding::push_path(&mut path, object.as_str());
    }

    let scope = format!("{}/auto/storage/goog4_request", stamp.date());
    let credential = format!("{}/{scope}", identity.credential_id);
    let expires = request.expiry.as_secs().to_string();
    let algorithm = identity.algorithm.as_str();
    let mut query: Vec<(String, String)> = Vec::with_capacity(5 + request.query.len());
    for (name, value) in &request.query {
        if RESERVED_QUERY.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(SigningError::ReservedQueryParameter(name.clone()));
        }
        query.push((encoding::query(name), encoding::query(value)));
    }
    for (name, value) in [
        ("X-Goog-Algorithm", algorithm),
        ("X-Goog-Credential", &credential),
        ("X-Goog-Date", stamp.datetime()),
        ("X-Goog-Expires", &expires),
        ("X-Goog-SignedHeaders", &signed_headers),
    ] {
        query.push((name.to_owned(), encoding::query(value)));
    }
    // By encoded name, then encoded value: not by `name=value`, which differs when one name is a
    // prefix of another.
    query.sort_unstable();
    let query_len = query.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut canonical_query = String::with_capacity(query_len);
    for (i, (name, value)) in query.iter().enumerate() {
        if i > 0 {
            canonical_query.push('&');
        }
        canonical_query.push_str(name);
        canonical_query.push('=');
        canonical_query.push_str(value);
    }

    let payload = headers
        .iter()
        .find(|(name, _)| name == "x-goog-content-sha256")
        .map_or("UNSIGNED-PAYLOAD", |(_, value)| value.as_str());

    let method = request.method.as_str();
    let mut canonical_request = String::with_capacity(
        method.len() + path.len() + canonical_query.len() + 2 * signed_headers.len() + 200,
    );
    for part in [method, "\n", &path, "\n", &canonical_query, "\n"] {
        canonical_request.push_str(part);
    }
    for (name, value) in &headers {
        let _ = writeln!(canonical_request, "{name}:{value}");
    }
    for part in ["\n", &signed_headers, "\n", payload] {
        canonical_request.push_str(part);
    }

    let digest = digest::digest(&digest::SHA256, canonical_request.as_bytes());
    let mut string_to_sign = String::with_capacity(algorithm.len() + scope.len() + 90);
    for part in [algorithm, "\n", stamp.datetime(), "\n", &scope, "\n"] {
        string_to_sign.push_str(part);
    }
    string_to_sign.push_str(&hex::encode(digest.as_ref()));

    let mut unsigned_url = String::with_capacity(
        location.authority.len() + path.len() + canonical_query.len() + 20 + 600,
    );
    for part in [
        location.scheme.as_str(),
        "://",
        &location.authority,
        &path,
        "?",
        &canonical_query,
    ] {
        unsigned_url.push_str(part);
    }

    let expires_at = stamp.at + time::Duration::seconds(i64::from(request.expiry.as_secs()));
    let mut headers = headers;
    headers.retain(|(name, _)| name != "host");
    Ok(PreparedUrl {
        method: request.method,
        unsigned_url,
        canonical_request,
        string_to_sign,
        date: stamp.date().to_owned(),
        expires_at,
        headers,
    })
}

/// Lower-cased names, trimmed values with inner whitespace runs collapsed, `host` added, sorted
/// by name, repeated names joined with `,`.
fn canonical_headers(
    given: &[(String, String)],
    host: &str,
) -> Result<Vec<(String, String)>, SigningError> {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(given.len() + 1);
    headers.push(("host".to_owned(), host.to_owned()));
    for (name, value) in given {
        let bad = |reason| SigningError::InvalidHeader {
            name: name.clone(),
            reason,
        };
        if name.is_empty() || name.bytes().any(|b| b == b':' || b <= b' ' || b == 0x7f) {
            return Err(bad(
                "a header name is non-empty, without ':', spaces or control characters",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower == "host" {
            return Err(bad("host is set from the endpoint"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(bad(
                "a header value has no line breaks or control characters",
            ));
        }
        headers.push((lower, collapse_whitespace(value)));
    }
    // Stable, so repeated headers keep the order they were given in.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    headers.dedup_by(|later, first| {
        if later.0 == first.0 {
            first.1.push(',');
            first.1.push_str(&later.1);
            true
        } else {
            false
        }
    });
    Ok(headers)
}

fn collapse_whitespace(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn headers_are_normalised_sorted_and_joined() {
        let got = canonical_headers(
            &pairs(&[
                ("X-B", "  two\t\tparts "),
                ("x-a", "1"),
                ("X-A", "2"),
                ("empty", ""),
            ]),
            "h",
        )
        .expect("headers");
        assert_eq!(
            got,
            pairs(&[
                ("empty", ""),
                ("host", "h"),
                ("x-a", "1,2"),
                ("x-b", "two parts")
            ])
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        for (name, value) in [
            ("", "v"),
            ("a:b", "v"),
            ("a b", "v"),
            ("Host", "x"),
            ("x", "a\r\nb"),
            ("x", "a\0"),
        ] {
            let err = canonical_headers(&pairs(&[(name, value)]), "h").expect_err(name);
            assert_eq!(err.code(), "invalid_header");
        }
    }
}
