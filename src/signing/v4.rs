//! The V4 algorithm that GCS (`GOOG4-*`) and S3 (`AWS4-HMAC-SHA256`) share: canonical headers,
//! canonical query, canonical request, string-to-sign. The two differ only in names (the
//! [`Dialect`]), in how the credential scope is written, and in the order the final URL carries
//! its query parameters; the canonical request is the same algorithm, so it is written once.

use super::SigningError;
use super::encoding;
use super::expiry::Stamp;
use aws_lc_rs::digest;
use std::fmt::Write;

/// What differs between GCS's and S3's V4 in what is signed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dialect {
    /// `X-Goog-` or `X-Amz-`: the query parameters the signer writes.
    pub(crate) prefix: &'static str,
    /// The header whose value replaces `UNSIGNED-PAYLOAD` when the client signs its payload.
    pub(crate) content_sha256: &'static str,
    /// How the URL orders its query parameters (the canonical query is always sorted).
    pub(crate) order: QueryOrder,
}

/// The order of the query parameters in the URL a client receives. It is not signed, but
/// independent implementations are compared byte for byte, so each dialect follows its reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueryOrder {
    /// Sorted, as in the canonical query (Google's client libraries).
    Canonical,
    /// The request's own parameters as given, then the signer's (botocore).
    GivenThenSigner,
}

/// GCS V4 names.
pub(crate) const GOOG4: Dialect = Dialect {
    prefix: "X-Goog-",
    content_sha256: "x-goog-content-sha256",
    order: QueryOrder::Canonical,
};

/// AWS SigV4 names.
pub(crate) const AWS4: Dialect = Dialect {
    prefix: "X-Amz-",
    content_sha256: "x-amz-content-sha256",
    order: QueryOrder::GivenThenSigner,
};

/// The signer's parameters after the prefix, in the order botocore writes them.
const SIGNER_PARAMS: [&str; 7] = [
    "Algorithm",
    "Credential",
    "Date",
    "Expires",
    "SignedHeaders",
    "Security-Token",
    "Signature",
];

/// Who signs, as the signed text names them.
pub(crate) struct Auth<'a> {
    pub(crate) algorithm: &'a str,
    /// `ID/SCOPE`.
    pub(crate) credential: &'a str,
    /// `DATE/REGION/SERVICE/TERMINATOR`.
    pub(crate) scope: &'a str,
    /// Temporary credentials' session token, signed into the query.
    pub(crate) security_token: Option<&'a str>,
}

/// One request to canonicalise.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The `host` header's value.
    pub(crate) host: &'a str,
    /// The URL path, already encoded.
    pub(crate) path: &'a str,
    /// Extra query parameters, unencoded, in the order given.
    pub(crate) query: &'a [(String, String)],
    /// Headers the client sends and the signature binds; `host` is added.
    pub(crate) headers: &'a [(String, String)],
    pub(crate) expires: u32,
    /// The payload's SHA-256 in hex; `None` signs `UNSIGNED-PAYLOAD` (or the dialect's
    /// content-sha256 header, when the request carries one).
    pub(crate) payload: Option<&'a str>,
}

/// A canonicalised request: what is signed, and the URL's query without the signature.
pub(crate) struct Canonical {
    pub(crate) query: String,
    pub(crate) canonical_request: String,
    pub(crate) string_to_sign: String,
    /// The headers the client must send (lower-case names, normalised values), `host` aside.
    pub(crate) headers: Vec<(String, String)>,
    /// The signed headers' names, `;`-separated, as the `Authorization` header names them.
    pub(crate) signed_headers: String,
}

/// Canonicalises a presigned URL: the signer's parameters go into the query.
pub(crate) fn canonicalize(
    dialect: &Dialect,
    auth: &Auth<'_>,
    stamp: &Stamp,
    request: &Request<'_>,
) -> Result<Canonical, SigningError> {
    canonicalize_placed(dialect, auth, stamp, request, true)
}

/// Canonicalises a request signed in its `Authorization` header: the query is the request's own
/// and nothing else. The signer's date and session token are headers the caller adds to
/// `request.headers` (their names differ per dialect and are signed like any other);
/// `request.expires` and `auth.security_token` are not used.
pub(crate) fn canonicalize_for_header(
    dialect: &Dialect,
    auth: &Auth<'_>,
    stamp: &Stamp,
    request: &Request<'_>,
) -> Result<Canonical, SigningError> {
    canonicalize_placed(dialect, auth, stamp, request, false)
}

fn canonicalize_placed(
    dialect: &Dialect,
    auth: &Auth<'_>,
    stamp: &Stamp,
    request: &Request<'_>,
    presigned: bool,
) -> Result<Canonical, SigningError> {
    let headers = canonical_headers(request.headers, request.host)?;
    let mut signed_headers = String::with_capacity(headers.len() * 16);
    for (i, (name, _)) in headers.iter().enumerate() {
        if i > 0 {
            signed_headers.push(';');
        }
        signed_headers.push_str(name);
    }

    let expires = request.expires.to_string();
    let mut given: Vec<(String, String)> = Vec::with_capacity(request.query.len());
    for (name, value) in request.query {
        let reserved = name.len() > dialect.prefix.len()
            && name.is_char_boundary(dialect.prefix.len())
            && name[..dialect.prefix.len()].eq_ignore_ascii_case(dialect.prefix)
            && SIGNER_PARAMS
                .iter()
                .any(|p| name[dialect.prefix.len()..].eq_ignore_ascii_case(p));
        if reserved {
            return Err(SigningError::ReservedQueryParameter(name.clone()));
        }
        given.push((encoding::query(name), encoding::query(value)));
    }
    let mut signer: Vec<(String, String)> = Vec::with_capacity(6);
    for (param, value) in presigned
        .then_some([
            ("Algorithm", Some(auth.algorithm)),
            ("Credential", Some(auth.credential)),
            ("Date", Some(stamp.datetime())),
            ("Expires", Some(expires.as_str())),
            ("SignedHeaders", Some(signed_headers.as_str())),
            ("Security-Token", auth.security_token),
        ])
        .into_iter()
        .flatten()
    {
        if let Some(value) = value {
            signer.push((format!("{}{param}", dialect.prefix), encoding::query(value)));
        }
    }
    // By encoded name, then encoded value: not by `name=value`, which differs when one name is a
    // prefix of another.
    let mut sorted: Vec<&(String, String)> = given.iter().chain(&signer).collect();
    sorted.sort_unstable();
    let canonical_query = join_query(sorted.iter().copied());
    let query = match dialect.order {
        QueryOrder::Canonical => canonical_query.clone(),
        QueryOrder::GivenThenSigner => join_query(given.iter().chain(&signer)),
    };

    let payload = request.payload.unwrap_or_else(|| {
        headers
            .iter()
            .find(|(name, _)| name == dialect.content_sha256)
            .map_or("UNSIGNED-PAYLOAD", |(_, value)| value.as_str())
    });
    let method = request.method;
    let mut canonical_request = String::with_capacity(
        method.len() + request.path.len() + canonical_query.len() + 2 * signed_headers.len() + 200,
    );
    for part in [method, "\n", request.path, "\n", &canonical_query, "\n"] {
        canonical_request.push_str(part);
    }
    for (name, value) in &headers {
        let _ = writeln!(canonical_request, "{name}:{value}");
    }
    for part in ["\n", &signed_headers, "\n", payload] {
        canonical_request.push_str(part);
    }

    let digest = digest::digest(&digest::SHA256, canonical_request.as_bytes());
    let mut string_to_sign = String::with_capacity(auth.algorithm.len() + auth.scope.len() + 90);
    for part in [
        auth.algorithm,
        "\n",
        stamp.datetime(),
        "\n",
        auth.scope,
        "\n",
    ] {
        string_to_sign.push_str(part);
    }
    string_to_sign.push_str(&hex::encode(digest.as_ref()));

    let mut headers = headers;
    headers.retain(|(name, _)| name != "host");
    Ok(Canonical {
        query,
        canonical_request,
        string_to_sign,
        headers,
        signed_headers,
    })
}

fn join_query<'a>(params: impl Iterator<Item = &'a (String, String)>) -> String {
    let mut out = String::with_capacity(512);
    for (i, (name, value)) in params.enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
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

    #[test]
    fn the_signers_parameters_cannot_be_given() {
        let stamp = Stamp::new(time::OffsetDateTime::UNIX_EPOCH).expect("stamp");
        let auth = Auth {
            algorithm: "AWS4-HMAC-SHA256",
            credential: "id/scope",
            scope: "scope",
            security_token: None,
        };
        for (dialect, name) in [
            (GOOG4, "x-goog-signature"),
            (GOOG4, "X-Goog-Date"),
            (AWS4, "x-amz-security-token"),
            (AWS4, "X-AMZ-SIGNEDHEADERS"),
        ] {
            let query = pairs(&[(name, "v")]);
            let request = Request {
                method: "GET",
                host: "h",
                path: "/",
                query: &query,
                headers: &[],
                expires: 60,
                payload: None,
            };
            let err = canonicalize(&dialect, &auth, &stamp, &request).err();
            assert_eq!(
                err.map(|e| e.code()),
                Some("reserved_query_parameter"),
                "{name}"
            );
        }
    }
}

/// The signing key of the last day signed for, so that the four chained HMACs deriving a V4
/// day key (almost half of an HMAC-signed URL's cost) run once a day, not once a URL. Lock-free
/// for the readers that sign batches on every core.
#[derive(Debug, Default)]
pub(crate) struct DayKeys(arc_swap::ArcSwapOption<(String, aws_lc_rs::hmac::Key)>);

impl DayKeys {
    /// The MAC of `message` with the key of `date` (`YYYYMMDD`), derived by `derive` when the
    /// cached key is another day's.
    pub(crate) fn mac(
        &self,
        date: &str,
        message: &[u8],
        derive: impl FnOnce() -> aws_lc_rs::hmac::Key,
    ) -> aws_lc_rs::hmac::Tag {
        if let Some(cached) = &*self.0.load()
            && cached.0 == date
        {
            return aws_lc_rs::hmac::sign(&cached.1, message);
        }
        let key = derive();
        let tag = aws_lc_rs::hmac::sign(&key, message);
        self.0
            .store(Some(std::sync::Arc::new((date.to_owned(), key))));
        tag
    }
}
