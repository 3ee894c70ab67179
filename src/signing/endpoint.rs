//! Where signed URLs point: the storage host, its scheme, and how the bucket is addressed.

use super::{BucketName, SigningError};
use std::borrow::Cow;
use std::str::FromStr;

/// `https` (the default) or `http` (emulators, some bucket-bound hostnames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    #[default]
    Https,
    Http,
}

impl Scheme {
    /// `https` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Http => "http",
        }
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "https" => Ok(Self::Https),
            "http" => Ok(Self::Http),
            _ => Err(format!("unknown scheme {s:?}: expected https or http")),
        }
    }
}

/// How the bucket appears in a URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UrlStyle {
    /// `https://storage.googleapis.com/BUCKET/OBJECT` (the default).
    #[default]
    Path,
    /// `https://BUCKET.storage.googleapis.com/OBJECT`.
    VirtualHosted,
    /// `https://HOSTNAME/OBJECT`: a CDN or custom domain bound to one bucket.
    BucketBound(HostPort),
}

/// A host with an optional port, and the scheme it was given with, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    scheme: Option<Scheme>,
    /// `host[:port]`, as it goes into the URL.
    authority: String,
    /// The length of the host part, without the port: what the `host` header signs.
    host_len: usize,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]:port`, optionally behind `http://` or `https://`, with
    /// at most a trailing `/`.
    pub fn parse(input: &str) -> Result<Self, SigningError> {
        let bad = |reason| SigningError::InvalidEndpoint {
            endpoint: input.to_owned(),
            reason,
        };
        let (scheme, rest) = match input.split_once("://") {
            Some((scheme, rest)) => (
                Some(
                    scheme
                        .parse::<Scheme>()
                        .map_err(|_| bad("scheme must be http or https"))?,
                ),
                rest,
            ),
            None => (None, input),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\') || b <= b' ' || b >= 0x7f)
        {
            return Err(bad(
                "must be a host with an optional port: no path, query, user or spaces",
            ));
        }
        let host_len = if authority.starts_with('[') {
            match authority.find(']') {
                Some(end) => end + 1,
                None => return Err(bad("unclosed '[' in IPv6 address")),
            }
        } else {
            authority.find(':').unwrap_or(authority.len())
        };
        let port = &authority[host_len..];
        if !port.is_empty() {
            let digits = port
                .strip_prefix(':')
                .ok_or_else(|| bad("unexpected text after the host"))?;
            if digits.parse::<u16>().is_err() {
                return Err(bad("port must be a number 0-65535"));
            }
        }
        Ok(Self {
            scheme,
            authority: authority.to_ascii_lowercase(),
            host_len,
        })
    }

    fn host(&self) -> &str {
        &self.authority[..self.host_len]
    }
}

/// The storage service URLs are signed for: Google's, another universe domain's, or an emulator's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    server: HostPort,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::universe("googleapis.com", Scheme::Https).unwrap_or_else(|_| unreachable!("valid"))
    }
}

impl Endpoint {
    /// AWS's S3 endpoint for `region`: `s3.REGION.amazonaws.com`, and `s3.amazonaws.com` for
    /// us-east-1 (botocore's legacy global endpoint, which presigned URLs use).
    pub fn aws(region: &str, scheme: Scheme) -> Result<Self, SigningError> {
        match region {
            "us-east-1" => Self::custom("s3.amazonaws.com", scheme),
            region => Self::custom(&format!("s3.{region}.amazonaws.com"), scheme),
        }
    }

    /// `storage.DOMAIN`, e.g. `storage.googleapis.com`.
    pub fn universe(domain: &str, scheme: Scheme) -> Result<Self, SigningError> {
        let domain = domain.trim_start_matches('.');
        let server = HostPort::parse(&format!("storage.{domain}"))?;
        if server.scheme.is_some() || server.authority.len() != server.host_len {
            return Err(SigningError::InvalidEndpoint {
                endpoint: domain.to_owned(),
                reason: "a universe domain is a bare domain name",
            });
        }
        Ok(Self { scheme, server })
    }

    /// A custom endpoint such as `http://localhost:4443` (an emulator) or
    /// `storage.googleapis.com:443`; its own scheme, if it has one, wins over `scheme`.
    pub fn custom(endpoint: &str, scheme: Scheme) -> Result<Self, SigningError> {
        let server = HostPort::parse(endpoint)?;
        Ok(Self {
            scheme: server.scheme.unwrap_or(scheme),
            server,
        })
    }

    /// Where a request for `bucket` goes in `style`.
    /// `scheme://authority`: the service's base URL, as a client configures it.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.server.authority)
    }

    pub(crate) fn locate<'a>(&'a self, style: &'a UrlStyle, bucket: &BucketName) -> Location<'a> {
        match style {
            UrlStyle::Path => Location {
                scheme: self.scheme,
                authority: Cow::Borrowed(&self.server.authority),
                host: Cow::Borrowed(self.server.host()),
                bucket_in_path: true,
            },
            UrlStyle::VirtualHosted => Location {
                scheme: self.scheme,
                authority: Cow::Owned(format!("{bucket}.{}", self.server.authority)),
                host: Cow::Owned(format!("{bucket}.{}", self.server.host())),
                bucket_in_path: false,
            },
            UrlStyle::BucketBound(bound) => Location {
                scheme: bound.scheme.unwrap_or(self.scheme),
                authority: Cow::Borrowed(&bound.authority),
                host: Cow::Borrowed(bound.host()),
                bucket_in_path: false,
            },
        }
    }
}

/// One request's scheme, URL authority, signed `host` and path layout.
pub(crate) struct Location<'a> {
    pub(crate) scheme: Scheme,
    pub(crate) authority: Cow<'a, str>,
    /// Signed without the port, as Google's conformance vectors do.
    pub(crate) host: Cow<'a, str>,
    pub(crate) bucket_in_path: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> BucketName {
        BucketName::parse("b-1").expect("bucket")
    }

    #[test]
    fn default_is_google() {
        let endpoint = Endpoint::default();
        let loc = endpoint.locate(&UrlStyle::Path, &bucket());
        assert_eq!(
            (loc.scheme, &*loc.authority, &*loc.host),
            (
                Scheme::Https,
                "storage.googleapis.com",
                "storage.googleapis.com"
            )
        );
        let loc = endpoint.locate(&UrlStyle::VirtualHosted, &bucket());
        assert_eq!(&*loc.authority, "b-1.storage.googleapis.com");
    }

    #[test]
    fn custom_endpoints_sign_the_host_without_port() {
        let endpoint = Endpoint::custom("http://LocalHost:4443/", Scheme::Https).expect("endpoint");
        let loc = endpoint.locate(&UrlStyle::Path, &bucket());
        assert_eq!(
            (loc.scheme, &*loc.authority, &*loc.host),
            (Scheme::Http, "localhost:4443", "localhost")
        );
        let v6 = Endpoint::custom("[::1]:8080", Scheme::Http).expect("v6");
        assert_eq!(&*v6.locate(&UrlStyle::Path, &bucket()).host, "[::1]");
    }

    #[test]
    fn bad_endpoints() {
        for bad in [
            "",
            "ftp://x",
            "http://",
            "host/path",
            "host:port",
            "host:99999",
            "a b",
            "u@host",
            "[::1",
        ] {
            let err = Endpoint::custom(bad, Scheme::Https).expect_err(bad);
            assert_eq!(err.code(), "invalid_endpoint", "{bad}");
        }
        assert!(Endpoint::universe("example.com:80", Scheme::Https).is_err());
    }
}
