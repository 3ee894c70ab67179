//! S3 credentials from STS `AssumeRole`, narrowed by an inline session policy to one prefix of
//! one bucket: the role's own policy and the session policy both have to allow an action, so the
//! credentials can do no more than the session policy says, whatever the role holds.

use super::{VendError, VendScope, Vended};
use crate::signing::s3::ApiRequest;
use crate::signing::{BucketName, Method, S3Signer};
use serde::Deserialize;
use std::time::Duration;
use time::OffsetDateTime;

/// STS's own bounds on `DurationSeconds` (a role's maximum session may be lower).
pub const MIN_DURATION: Duration = Duration::from_secs(900);
pub const MAX_DURATION: Duration = Duration::from_secs(12 * 3600);

/// AWS's limit on a session policy, as plain text.
const MAX_POLICY_BYTES: usize = 2048;

/// Calls `AssumeRole` at one STS endpoint, signed with the backend's credentials.
#[derive(Debug)]
pub struct AssumeRole {
    http: reqwest::Client,
    /// The signer, for service `sts`, at the STS endpoint.
    signer: S3Signer,
    role_arn: String,
}

impl AssumeRole {
    /// `signer` signs for `sts` at the STS endpoint (see [`S3Signer::for_service`]).
    pub fn new(signer: S3Signer, role_arn: String, http: reqwest::Client) -> Self {
        Self {
            http,
            signer,
            role_arn,
        }
    }

    /// Credentials for `scope`, for `lifetime` (900 s to 12 h), in a session named `session`
    /// (`[\w+=,.@-]{2,64}`: the caller builds it from a hash, never from an identity string).
    pub async fn vend(
        &self,
        scope: &VendScope<'_>,
        lifetime: Duration,
        session: &str,
    ) -> Result<Vended, VendError> {
        let policy = session_policy(scope)?;
        let body = form(&[
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", &self.role_arn),
            ("RoleSessionName", session),
            ("DurationSeconds", &lifetime.as_secs().to_string()),
            ("Policy", &policy),
        ]);
        let payload = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            body.as_bytes(),
        ));
        let placeholder =
            BucketName::parse("sts").map_err(|e| VendError::Upstream(e.to_string()))?;
        let request = ApiRequest::new(Method::Post, placeholder, None)
            .header("content-type", "application/x-www-form-urlencoded");
        let signed = self
            .signer
            .authorize_path("/", &request, &payload, OffsetDateTime::now_utc())
            .map_err(|e| VendError::Upstream(format!("signing AssumeRole: {e}")))?;
        let mut call = self.http.post(&signed.url).body(body);
        for (name, value) in &signed.headers {
            call = call.header(name, value);
        }
        let response = call
            .send()
            .await
            .map_err(|e| VendError::Upstream(format!("AssumeRole at {}: {e}", signed.url)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| VendError::Upstream(format!("AssumeRole answer: {e}")))?;
        if !status.is_success() {
            return Err(VendError::Upstream(format!(
                "AssumeRole answered {status}: {}",
                sts_error(&text)
            )));
        }
        parse_credentials(&text)
    }
}

/// The session policy for `scope`: objects under the prefix (read: get; read-write: also put,
/// delete and the multipart calls), and listing the bucket only under the prefix.
pub fn session_policy(scope: &VendScope<'_>) -> Result<String, VendError> {
    let prefix = scope.prefix;
    // `*`, `?` are wildcards in ARNs and StringLike; `$` starts a policy variable. A prefix
    // holding one would match names outside itself.
    if prefix.contains(['*', '?', '$']) {
        return Err(VendError::Unsupported(
            "an S3 session policy cannot name a prefix that holds '*', '?' or '$' (they are wildcards and variables there): ask for a prefix without them".into(),
        ));
    }
    let mut object_actions = vec!["s3:GetObject"];
    let mut bucket_actions = vec!["s3:ListBucket"];
    if scope.write {
        object_actions.extend([
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ]);
        bucket_actions.push("s3:ListBucketMultipartUploads");
    }
    let bucket = scope.bucket;
    let mut list = serde_json::json!({
        "Sid": "ListUnderPrefix",
        "Effect": "Allow",
        "Action": bucket_actions,
        "Resource": [format!("arn:aws:s3:::{bucket}")],
    });
    if !prefix.is_empty() {
        list["Condition"] =
            serde_json::json!({ "StringLike": { "s3:prefix": [format!("{prefix}*")] } });
    }
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ObjectsUnderPrefix",
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": [format!("arn:aws:s3:::{bucket}/{prefix}*")],
            },
            list,
        ],
    })
    .to_string();
    if policy.len() > MAX_POLICY_BYTES {
        return Err(VendError::Unsupported(format!(
            "the session policy for this prefix is {} bytes, above S3's {MAX_POLICY_BYTES}: ask for a shorter prefix",
            policy.len()
        )));
    }
    Ok(policy)
}

/// `application/x-www-form-urlencoded`.
fn form(fields: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResponse {
    assume_role_result: AssumeRoleResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResult {
    credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// Reads `<AssumeRoleResponse>`.
pub fn parse_credentials(xml: &str) -> Result<Vended, VendError> {
    let answer: AssumeRoleResponse = quick_xml::de::from_str(xml)
        .map_err(|e| VendError::Upstream(format!("AssumeRole answer: {e}")))?;
    let c = answer.assume_role_result.credentials;
    let expires_at = OffsetDateTime::parse(
        c.expiration.trim(),
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| {
        VendError::Upstream(format!(
            "AssumeRole answer: Expiration {:?}: {e}",
            c.expiration
        ))
    })?;
    Ok(Vended::S3 {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
        expires_at,
    })
}

/// The code and message of an STS `<ErrorResponse>`, or the start of whatever came instead.
fn sts_error(xml: &str) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ErrorResponse {
        error: Error,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Error {
        code: String,
        #[serde(default)]
        message: String,
    }
    match quick_xml::de::from_str::<ErrorResponse>(xml) {
        Ok(e) => format!("{}: {}", e.error.code, e.error.message),
        Err(_) => xml
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(400)
            .collect(),
    }
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
    fn read_policy_allows_get_under_the_prefix_and_lists_only_it() {
        let policy: serde_json::Value = serde_json::from_str(
            &session_policy(&scope("projects/p/shared/", false)).expect("policy"),
        )
        .expect("json");
        assert_eq!(
            policy["Statement"][0]["Action"],
            serde_json::json!(["s3:GetObject"])
        );
        assert_eq!(
            policy["Statement"][0]["Resource"],
            serde_json::json!(["arn:aws:s3:::data/projects/p/shared/*"])
        );
        assert_eq!(
            policy["Statement"][1]["Action"],
            serde_json::json!(["s3:ListBucket"])
        );
        assert_eq!(
            policy["Statement"][1]["Condition"]["StringLike"]["s3:prefix"],
            serde_json::json!(["projects/p/shared/*"])
        );
    }

    #[test]
    fn read_write_policy_adds_writes_and_multipart_and_nothing_on_other_buckets() {
        let text = session_policy(&scope("u/", true)).expect("policy");
        let policy: serde_json::Value = serde_json::from_str(&text).expect("json");
        let objects = policy["Statement"][0]["Action"].to_string();
        for action in [
            "PutObject",
            "DeleteObject",
            "AbortMultipartUpload",
            "ListMultipartUploadParts",
        ] {
            assert!(objects.contains(action), "{action} missing: {objects}");
        }
        assert!(!text.contains("s3:*") && !text.contains("\"*\""), "{text}");
    }

    #[test]
    fn wildcards_and_variables_in_a_prefix_are_refused() {
        // With `?` a grant on the literal "a?" would become a pattern matching "ab…" too.
        for prefix in ["a*", "a?b/", "${aws:username}/"] {
            assert!(
                matches!(
                    session_policy(&scope(prefix, false)),
                    Err(VendError::Unsupported(_))
                ),
                "{prefix}"
            );
        }
    }

    #[test]
    fn a_quote_in_a_prefix_stays_inside_its_json_string() {
        let text = session_policy(&scope("x\"],\"Effect\":\"Allow/", false)).expect("policy");
        let policy: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(policy["Statement"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            policy["Statement"][0]["Resource"][0],
            "arn:aws:s3:::data/x\"],\"Effect\":\"Allow/*"
        );
    }

    #[test]
    fn too_long_a_policy_is_refused() {
        let long = format!("{}/", "a".repeat(1000));
        assert!(matches!(
            session_policy(&scope(&long, false)),
            Err(VendError::Unsupported(_))
        ));
    }

    #[test]
    fn reads_an_assume_role_answer_and_an_error() {
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>secret</SecretAccessKey>
      <SessionToken>token</SessionToken>
      <Expiration>2026-11-24T12:15:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;
        match parse_credentials(xml).expect("credentials") {
            Vended::S3 {
                access_key_id,
                session_token,
                expires_at,
                ..
            } => {
                assert_eq!(access_key_id, "ASIAEXAMPLE");
                assert_eq!(session_token, "token");
                assert_eq!(expires_at.unix_timestamp(), 1_795_522_500);
            }
            other => panic!("{other:?}"),
        }
        let error = r#"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>"#;
        assert_eq!(sts_error(error), "AccessDenied: not allowed");
    }
}
