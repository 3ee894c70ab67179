//! Google credentials: an access token downscoped by a Credential Access Boundary. The broker
//! first mints a token for its own service account with exactly the lifetime wanted (IAM
//! Credentials `generateAccessToken`, the role keyless signing already needs), then exchanges it
//! at Google's STS for one the boundary narrows: a downscoped token lives as long as its
//! source, so this is what makes its lifetime the broker's choice.
//!
//! The exchange is sent as `google-auth`'s `downscoped.Credentials` sends it, byte for byte
//! (`tests/api/credentials.rs` compares the two for the same boundary).

use super::{VendError, VendScope, Vended};
use crate::cloud::{MetadataServer, ServiceAccountTokens};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// `generateAccessToken`'s longest lifetime without an organization policy extending it.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Google's STS token endpoint.
pub const GOOGLE_STS_URL: &str = "https://sts.googleapis.com/v1/token";

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The broker's own Google identity.
pub enum SourceTokens {
    /// The service-account key the broker signs with.
    ServiceAccount(ServiceAccountTokens),
    /// Workload Identity.
    Metadata(Arc<MetadataServer>),
}

impl SourceTokens {
    async fn access_token(&self) -> Result<String, VendError> {
        match self {
            Self::ServiceAccount(tokens) => tokens.access_token().await,
            Self::Metadata(metadata) => metadata.access_token().await,
        }
        .map_err(|e| VendError::Upstream(format!("the broker's own token: {e}")))
    }
}

/// Mints downscoped tokens as `email`.
pub struct Downscoper {
    http: reqwest::Client,
    source: SourceTokens,
    email: String,
    /// IAM Credentials' base URL.
    iam_url: String,
    /// The STS token endpoint.
    sts_url: String,
}

impl std::fmt::Debug for Downscoper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downscoper")
            .field("email", &self.email)
            .field("sts_url", &self.sts_url)
            .finish_non_exhaustive()
    }
}

impl Downscoper {
    pub fn new(
        source: SourceTokens,
        email: String,
        iam_url: &str,
        sts_url: &str,
        http: reqwest::Client,
    ) -> Self {
        Self {
            http,
            source,
            email,
            iam_url: iam_url.trim_end_matches('/').to_owned(),
            sts_url: sts_url.to_owned(),
        }
    }

    /// A token for `scope` that ends in `lifetime`.
    pub async fn vend(
        &self,
        scope: &VendScope<'_>,
        lifetime: Duration,
    ) -> Result<Vended, VendError> {
        let options = options(scope);
        let (source, source_expiry) = self.short_lived_token(lifetime).await?;
        let body = exchange_body(&source, &options);
        let response = self
            .http
            .post(&self.sts_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| VendError::Upstream(format!("token exchange at {}: {e}", self.sts_url)))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(VendError::Upstream(format!(
                "token exchange answered {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        #[derive(Deserialize)]
        struct Exchanged {
            access_token: String,
            expires_in: Option<i64>,
        }
        let exchanged: Exchanged = response
            .json()
            .await
            .map_err(|e| VendError::Upstream(format!("token exchange answer: {e}")))?;
        // A downscoped token ends with its source; never claim more than the source had.
        let expires_at = exchanged
            .expires_in
            .map(|s| OffsetDateTime::now_utc() + time::Duration::seconds(s))
            .map_or(source_expiry, |t| t.min(source_expiry));
        Ok(Vended::Gcs {
            access_token: exchanged.access_token,
            expires_at,
        })
    }

    /// A token of the broker's service account that ends in `lifetime`, and its end.
    async fn short_lived_token(
        &self,
        lifetime: Duration,
    ) -> Result<(String, OffsetDateTime), VendError> {
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{}:generateAccessToken",
            self.iam_url, self.email
        );
        let body = serde_json::json!({
            "scope": [CLOUD_PLATFORM],
            "lifetime": format!("{}s", lifetime.as_secs()),
        });
        let response = self
            .http
            .post(&url)
            .bearer_auth(self.source.access_token().await?)
            .json(&body)
            .send()
            .await
            .map_err(|e| VendError::Upstream(format!("generateAccessToken: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(VendError::Upstream(format!(
                "generateAccessToken answered {status} (the broker's service account needs Service Account Token Creator on itself): {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Generated {
            access_token: String,
            expire_time: String,
        }
        let generated: Generated = response
            .json()
            .await
            .map_err(|e| VendError::Upstream(format!("generateAccessToken answer: {e}")))?;
        let expires_at = OffsetDateTime::parse(
            &generated.expire_time,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| VendError::Upstream(format!("generateAccessToken expireTime: {e}")))?;
        Ok((generated.access_token, expires_at))
    }
}

/// The Credential Access Boundary for `scope`, as the JSON `options` of the exchange, written
/// as Python's `json.dumps` writes google-auth's `CredentialAccessBoundary.to_json()`: one rule
/// on the bucket, `objectViewer` (read) or `objectUser` (read-write), available only for objects
/// under the prefix and for listings of it.
pub fn options(scope: &VendScope<'_>) -> String {
    let role = if scope.write {
        "inRole:roles/storage.objectUser"
    } else {
        "inRole:roles/storage.objectViewer"
    };
    let resource = format!(
        "//storage.googleapis.com/projects/_/buckets/{}",
        scope.bucket
    );
    let mut out =
        String::from(r#"{"accessBoundary": {"accessBoundaryRules": [{"availablePermissions": ["#);
    write_python_string(role, &mut out);
    out.push_str(r#"], "availableResource": "#);
    write_python_string(&resource, &mut out);
    if !scope.prefix.is_empty() {
        let objects = cel_string(&format!(
            "projects/_/buckets/{}/objects/{}",
            scope.bucket, scope.prefix
        ));
        let listed = cel_string(scope.prefix);
        let expression = format!(
            "resource.name.startsWith({objects}) || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith({listed})"
        );
        out.push_str(r#", "availabilityCondition": {"expression": "#);
        write_python_string(&expression, &mut out);
        out.push('}');
    }
    out.push_str("}]}}");
    out
}

/// `value` as a CEL string literal: single-quoted, with `\` and `'` escaped, so that no prefix
/// can end the literal and add to the expression. (Control characters never reach here: object
/// names and prefixes with them are refused at the API.)
pub fn cel_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The form body of the exchange, as google-auth's `sts.Client.exchange_token` writes it: its
/// fields in its order, `options` as `json.dumps` writes it, percent-encoded once by
/// `urllib.parse.quote` and then again with the rest of the form.
pub fn exchange_body(subject_token: &str, options: &str) -> String {
    let options = percent_encoding::utf8_percent_encode(options, PY_QUOTE).to_string();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", TOKEN_EXCHANGE)
        .append_pair("requested_token_type", ACCESS_TOKEN)
        .append_pair("subject_token", subject_token)
        .append_pair("subject_token_type", ACCESS_TOKEN)
        .append_pair("options", &options);
    form.finish()
}

/// What `urllib.parse.quote` leaves alone: letters, digits, `_.-~` and `/`.
const PY_QUOTE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// `s` as Python's `json.dumps` writes a string by default: every non-ASCII character as
/// `\uXXXX`.
fn write_python_string(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(prefix: &str, write: bool) -> VendScope<'_> {
        VendScope {
            bucket: "data",
            prefix,
            write,
        }
    }

    #[test]
    fn read_is_object_viewer_under_the_prefix_and_its_listings() {
        let options: serde_json::Value =
            serde_json::from_str(&options(&scope("projects/p/shared/", false))).expect("json");
        let rule = &options["accessBoundary"]["accessBoundaryRules"][0];
        assert_eq!(
            rule["availablePermissions"],
            serde_json::json!(["inRole:roles/storage.objectViewer"])
        );
        assert_eq!(
            rule["availableResource"],
            "//storage.googleapis.com/projects/_/buckets/data"
        );
        assert_eq!(
            rule["availabilityCondition"]["expression"],
            "resource.name.startsWith('projects/_/buckets/data/objects/projects/p/shared/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('projects/p/shared/')"
        );
    }

    #[test]
    fn read_write_is_object_user_and_a_whole_bucket_has_no_condition() {
        let options: serde_json::Value =
            serde_json::from_str(&options(&scope("", true))).expect("json");
        let rule = &options["accessBoundary"]["accessBoundaryRules"][0];
        assert_eq!(
            rule["availablePermissions"],
            serde_json::json!(["inRole:roles/storage.objectUser"])
        );
        assert!(rule.get("availabilityCondition").is_none());
    }

    #[test]
    fn a_prefix_cannot_end_its_cel_literal() {
        let hostile = "x') || true || ('";
        let options: serde_json::Value =
            serde_json::from_str(&options(&scope(hostile, false))).expect("json");
        let expression = options["accessBoundary"]["accessBoundaryRules"][0]
            ["availabilityCondition"]["expression"]
            .as_str()
            .expect("expression")
            .to_owned();
        assert!(
            expression.starts_with(
                "resource.name.startsWith('projects/_/buckets/data/objects/x\\') || true || (\\'')"
            ),
            "{expression}"
        );
        assert_eq!(cel_string("a\\'b"), "'a\\\\\\'b'");
    }

    #[test]
    fn json_is_written_as_python_writes_it() {
        assert_eq!(
            options(&scope("é😀\"/", false))
                .split("\"expression\": ")
                .nth(1),
            Some(
                r#""resource.name.startsWith('projects/_/buckets/data/objects/\u00e9\ud83d\ude00\"/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('\u00e9\ud83d\ude00\"/')"}}]}}"#
            )
        );
    }
}
