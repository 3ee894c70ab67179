//! Credentials from the GCE/GKE metadata server (Workload Identity): the pod's service account
//! and OAuth access tokens for it, cached until a minute before they expire.

use super::CloudError;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The metadata server at `base` (`http://metadata.google.internal` on GKE).
pub struct MetadataServer {
    http: reqwest::Client,
    base: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for MetadataServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl MetadataServer {
    /// A client of the metadata server at `base`.
    pub fn new(base: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: Mutex::new(None),
        }
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, CloudError> {
        self.get_path(&format!("instance/service-accounts/default/{path}"))
            .await
    }

    async fn get_path(&self, path: &str) -> Result<reqwest::Response, CloudError> {
        let url = format!("{}/computeMetadata/v1/{path}", self.base);
        let response = self
            .http
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| CloudError(format!("metadata server {}: {e}", self.base)))?;
        if !response.status().is_success() {
            return Err(CloudError(format!(
                "metadata server {}: {path} answered {}",
                self.base,
                response.status()
            )));
        }
        Ok(response)
    }

    /// The e-mail of the service account the workload runs as.
    pub async fn email(&self) -> Result<String, CloudError> {
        let email = self
            .get("email")
            .await?
            .text()
            .await
            .map_err(|e| CloudError(format!("metadata server: {e}")))?;
        let email = email.trim();
        if email.is_empty() || !email.contains('@') {
            return Err(CloudError(format!(
                "metadata server: {email:?} is not a service account"
            )));
        }
        Ok(email.to_owned())
    }

    /// The project the workload runs in.
    pub async fn project_id(&self) -> Result<String, CloudError> {
        let project = self
            .get_path("project/project-id")
            .await?
            .text()
            .await
            .map_err(|e| CloudError(format!("metadata server: {e}")))?;
        let project = project.trim();
        if project.is_empty() {
            return Err(CloudError("metadata server: no project id".into()));
        }
        Ok(project.to_owned())
    }

    /// An access token for the workload's service account.
    pub async fn access_token(&self) -> Result<String, CloudError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let token: Token = self
            .get("token")
            .await?
            .json()
            .await
            .map_err(|e| CloudError(format!("metadata server token: {e}")))?;
        let until = Instant::now() + Duration::from_secs(token.expires_in.saturating_sub(60));
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    /// Forgets the cached token (after the API refused it).
    pub async fn forget_token(&self) {
        *self.token.lock().await = None;
    }
}
