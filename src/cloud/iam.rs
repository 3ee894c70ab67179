//! Keyless signing: the IAM Credentials `signBlob` API signs as the service account, with an
//! access token from the metadata server. Calls are bounded (a semaphore shared by every request
//! of the process) and retried with exponential backoff on 429, 5xx and transport errors.

use super::metadata::MetadataServer;
use crate::signing::SigningError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Attempts per signature, the first included.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Signs blobs as `email` through IAM Credentials at `base`.
#[derive(Debug)]
pub struct IamSigner {
    http: reqwest::Client,
    base: String,
    email: String,
    metadata: Arc<MetadataServer>,
    permits: Semaphore,
}

impl IamSigner {
    /// At most `concurrency` signBlob calls in flight at once.
    pub fn new(
        base: &str,
        email: String,
        metadata: Arc<MetadataServer>,
        http: reqwest::Client,
        concurrency: usize,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            email,
            metadata,
            permits: Semaphore::new(concurrency.max(1)),
        }
    }

    /// The service account that signs.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The RSA-SHA256 signature of `payload` by the service account's Google-managed key.
    pub async fn sign_blob(&self, payload: &[u8]) -> Result<Vec<u8>, SigningError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SigningError::Unavailable("signing is shutting down".into()))?;
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{}:signBlob",
            self.base, self.email
        );
        let body = serde_json::json!({ "payload": STANDARD.encode(payload) });
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let token = match self.metadata.access_token().await {
                Ok(token) => token,
                Err(err) => {
                    last = err.to_string();
                    continue;
                }
            };
            let response = match self
                .http
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
            {
                Ok(response) => response,
                Err(err) => {
                    last = format!("signBlob: {err}");
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Signed {
                    signed_blob: String,
                }
                let signed: Signed = response
                    .json()
                    .await
                    .map_err(|e| SigningError::Unavailable(format!("signBlob answer: {e}")))?;
                return STANDARD
                    .decode(signed.signed_blob)
                    .map_err(|e| SigningError::Unavailable(format!("signBlob answer: {e}")));
            }
            let text = response.text().await.unwrap_or_default();
            last = format!(
                "signBlob answered {status}: {}",
                text.chars().take(200).collect::<String>()
            );
            match status.as_u16() {
                401 => self.metadata.forget_token().await,
                429 | 500 | 502 | 503 | 504 => {}
                // 400, 403 (no Token Creator role), 404: retrying will not help.
                _ => break,
            }
        }
        tracing::warn!(error = %last, "keyless signing failed");
        Err(SigningError::Unavailable(last))
    }
}

/// Between half and all of `backoff`, so that retries of many requests spread out.
fn jitter(backoff: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
    backoff / 2 + backoff * u32::from(byte[0]) / 512
}
