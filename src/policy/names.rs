//! Names of logical buckets.

use std::fmt;

/// A logical bucket's name (`u-alice`, `p-vision`): 3–63 of `a-z 0-9 - _ .`, starting and
/// ending with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogicalBucketName(String);

impl LogicalBucketName {
    /// Checks the rules.
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok_len = (3..=63).contains(&name.len());
        let ok_chars = name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'));
        let alnum =
            |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok_len && ok_chars && alnum(name.as_bytes().first()) && alnum(name.as_bytes().last()) {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "bucket name {name:?}: 3-63 of a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogicalBucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A project's slug (`vision`): 3–63 of `a-z 0-9 -`, starting and ending with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectSlug(String);

impl ProjectSlug {
    /// Checks the rules.
    pub fn parse(slug: &str) -> Result<Self, String> {
        let ok_chars = slug
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        let alnum =
            |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if (3..=63).contains(&slug.len())
            && ok_chars
            && alnum(slug.as_bytes().first())
            && alnum(slug.as_bytes().last())
        {
            Ok(Self(slug.to_owned()))
        } else {
            Err(format!(
                "project slug {slug:?}: 3-63 of a-z, 0-9 and '-', starting and ending with a letter or digit"
            ))
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["u-alice", "p-vision", "u-google-fan", "a.b_c"] {
            assert!(LogicalBucketName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "U-alice",
            "-ab",
            "ab-",
            "a b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(LogicalBucketName::parse(bad).is_err(), "{bad}");
        }
    }
}
