//! `credentials`: asks the broker for short-lived credentials (`POST /v1/credentials`) and
//! prints them the way a tool reads them, or serves them on a local token endpoint.
//!
//! - `credential-process`: the JSON of an AWS `credential_process` (AWS CLI, boto3, rclone and
//!   mountpoint-s3 run the command again before `Expiration`, so they refresh by themselves);
//! - `env`: `export` lines for a shell (`eval "$(storage-broker credentials … --format env)"`);
//! - `token`: `{access_token, token_type, expires_in}`, what clients that read an OAuth token
//!   from a file or URL take (gcsfuse's `--token-url`);
//! - `json`: the broker's answer as it is.
//!
//! `--serve ADDR` answers every GET on `ADDR` with the `token` JSON of current credentials,
//! fetched again when a quarter of their life is left: gcsfuse's `--token-url` polls it.

use super::fetch::client::{Broker, ClientError};
use super::fetch::token::Token;
use crate::api::{
    CredentialsRequest, CredentialsResponse, DEFAULT_CREDENTIALS_DURATION as DEFAULT_DURATION,
};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// How to print the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// AWS credential_process JSON (S3 buckets).
    CredentialProcess,
    /// Shell `export` lines.
    Env,
    /// OAuth access-token JSON (GCS buckets).
    Token,
    /// The broker's answer.
    Json,
}

/// What access the credentials give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    Read,
    ReadWrite,
}

/// Arguments of `credentials`.
#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// The broker's base URL, e.g. https://storage-broker.example.com.
    #[arg(long, value_name = "URL", env = "STORAGE_BROKER_URL")]
    broker: String,
    /// A file holding the bearer token, read at every fetch (a sidecar may refresh it).
    /// Without it, the token is read from STORAGE_BROKER_TOKEN.
    #[arg(long, value_name = "F")]
    token_file: Option<PathBuf>,
    /// The logical bucket.
    #[arg(long, value_name = "B")]
    bucket: String,
    /// The object prefix the credentials reach (default: the whole bucket).
    #[arg(long, value_name = "P", default_value = "")]
    prefix: String,
    #[arg(long, value_enum, default_value = "read")]
    access: AccessArg,
    /// Lifetime in seconds (default: the broker's, 900). AWS tools run credential_process again
    /// on every call when less than 15 minutes are left: give 3600 for them.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Serve the token JSON on this address (e.g. 127.0.0.1:8765) instead of printing once.
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
}

/// The environment variable holding the token when no file is given.
const TOKEN_ENV: &str = "STORAGE_BROKER_TOKEN";

/// Runs `credentials`.
pub fn credentials(args: CredentialsArgs) -> Result<(), String> {
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        match args.serve {
            Some(addr) => serve(args, addr).await,
            None => {
                let answer = fetch(&args).await?;
                print!("{}", render(&answer, args.format)?);
                Ok(())
            }
        }
    })
}

/// Asks the broker, reading the token afresh.
async fn fetch(args: &CredentialsArgs) -> Result<CredentialsResponse, String> {
    let token = match &args.token_file {
        Some(file) => Token::read(file)?,
        None => Token::from_env(TOKEN_ENV)?,
    };
    let broker = Broker::new(&args.broker, token.secret.clone());
    let request = CredentialsRequest {
        bucket: args.bucket.clone(),
        prefix: args.prefix.clone(),
        access: match args.access {
            AccessArg::Read => crate::api::Access::Read,
            AccessArg::ReadWrite => crate::api::Access::ReadWrite,
        },
        duration: args.duration,
    };
    broker.credentials(&request).await.map_err(|e| match e {
        ClientError::Unreachable(e) => format!("cannot reach the broker at {}: {e}", broker.base()),
        ClientError::TokenRefused => format!(
            "the broker refused the token in {} (expired, revoked, wrong audience or issuer); get a new token and run the same command again",
            token.file
        ),
        ClientError::Refused { status, detail } => {
            format!("the broker refused: {status}: {detail}")
        }
        ClientError::Broken(e) | ClientError::Garbled(e) => {
            format!("the broker's answer is unusable: {e}")
        }
    })
}

/// The credentials in `format`, ending with a newline.
pub fn render(answer: &CredentialsResponse, format: Format) -> Result<String, String> {
    let expires_at = OffsetDateTime::parse(
        &answer.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("the broker's expires_at {:?}: {e}", answer.expires_at))?;
    let kind = &answer.kind;
    let text = match format {
        Format::Json => serde_json::to_string(answer).map_err(|e| e.to_string())?,
        Format::CredentialProcess => {
            let s3 = answer.s3.as_ref().ok_or_else(|| {
                format!("credential-process is for S3 buckets; this one is on {kind}: use --format token or env")
            })?;
            serde_json::json!({
                "Version": 1,
                "AccessKeyId": s3.access_key_id,
                "SecretAccessKey": s3.secret_access_key,
                "SessionToken": s3.session_token,
                "Expiration": answer.expires_at,
            })
            .to_string()
        }
        Format::Token => {
            let gcs = answer.gcs.as_ref().ok_or_else(|| {
                format!("token is for GCS buckets; this one is on {kind}: use --format credential-process or env")
            })?;
            token_json(&gcs.access_token, expires_at)
        }
        Format::Env => {
            let mut lines = vec![
                ("STORAGE_BROKER_KIND", kind.clone()),
                ("STORAGE_BROKER_ENDPOINT", answer.storage.endpoint.clone()),
                ("STORAGE_BROKER_BUCKET", answer.storage.bucket.clone()),
                ("STORAGE_BROKER_PREFIX", answer.storage.prefix.clone()),
                ("STORAGE_BROKER_EXPIRES_AT", answer.expires_at.clone()),
            ];
            if let Some(s3) = &answer.s3 {
                lines.extend([
                    ("AWS_ACCESS_KEY_ID", s3.access_key_id.clone()),
                    ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key.clone()),
                    ("AWS_SESSION_TOKEN", s3.session_token.clone()),
                    ("AWS_ENDPOINT_URL_S3", answer.storage.endpoint.clone()),
                ]);
                if let Some(region) = &answer.storage.region {
                    lines.push(("AWS_REGION", region.clone()));
                }
            }
            if let Some(gcs) = &answer.gcs {
                lines.push(("GOOGLE_OAUTH_ACCESS_TOKEN", gcs.access_token.clone()));
                lines.push(("CLOUDSDK_AUTH_ACCESS_TOKEN", gcs.access_token.clone()));
            }
            if let Some(azure) = &answer.azure {
                lines.push(("AZURE_STORAGE_SAS_TOKEN", azure.sas_token.clone()));
                lines.push(("STORAGE_BROKER_CONTAINER_URL", azure.container_url.clone()));
            }
            lines
                .into_iter()
                .map(|(name, value)| format!("export {name}={}", shell_quote(&value)))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    Ok(text + "\n")
}

/// `{access_token, token_type, expires_in, expiry}`: gcsfuse's `--token-url` reads
/// `access_token` and `expires_in` (or `expiry`), and refreshes before the end.
fn token_json(access_token: &str, expires_at: OffsetDateTime) -> String {
    let left = (expires_at - OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": left,
        "expiry": crate::signing::rfc3339_seconds(expires_at),
    })
    .to_string()
}

/// `value` in single quotes, as a POSIX shell reads it back unchanged.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Serves the token JSON of current credentials on `addr`, until interrupted.
async fn serve(args: CredentialsArgs, addr: std::net::SocketAddr) -> Result<(), String> {
    // Fail at start on what would fail every request.
    let first = fetch(&args).await?;
    if first.gcs.is_none() {
        return Err(format!(
            "--serve answers OAuth tokens, for GCS buckets; this one is on {}: use --format credential-process",
            first.kind
        ));
    }
    let args = Arc::new(args);
    let current = Arc::new(Mutex::new(first));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!(
        "storage-broker: serving tokens for {}/{} at http://{addr}/",
        args.bucket, args.prefix
    );
    let app = axum::Router::new().fallback(axum::routing::get(move || {
        let (args, current) = (args.clone(), current.clone());
        async move {
            let mut held = current.lock().await;
            let life = args.duration.unwrap_or(DEFAULT_DURATION);
            if needs_refresh(&held, life) {
                match fetch(&args).await {
                    Ok(fresh) => *held = fresh,
                    Err(e) => {
                        eprintln!("storage-broker: {e}");
                        return Err((axum::http::StatusCode::BAD_GATEWAY, e));
                    }
                }
            }
            let expires_at = OffsetDateTime::parse(
                &held.expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| (axum::http::StatusCode::BAD_GATEWAY, e.to_string()))?;
            let token = held
                .gcs
                .as_ref()
                .map(|g| g.access_token.clone())
                .unwrap_or_default();
            Ok((
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                token_json(&token, expires_at),
            ))
        }
    }));
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::app::shutdown_signal())
        .await
        .map_err(|e| format!("serving tokens: {e}"))
}

/// Whether less than a quarter of the credentials' life (`life` seconds, as asked), or a
/// minute, is left.
fn needs_refresh(held: &CredentialsResponse, life: u64) -> bool {
    let Ok(expires_at) = OffsetDateTime::parse(
        &held.expires_at,
        &time::format_description::well_known::Rfc3339,
    ) else {
        return true;
    };
    let left = (expires_at - OffsetDateTime::now_utc()).whole_seconds();
    left < 60.max(i64::try_from(life / 4).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Access, S3Credentials, StorageLocation};

    fn s3_answer() -> CredentialsResponse {
        CredentialsResponse {
            kind: "s3".into(),
            bucket: "p-vision".into(),
            prefix: "shared/".into(),
            access: Access::Read,
            expires_at: "2026-11-24T12:15:00Z".into(),
            storage: StorageLocation {
                endpoint: "http://127.0.0.1:8333".into(),
                region: Some("us-east-1".into()),
                url_style: Some("path".into()),
                bucket: "data".into(),
                prefix: "projects/vision/shared/".into(),
            },
            s3: Some(S3Credentials {
                access_key_id: "ASIA1".into(),
                secret_access_key: "se'cret".into(),
                session_token: "tok".into(),
            }),
            gcs: None,
            azure: None,
        }
    }

    #[test]
    fn credential_process_json_is_what_aws_tools_read() {
        let text = render(&s3_answer(), Format::CredentialProcess).expect("render");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "Version": 1, "AccessKeyId": "ASIA1", "SecretAccessKey": "se'cret",
                "SessionToken": "tok", "Expiration": "2026-11-24T12:15:00Z",
            })
        );
        assert!(render(&s3_answer(), Format::Token).is_err());
    }

    #[test]
    fn env_lines_are_quoted_for_the_shell() {
        let text = render(&s3_answer(), Format::Env).expect("render");
        assert!(
            text.contains("export AWS_SECRET_ACCESS_KEY='se'\\''cret'\n"),
            "{text}"
        );
        assert!(
            text.contains("export AWS_ENDPOINT_URL_S3='http://127.0.0.1:8333'"),
            "{text}"
        );
        assert!(
            text.contains("export STORAGE_BROKER_PREFIX='projects/vision/shared/'"),
            "{text}"
        );
    }
}
