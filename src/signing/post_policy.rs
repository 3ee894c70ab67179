//! V4 POST policies for HTML form uploads
//! (<https://cloud.google.com/storage/docs/authentication/signatures#policy-document>).

use super::endpoint::{Endpoint, UrlStyle};
use super::expiry::{Stamp, rfc3339_seconds};
use super::{BucketName, Expiry, ObjectName, SigningError, SigningIdentity};
use base64::Engine;
use std::fmt::Write;
use time::OffsetDateTime;

/// The object name(s) a form may upload to.
#[derive(Clone, Debug)]
pub enum PostKey {
    /// Exactly this object.
    Exact(ObjectName),
    /// Any object whose name starts with this prefix; the form's `key` field is
    /// `PREFIX${filename}`, which the browser fills with the chosen file's name.
    Prefix(String),
}

/// A policy condition beyond the exact-match fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `["starts-with", "$FIELD", PREFIX]`.
    StartsWith { field: String, prefix: String },
    /// `["content-length-range", MIN, MAX]` in bytes.
    ContentLengthRange { min: u64, max: u64 },
}

/// What a POST policy allows.
#[derive(Clone, Debug)]
pub struct PostPolicyRequest {
    pub bucket: BucketName,
    pub key: PostKey,
    pub expiry: Expiry,
    /// Form fields the upload must carry exactly (e.g. `content-type`, `x-goog-meta-*`,
    /// `success_action_status`). Fields named `x-ignore-*` are left out: GCS ignores them, so a
    /// form may carry them unsigned.
    pub fields: Vec<(String, String)>,
    pub conditions: Vec<Condition>,
}

/// A signed form: where to POST and the fields to send with the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostPolicy {
    pub url: String,
    /// In the order a form should carry them; `file` goes last.
    pub fields: Vec<(String, String)>,
    pub expires_at: OffsetDateTime,
}

/// A policy document waiting for its signature.
#[derive(Clone, Debug)]
pub struct PreparedPostPolicy {
    url: String,
    fields: Vec<(String, String)>,
    policy: String,
    date: String,
    expires_at: OffsetDateTime,
}

impl PreparedPostPolicy {
    /// The base64 policy document: what the signer signs.
    pub fn string_to_sign(&self) -> &str {
        &self.policy
    }

    /// The credential scope's date, `YYYYMMDD`.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// Adds the signature and policy fields.
    pub fn finish(self, signature: &[u8]) -> PostPolicy {
        let mut fields = self.fields;
        fields.push(("x-goog-signature".to_owned(), hex::encode(signature)));
        fields.push(("policy".to_owned(), self.policy));
        PostPolicy {
            url: self.url,
            fields,
            expires_at: self.expires_at,
        }
    }
}

/// Form fields the signer writes; a request may not set them.
const RESERVED_FIELDS: [&str; 8] = [
    "bucket",
    "key",
    "file",
    "policy",
    "x-goog-algorithm",
    "x-goog-credential",
    "x-goog-date",
    "x-goog-signature",
];

/// Builds the policy document for `request`, signed at `at`.
pub fn prepare_post_policy(
    identity: &SigningIdentity,
    endpoint: &Endpoint,
    style: &UrlStyle,
    request: &PostPolicyRequest,
    at: OffsetDateTime,
) -> Result<PreparedPostPolicy, SigningError> {
    let stamp = Stamp::new(at)?;
    let location = endpoint.locate(style, &request.bucket);
    let mut url = format!("{}://{}/", location.scheme.as_str(), location.authority);
    if location.bucket_in_path {
        url.push_str(request.bucket.as_str());
        url.push('/');
    }

    let mut fields: Vec<(String, String)> = request
        .fields
        .iter()
        .filter(|(name, _)| !name.starts_with("x-ignore-"))
        .cloned()
        .collect();
    check_fields(&fields, &RESERVED_FIELDS)?;
    fields.sort();

    let credential = format!(
        "{}/{}/auto/storage/goog4_request",
        identity.credential_id,
        stamp.date()
    );
    let algorithm = identity.algorithm.as_str();
    let key = match &request.key {
        PostKey::Exact(name) => name.as_str().to_owned(),
        PostKey::Prefix(prefix) => format!("{prefix}${{filename}}"),
    };

    let mut doc = String::with_capacity(512);
    doc.push_str("{\"conditions\":[");
    let mut first = true;
    let mut sep = |doc: &mut String| {
        if !std::mem::take(&mut first) {
            doc.push(',');
        }
    };
    for condition in &request.conditions {
        sep(&mut doc);
        push_condition(&mut doc, condition, ",")?;
    }
    let signed_fields = fields
        .iter()
        .filter(|(name, _)| !name.starts_with("x-ignore-"));
    for (name, value) in signed_fields {
        sep(&mut doc);
        push_json_object(&mut doc, name, value);
    }
    sep(&mut doc);
    push_json_object(&mut doc, "bucket", request.bucket.as_str());
    sep(&mut doc);
    match &request.key {
        PostKey::Exact(_) => push_json_object(&mut doc, "key", &key),
        PostKey::Prefix(prefix) => push_starts_with(&mut doc, "key", prefix, ","),
    }
    for (name, value) in [
        ("x-goog-date", stamp.datetime()),
        ("x-goog-credential", &credential),
        ("x-goog-algorithm", algorithm),
    ] {
        sep(&mut doc);
        push_json_object(&mut doc, name, value);
    }
    let expires_at = stamp.at + time::Duration::seconds(i64::from(request.expiry.as_secs()));
    doc.push_str("],\"expiration\":");
    push_json_string(&mut doc, &rfc3339_seconds(expires_at));
    doc.push('}');

    let mut out_fields = Vec::with_capacity(fields.len() + 6);
    out_fields.push(("key".to_owned(), key));
    out_fields.extend(fields);
    out_fields.push(("x-goog-algorithm".to_owned(), algorithm.to_owned()));
    out_fields.push(("x-goog-credential".to_owned(), credential));
    out_fields.push(("x-goog-date".to_owned(), stamp.datetime().to_owned()));
    Ok(PreparedPostPolicy {
        url,
        fields: out_fields,
        policy: base64::engine::general_purpose::STANDARD.encode(doc),
        date: stamp.date().to_owned(),
        expires_at,
    })
}

/// Form field names a request gives: non-empty, without control characters, never one the
/// signer writes (`reserved`, compared without case).
pub(crate) fn check_fields(
    fields: &[(String, String)],
    reserved: &[&str],
) -> Result<(), SigningError> {
    for (name, _) in fields {
        let bad = |reason| SigningError::InvalidPolicyField {
            name: name.clone(),
            reason,
        };
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(bad("a field name is non-empty, without control characters"));
        }
        if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(bad("this field is set by the signer"));
        }
    }
    Ok(())
}

/// One condition as a JSON array, its elements separated by `sep`: `,` as Google's libraries
/// write policies, `, ` as botocore does.
pub(crate) fn push_condition(
    doc: &mut String,
    condition: &Condition,
    sep: &str,
) -> Result<(), SigningError> {
    match condition {
        Condition::StartsWith { field, prefix } => {
            push_starts_with(doc, field.strip_prefix('$').unwrap_or(field), prefix, sep);
        }
        Condition::ContentLengthRange { min, max } => {
            if min > max {
                return Err(SigningError::InvalidPolicyField {
                    name: "content-length-range".to_owned(),
                    reason: "the minimum is above the maximum",
                });
            }
            let _ = write!(doc, "[\"content-length-range\"{sep}{min}{sep}{max}]");
        }
    }
    Ok(())
}

/// `["starts-with", "$FIELD", PREFIX]`, its elements separated by `sep`.
pub(crate) fn push_starts_with(doc: &mut String, field: &str, prefix: &str, sep: &str) {
    doc.push_str("[\"starts-with\"");
    doc.push_str(sep);
    push_json_string(doc, &format!("${field}"));
    doc.push_str(sep);
    push_json_string(doc, prefix);
    doc.push(']');
}

fn push_json_object(doc: &mut String, name: &str, value: &str) {
    doc.push('{');
    push_json_string(doc, name);
    doc.push(':');
    push_json_string(doc, value);
    doc.push('}');
}

/// JSON string escaping as Google's client libraries sign it: ASCII only, everything else as
/// `\uXXXX` with lower-case hex (UTF-16 surrogate pairs above U+FFFF), DEL included; `/` is
/// not escaped.
pub(crate) fn push_json_string(doc: &mut String, s: &str) {
    doc.push('"');
    for c in s.chars() {
        match c {
            '"' => doc.push_str("\\\""),
            '\\' => doc.push_str("\\\\"),
            '\n' => doc.push_str("\\n"),
            '\r' => doc.push_str("\\r"),
            '\t' => doc.push_str("\\t"),
            '\u{8}' => doc.push_str("\\b"),
            '\u{c}' => doc.push_str("\\f"),
            ' '..='~' => doc.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(doc, "\\u{unit:04x}");
                }
            }
        }
    }
    doc.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_matches_python_json_dumps() {
        // python3 -c 'import json; print(json.dumps("a\"b\\c/é😀\n\x01\x7f"))'
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c/é😀\n\u{1}\u{7f}");
        assert_eq!(out, r#""a\"b\\c/\u00e9\ud83d\ude00\n\u0001\u007f""#);
    }
}
