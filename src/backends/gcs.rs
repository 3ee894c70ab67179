//! Google Cloud Storage's control plane, through the JSON API. Against `BROKER_STORAGE_ENDPOINT`
//! (an emulator) no credentials are sent; against Google, an OAuth token for the service account
//! ([`crate::cloud`]: from the key the broker signs with, or from the metadata server).

use super::{ObjectInfo, ObjectPage, StorageError};
use crate::cloud::{MetadataServer, ServiceAccountTokens};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// Encodes an object name as one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One object in a JSON API listing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    name: String,
    size: Option<String>,
    content_type: Option<String>,
    updated: Option<String>,
}

/// A page of a JSON API listing.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    items: Vec<Item>,
    next_page_token: Option<String>,
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

    async fn bearer(&self) -> Result<Option<String>, StorageError> {
        let token = match &self.auth {
            Auth::None => return Ok(None),
            Auth::ServiceAccount(tokens) => tokens.access_token().await,
            Auth::Metadata(metadata) => metadata.access_token().await,
        };
        token
            .map(Some)
            .map_err(|e| StorageError::Other(format!("credentials: {e}")))
    }

    fn object_url(&self, bucket: &str, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{bucket}/o/{}",
            self.base,
            utf8_percent_encode(name, SEGMENT)
        )
    }

    /// One page of the objects under `prefix`, after `start_after` when given.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<ObjectPage, StorageError> {
        let page_size = super::PAGE_SIZE.to_string();
        let mut query = vec![
            ("prefix", prefix),
            (
                "fields",
                "items(name,size,contentType,updated),nextPageToken",
            ),
            ("maxResults", page_size.as_str()),
        ];
        query.extend(page_token.map(|token| ("pageToken", token)));
        // startOffset includes the name itself.
        query.extend(start_after.map(|start| ("startOffset", start)));
        let page: Page = self
            .listing(bucket, &query)
            .await?
            .json()
            .await
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        Ok(ObjectPage {
            items: page
                .items
                .into_iter()
                .filter(|item| Some(item.name.as_str()) != start_after)
                .map(|item| ObjectInfo {
                    size: item.size.and_then(|s| s.parse().ok()),
                    name: item.name,
                    content_type: item.content_type,
                    updated: item.updated,
                })
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// Checks that `bucket` exists and the broker may list it under `prefix` (what every
    /// listing and deletion of its objects needs): one listing of at most one object.
    pub async fn check_listable(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        let query = [("prefix", prefix), ("maxResults", "1"), ("fields", "kind")];
        self.listing(bucket, &query).await.map(drop)
    }

    /// A successful answer to a listing of `bucket` with `query`.
    async fn listing(
        &self,
        bucket: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, StorageError> {
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
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        super::checked(response).await
    }

    /// Deletes one object; one already gone is fine.
    pub async fn delete(&self, bucket: &str, name: &str) -> Result<(), StorageError> {
        let mut request = self.http.delete(self.object_url(bucket, name));
        if let Some(bearer) = self.bearer().await? {
            request = request.bearer_auth(bearer);
        }
        let response = request
            .send()
            .await
            .map_err(|e| StorageError::Other(format!("delete {name}: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        super::checked(response).await.map(drop)
    }

    /// Deletes every object under `prefix`; how many. Eight deletes run at a time.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0;
        let mut token: Option<String> = None;
        loop {
            let page = self.list(bucket, prefix, None, token.as_deref()).await?;
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
