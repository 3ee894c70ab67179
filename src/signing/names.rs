//! Bucket and object names as GCS accepts them, parsed once at the edge.

use super::SigningError;
use std::fmt;

/// A GCS bucket name (<https://cloud.google.com/storage/docs/buckets#naming>).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BucketName(String);

impl BucketName {
    /// Checks the GCS naming rules: 3–63 characters (up to 222 with dots, each dot-separated
    /// part at most 63), lowercase letters, digits, `-`, `_` and `.`, starting and ending with a
    /// letter or digit, not an IP address, not starting with `goog`, not containing `google`.
    pub fn parse(name: &str) -> Result<Self, SigningError> {
        let bad = |reason| SigningError::InvalidBucketName {
            name: name.to_owned(),
            reason,
        };
        let len = name.len();
        let dotted = name.contains('.');
        if len < 3 || (!dotted && len > 63) || len > 222 {
            return Err(bad(
                "must be 3-63 characters (up to 222 when it contains dots)",
            ));
        }
        if !name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
        {
            return Err(bad(
                "only lowercase letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = name.as_bytes();
        if !alnum(bytes[0]) || !alnum(bytes[len - 1]) {
            return Err(bad("must start and end with a letter or digit"));
        }
        if dotted
            && name
                .split('.')
                .any(|part| part.is_empty() || part.len() > 63)
        {
            return Err(bad("each dot-separated part must be 1-63 characters"));
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(bad("must not be an IP address"));
        }
        // An `xn--` label is punycode: a name that is not valid punycode makes no hostname for
        // virtual-hosted URLs (S3 forbids the prefix outright; so does this broker).
        if name.starts_with("xn--") {
            return Err(bad("must not start with \"xn--\""));
        }
        if name.starts_with("goog") {
            return Err(bad("must not start with \"goog\""));
        }
        if name.contains("google") || name.contains("g00gle") {
            return Err(bad("must not contain \"google\""));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GCS object name (<https://cloud.google.com/storage/docs/objects#naming>).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName(String);

/// GCS limits object names to 1024 bytes of UTF-8.
pub const MAX_OBJECT_NAME_BYTES: usize = 1024;

impl ObjectName {
    /// Checks the rules GCS enforces: 1–1024 bytes of UTF-8, no carriage return or line feed,
    /// not `.` or `..`. Everything else, a leading slash included, is a valid name.
    pub fn parse(name: &str) -> Result<Self, SigningError> {
        if name.is_empty() {
            return Err(SigningError::InvalidObjectName("must not be empty"));
        }
        if name.len() > MAX_OBJECT_NAME_BYTES {
            return Err(SigningError::InvalidObjectName(
                "must be at most 1024 bytes of UTF-8",
            ));
        }
        if name.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(SigningError::InvalidObjectName(
                "must not contain carriage return or line feed",
            ));
        }
        if name == "." || name == ".." {
            return Err(SigningError::InvalidObjectName(
                "must not be \".\" or \"..\"",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "test-bucket", "a_b.c-d", "my.bucket.example", "0ab"] {
            assert!(BucketName::parse(ok).is_ok(), "{ok} should be accepted");
        }
        let long = "a".repeat(64);
        let dotted_long = format!("{}.b", "a".repeat(64));
        for bad in [
            "ab",
            long.as_str(),
            dotted_long.as_str(),
            "Test",
            "-abc",
            "abc-",
            "a..b",
            "192.168.5.4",
            "goog-bucket",
            "xn--0",
            "xn--bcher-kva",
            "my-google-bucket",
            "my-g00gle",
            "a b",
            "abc/def",
        ] {
            let err = BucketName::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_bucket_name");
        }
    }

    #[test]
    fn object_names() {
        for ok in [
            "a",
            "/leading",
            "ünïcødé/ 空白 &?#%",
            ".a",
            "...",
            &"x".repeat(1024),
        ] {
            assert!(ObjectName::parse(ok).is_ok(), "{ok} should be accepted");
        }
        // 512 two-byte characters are 1024 bytes; one more is over.
        assert!(ObjectName::parse(&"é".repeat(512)).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a\nb",
            "a\rb",
            &"x".repeat(1025),
            &"é".repeat(513),
        ] {
            let err = ObjectName::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_object_name");
        }
    }
}
