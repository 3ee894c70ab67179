//! Names users give: logical buckets, projects, and the object names and prefixes of the API,
//! each a type parsed once at the edge. Identity and object strings are hostile: what could
//! reach a path, a log line or the store as something else is refused here.

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

/// The path segment a subject becomes in a personal bucket's backend prefix: every byte
/// outside `A-Z a-z 0-9 - _` percent-encoded (`%2F`, `%2E`, `%25`…). So it holds no `/`, is no
/// `.` or `..`, and no two subjects encode alike (the encoding is reversible); Keycloak's UUID
/// subjects are left as they are.
pub fn owner_segment(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for byte in subject.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// At most this many bytes of UTF-8 in an object name or prefix (GCS's limit; the backend
/// prefix is checked again with the name at signing).
pub const MAX_OBJECT_KEY_BYTES: usize = 1024;

/// Why `text` cannot be stored or used as a name: it holds a C0 or C1 control character (NUL,
/// CR, LF, ESC, DEL, U+0080–U+009F…), which would break the store, logs or headers.
pub fn control_character(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// Checks a free-text field (a project's name, a metadata value…): `None` when it may be
/// stored, else why not.
pub fn check_text(field: &str, text: &str) -> Result<(), String> {
    match control_character(text) {
        Some(c) => Err(format!(
            "{field}: control characters are not allowed (found U+{:04X})",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// The rules object names and prefixes share: no control characters and no `.` or `..` path
/// segments (browsers, curl and proxies resolve those, so a URL signed for one name would
/// fetch another).
fn check_key(what: &str, key: &str) -> Result<(), String> {
    if key.len() > MAX_OBJECT_KEY_BYTES {
        return Err(format!(
            "{what}: at most {MAX_OBJECT_KEY_BYTES} bytes of UTF-8"
        ));
    }
    if let Some(c) = control_character(key) {
        return Err(format!(
            "{what}: control characters are not allowed (found U+{:04X})",
            u32::from(c)
        ));
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "{what}: \".\" and \"..\" path segments are not allowed"
        ));
    }
    Ok(())
}

/// An object name as the API takes it, within a logical bucket: 1–1024 bytes, no control
/// characters, no `.` or `..` segments.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks the rules.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("object name: must not be empty".into());
        }
        check_key("object name", name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An object prefix as the API takes it (grants, listings, manifests, upload policies): at
/// most 1024 bytes, no control characters, no `.` or `..` segments; empty is the whole bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectPrefix(String);

impl ObjectPrefix {
    /// Checks the rules.
    pub fn parse(prefix: &str) -> Result<Self, String> {
        check_key("prefix", prefix)?;
        Ok(Self(prefix.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_segments_are_one_segment_and_never_collide() {
        for (subject, segment) in [
            ("alice", "alice"),
            (
                "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            ),
            ("alice/x", "alice%2Fx"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("a%2Fx", "a%252Fx"),
            ("{project}", "%7Bproject%7D"),
            ("é", "%C3%A9"),
            ("a b", "a%20b"),
            ("", ""),
        ] {
            assert_eq!(owner_segment(subject), segment, "{subject:?}");
        }
        // Distinct subjects, distinct segments, none with a '/' or a dot segment.
        let subjects = [
            "alice",
            "alice/x",
            "alice%2Fx",
            "alice.x",
            "alice%2Ex",
            "ALICE",
            "alice\0",
        ];
        let segments: std::collections::BTreeSet<String> =
            subjects.iter().map(|s| owner_segment(s)).collect();
        assert_eq!(segments.len(), subjects.len());
        assert!(segments.iter().all(|s| !s.contains(['/', '.'])));
    }

    #[test]
    fn object_keys_and_prefixes() {
        for ok in [
            "a",
            "a/b.txt",
            "photos/2026/cat.png",
            ".hidden",
            "a/.hidden/b",
            "a/..b",
            "...",
            "é/ü",
            "a//b",
        ] {
            assert!(ObjectKey::parse(ok).is_ok(), "{ok:?}");
            assert!(ObjectPrefix::parse(ok).is_ok(), "{ok:?}");
        }
        assert!(ObjectPrefix::parse("").is_ok(), "the whole bucket");
        assert!(ObjectKey::parse("").is_err());
        for bad in [
            ".",
            "..",
            "a/../b",
            "a/./b",
            "../x",
            "x/..",
            "x/.",
            "./x",
            "a\0b",
            "a\nb",
            "a\rb",
            "\u{1b}[31m",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{9f}",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
            assert!(ObjectPrefix::parse(bad).is_err(), "{bad:?}");
        }
        let long = "x".repeat(MAX_OBJECT_KEY_BYTES + 1);
        assert!(ObjectKey::parse(&long).is_err());
        assert!(ObjectPrefix::parse(&long).is_err());
        assert!(ObjectKey::parse(&"x".repeat(MAX_OBJECT_KEY_BYTES)).is_ok());
        assert!(check_text("name", "Vision ✓").is_ok());
        assert!(check_text("name", "a\0").is_err());
    }

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
