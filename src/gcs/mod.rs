//! Control-plane calls to Cloud Storage that carry no object bytes: listing objects and deleting
//! them (the `delete` release policy), through the JSON API. Against `BROKER_STORAGE_ENDPOINT`
//! (an emulator) no credentials are sent; against Google, an OAuth token for the service account
//! ([`crate::cloud`]: from the key the broker signs with, or from the metadata server).

use crate::cloud::{MetadataServer, ServiceAccountTokens};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// Objects per listing page: GCS's maximum, and what bounds the memory a manifest stream holds.
const PAGE_SIZE: &str = "1000";

/// Encodes an object name as one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A failed control-plane call.
#[derive(Debug, thiserror::Error)]
pub enum GcsError {
    /// Storage answered with an error status.
    #[error("cloud storage answered {status}: {body}")]
    Status { status: u16, body: String },
    /// Storage could not be reached, or its answer not read.
    #[error("cloud storage: {0}")]
    Other(String),
}

impl GcsError {
    /// Storage says the bucket does not exist (a listing answers 404 for nothing else).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }

    /// Storage refuses the broker's credentials access to it.
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// One object in a listing.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectInfo {
    pub name: String,
    #[serde(default)]
    pub size: Option<String>,
    pub content_type: Option<String>,
    pub updated: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPage {
    #[serde(default)]
    pub items: Vec<ObjectInfo>,
    pub next_page_token: Option<String>,
}

enum Auth {
    /// Emulators take no credentials.
    None,
    /// Tokens minted with the service-account key the broker signs with.
    ServiceAccount(ServiceAccountTokens),
    /// Workload Identity: tokens from the metadata server.
    Metadata(std::sync::Arc<MetadataServer>),
}

/// The control-plane client.
pub struct Gcs {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

/// Google's JSON API.
const GOOGLE: &str = "https://storage.googleapis.com";

impl Gcs {
    /// For an emulator at `endpoint` (e.g. `http://127.0.0.1:4443`).
    pub fn emulator(endpoint: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base: endpoint.trim_end_matches('/').to_owned(),
            auth: Auth::None,
        }
    }

    /// For Google, with tokens for the key the broker signs with.
    pub fn google(tokens: ServiceAccountTokens, http: reqwest::Client) -> Self {
        Self::with_tokens(GOOGLE, tokens, http)
    }

    /// For the JSON API at `base`, with tokens for the key the broker signs with.
    pub fn with_tokens(base: &str, tokens: ServiceAccountTokens, http: reqwest::Client) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth: Auth::ServiceAccount(tokens),
        }
    }

    /// For Google, authenticated as the workload's service account (Workload Identity).
    pub fn keyless(metadata: std::sync::Arc<MetadataServer>, http: reqwest::Client) -> Self {
        Self {
            http,
            base: GOOGLE.into(),
            auth: Auth::Metadata(metadata),
        }
    }

    async fn bearer(&self) -> Result<Option<String>, GcsError> {
        let token = match &self.auth {
            Auth::None => return Ok(None),
            Auth::ServiceAccount(tokens) => tokens.access_token().await,
            Auth::Metadata(metadata) => metadata.access_token().await,
        };
        token
            .map(Some)
            .map_err(|e| GcsError::Other(format!("credentials: {e}")))
    }

    fn object_url(&self, bucket: &str, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{bucket}/o/{}",
            self.base,
            utf8_percent_encode(name, SEGMENT)
        )
    }

    /// One page of the objects under `prefix`.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        page_token: Option<&str>,
    ) -> Result<ObjectPage, GcsError> {
        self.list_from(bucket, prefix, None, page_token).await
    }

    /// One page of the objects under `prefix` whose names are `start` or after it.
    pub async fn list_from(
        &self,
        bucket: &str,
        prefix: &str,
        start: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<ObjectPage, GcsError> {
        let mut query = vec![
            ("prefix", prefix),
            (
                "fields",
                "items(name,size,contentType,updated),nextPageToken",
            ),
            ("maxResults", PAGE_SIZE),
        ];
        query.extend(page_token.map(|token| ("pageToken", token)));
        query.extend(start.map(|start| ("startOffset", start)));
        self.listing(bucket, &query)
            .await?
            .json()
            .await
            .map_err(|e| GcsError::Other(format!("list {bucket}: {e}")))
    }

    /// Checks that `bucket` exists and the broker may list it under `prefix` (what every
    /// listing and deletion of its objects needs): one listing of at most one object.
    pub async fn check_listable(&self, bucket: &str, prefix: &str) -> Result<(), GcsError> {
        let query = [("prefix", prefix), ("maxResults", "1"), ("fields", "kind")];
        self.listing(bucket, &query).await.map(drop)
    }

    /// A successful answer to a listing of `bucket` with `query`.
    async fn listing(
        &self,
        bucket: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, GcsError> {
        let mut request = self
            .http
            .get(format!("{}/storage/v1/b/{bucket}/o", self.base))
            .query(query);
        if let Some(bearer) = self.bearer().await? {
            request = request.bearer_auth(bearer);
        }
        let response = request
            .send()
            .await
            .map_err(|e| GcsError::Other(format!("list {bucket}: {e}")))?;
        checked(response).await
    }

    /// Deletes one object; one already gone is fine.
    pub async fn delete(&self, bucket: &str, name: &str) -> Result<(), GcsError> {
        let mut request = self.http.delete(self.object_url(bucket, name));
        if let Some(bearer) = self.bearer().await? {
            request = request.bearer_auth(bearer);
        }
        let response = request
            .send()
            .await
            .map_err(|e| GcsError::Other(format!("delete {name}: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        checked(response).await.map(drop)
    }

    /// Deletes every object under `prefix` (never the whole bucket: the prefix must not be
    /// empty); how many. Eight deletes run at a time.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, GcsError> {
        if prefix.is_empty() {
            return Err(GcsError::Other("refusing to delete a whole bucket".into()));
        }
        let mut deleted = 0;
        let mut token: Option<String> = None;
        loop {
            let page = self.list(bucket, prefix, token.as_deref()).await?;
            let names: Vec<String> = page.items.into_iter().map(|o| o.name).collect();
            for chunk in names.chunks(8) {
                futures::future::try_join_all(chunk.iter().map(|name| self.delete(bucket, name)))
                    .await?;
                deleted += chunk.len() as u64;
            }
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return Ok(deleted),
            }
        }
    }
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, GcsError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Err(GcsError::Status {
        status,
        body: body.chars().take(300).collect(),
    })
}
