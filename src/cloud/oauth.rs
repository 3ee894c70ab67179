//! OAuth access tokens for a service account, from its RSA key (the JWT-bearer grant, RFC 7523),
//! for the storage control plane. The key is whatever the broker signs URLs with at the moment
//! ([`KeySource`]): it is read from its file once, and a rotated key reaches these tokens as it
//! reaches the URLs. A token is reused until five minutes before it expires, or until the key
//! changes.

use super::CloudError;
use crate::signing::{Algorithm, Signer};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Google's token endpoint, unless the key file names another.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// The key that signs right now.
pub type KeySource = Arc<dyn Fn() -> Option<Arc<dyn Signer>> + Send + Sync>;

/// Mints and caches access tokens.
pub struct ServiceAccountTokens {
    http: reqwest::Client,
    token_uri: String,
    key: KeySource,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: String,
    until: Instant,
    /// The key that minted it.
    key: Arc<dyn Signer>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn same_key(a: &Arc<dyn Signer>, b: &Arc<dyn Signer>) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<()>(), Arc::as_ptr(b).cast::<()>())
}

impl ServiceAccountTokens {
    /// Tokens from `token_uri` for the RSA key `key` gives.
    pub fn new(key: KeySource, token_uri: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            token_uri: token_uri.to_owned(),
            key,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token.
    pub async fn access_token(&self) -> Result<String, CloudError> {
        let key = (self.key)()
            .filter(|k| k.identity().algorithm == Algorithm::RsaSha256)
            .ok_or_else(|| CloudError("no RSA service-account key to get tokens with".into()))?;
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.until
            && same_key(&c.key, &key)
        {
            return Ok(c.token.clone());
        }
        let assertion = self.assertion(key.as_ref())?;
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let response = self
            .http
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            // The assertion is base64url and dots: nothing in it needs escaping.
            .body(format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            ))
            .send()
            .await
            .map_err(|e| CloudError(format!("token request to {}: {e}", self.token_uri)))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CloudError(format!(
                "token request to {} answered {status}: {}",
                self.token_uri,
                body.chars().take(300).collect::<String>()
            )));
        }
        let token: Token = response
            .json()
            .await
            .map_err(|e| CloudError(format!("token answer from {}: {e}", self.token_uri)))?;
        let until = Instant::now() + Duration::from_secs(token.expires_in.saturating_sub(300));
        *cached = Some(Cached {
            token: token.access_token.clone(),
            until,
            key,
        });
        Ok(token.access_token)
    }

    /// The signed JWT that asks for a token: RS256 over `header.claims`, by the key itself.
    fn assertion(&self, key: &dyn Signer) -> Result<String, CloudError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        let claims = serde_json::json!({
            "iss": key.identity().credential_id, "aud": self.token_uri, "scope": SCOPE,
            "iat": now, "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // RSASSA-PKCS1-v1_5 with SHA-256 is RS256; the date matters to HMAC keys only.
        let signature = key
            .sign("", signing_input.as_bytes())
            .map_err(|e| CloudError(format!("signing the token request: {e}")))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}
