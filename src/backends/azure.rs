//! Azure Blob Storage's control plane, through its REST API at [`REST_VERSION`]: List Blobs and
//! Delete Blob in the containers of one account, at its blob endpoint (the account's, or an
//! emulator's path-style `http://127.0.0.1:10000/ACCOUNT`). Calls are authorized with the
//! account key (Shared Key, [`AzureCredentials::shared_key`]) or, keyless, with an Entra ID
//! token ([`EntraTokens`]: Azure Workload Identity).
//!
//! Listings start after a name with `startFrom` (2026-02-06 and later), which includes the name
//! itself: that one is dropped here. Tested on Azurite 3.37, which implements `startFrom` and
//! `marker` together as the service does, but orders names by UTF-16 code units where the service
//! orders by UTF-8 bytes (the two differ only between characters above U+FFFF and those from
//! U+E000 to U+FFFF); the broker passes its order on either way.

use super::{ObjectInfo, ObjectPage, StorageError};
use crate::cloud::EntraTokens;
use crate::signing::azure::{REST_VERSION, http_date};
use crate::signing::{AzureCredentials, BlobEndpoint, rfc3339_seconds};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::sync::Arc;
use time::OffsetDateTime;

/// Encodes a query value, or a container name as a path segment: all but `A-Z a-z 0-9 - . _ ~`
/// (a space as `%20`, a `+` as `%2B`, so that Shared Key's decoding reads them back).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Encodes a blob name as a path: as [`COMPONENT`], keeping `/`.
const BLOB_PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Deletes in flight at once in [`AzureControl::delete_prefix`]: Azure has no batch delete
/// outside the multipart Blob Batch API.
const DELETE_CONCURRENCY: usize = 8;

/// How the broker proves who it is to the blob service.
pub enum AzureAuth {
    /// Shared Key, with the account key.
    SharedKey(AzureCredentials),
    /// A bearer token of the workload's Entra ID identity (its role on the account decides).
    Entra(Arc<EntraTokens>),
}

/// The control-plane client.
pub struct AzureControl {
    auth: AzureAuth,
    endpoint: BlobEndpoint,
    http: reqwest::Client,
}

/// A List Blobs answer: what the broker reads of it.
#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: Blobs,
    /// Empty on the last page.
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Default, Deserialize)]
struct Blobs {
    #[serde(rename = "Blob", default)]
    blob: Vec<Blob>,
}

#[derive(Deserialize)]
struct Blob {
    #[serde(rename = "Name")]
    name: BlobName,
    #[serde(rename = "Properties", default)]
    properties: Properties,
}

/// A blob's name; percent-encoded when `Encoded="true"` (a name with characters XML cannot
/// carry).
#[derive(Deserialize)]
struct BlobName {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Default, Deserialize)]
struct Properties {
    /// An HTTP date.
    #[serde(rename = "Last-Modified")]
    last_modified: Option<String>,
    #[serde(rename = "Content-Length")]
    content_length: Option<String>,
    #[serde(rename = "Content-Type")]
    content_type: Option<String>,
}

impl AzureControl {
    /// Calls the blob service at `endpoint` (whose account the credentials must be for).
    pub fn new(auth: AzureAuth, endpoint: BlobEndpoint, http: reqwest::Client) -> Self {
        Self {
            auth,
            endpoint,
            http,
        }
    }

    /// One page of the blobs under `prefix`, after `start_after` (never the name itself) when
    /// given.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<ObjectPage, StorageError> {
        let page_size = super::PAGE_SIZE.to_string();
        let mut query = vec![("prefix", prefix), ("maxresults", page_size.as_str())];
        query.extend(page_token.map(|marker| ("marker", marker)));
        query.extend(start_after.map(|start| ("startFrom", start)));
        let body = self
            .list_blobs(bucket, &query)
            .await?
            .text()
            .await
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        let results: EnumerationResults = quick_xml::de::from_str(&body)
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        let mut items = Vec::with_capacity(results.blobs.blob.len());
        for blob in results.blobs.blob {
            let name = if blob.name.encoded.as_deref() == Some("true") {
                percent_encoding::percent_decode_str(&blob.name.text)
                    .decode_utf8()
                    .map_err(|_| {
                        StorageError::Other(format!(
                            "list {bucket}: the encoded name {:?} is not UTF-8",
                            blob.name.text
                        ))
                    })?
                    .into_owned()
            } else {
                blob.name.text
            };
            // The XML reader drops text of whitespace alone, and `startFrom` includes its name.
            if name.is_empty() || Some(name.as_str()) == start_after {
                if name.is_empty() {
                    tracing::warn!(
                        bucket,
                        "a blob whose name is whitespace alone is not listed"
                    );
                }
                continue;
            }
            let properties = blob.properties;
            items.push(ObjectInfo {
                name,
                size: properties.content_length.and_then(|s| s.parse().ok()),
                content_type: properties.content_type.filter(|t| !t.is_empty()),
                updated: properties.last_modified.as_deref().and_then(rfc3339),
            });
        }
        Ok(ObjectPage {
            items,
            next_page_token: results.next_marker.filter(|m| !m.is_empty()),
        })
    }

    /// Checks that `bucket` exists and the broker may list it under `prefix` (what every
    /// listing and deletion of its blobs needs): one listing of at most one blob. A missing
    /// container answers 404, credentials it refuses 403.
    pub async fn check_listable(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        self.list_blobs(bucket, &[("prefix", prefix), ("maxresults", "1")])
            .await
            .map(drop)
    }

    /// A successful answer to List Blobs on `bucket` with `query` besides `restype` and `comp`
    /// (a parameter with an empty value, such as no prefix, left out).
    async fn list_blobs(
        &self,
        bucket: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, StorageError> {
        let mut url = format!(
            "{}/{}?restype=container&comp=list",
            self.endpoint.base(),
            utf8_percent_encode(bucket, COMPONENT)
        );
        for (name, value) in query.iter().filter(|(_, value)| !value.is_empty()) {
            url.push('&');
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, COMPONENT));
        }
        let url = reqwest::Url::parse(&url)
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        let response = self
            .send(reqwest::Method::GET, url, &[])
            .await
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        super::checked(response).await
    }

    /// Deletes one blob and its snapshots; one already gone is fine. Whether it was there.
    ///
    /// A name with `.` or `..` segments (`a/../b`) is refused: URLs resolve them (encoded or
    /// not), so its URL would name another blob, maybe outside the prefix being deleted.
    /// Microsoft advises against such names; its SDKs cannot address them either.
    pub async fn delete(&self, bucket: &str, name: &str) -> Result<bool, StorageError> {
        let path = format!(
            "{}/{}",
            utf8_percent_encode(bucket, COMPONENT),
            utf8_percent_encode(name, BLOB_PATH)
        );
        let url = format!("{}/{path}", self.endpoint.base());
        let url = reqwest::Url::parse(&url)
            .ok()
            .filter(|parsed| parsed.path().ends_with(&format!("/{path}")))
            .ok_or_else(|| {
                StorageError::Other(format!(
                    "delete {name:?}: a blob name with . or .. segments has no URL of its own"
                ))
            })?;
        let response = self
            .send(
                reqwest::Method::DELETE,
                url,
                &[("x-ms-delete-snapshots", "include")],
            )
            .await
            .map_err(|e| StorageError::Other(format!("delete {name}: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        super::checked(response).await.map(|_| true)
    }

    /// Deletes every blob under `prefix` with its snapshots (earlier versions, where
    /// versioning keeps them, stay: they are the account's retention); how many were there.
    /// Eight deletes run at a time.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0;
        let mut marker: Option<String> = None;
        loop {
            let page = self.list(bucket, prefix, None, marker.as_deref()).await?;
            // Owned names: a closure over borrowed ones makes the future not `Send` for
            // every lifetime, which the API's handlers need.
            let names: Vec<String> = page.items.into_iter().map(|o| o.name).collect();
            let mut deletes = futures::stream::iter(names)
                .map(|name| async move { self.delete(bucket, &name).await })
                .buffer_unordered(DELETE_CONCURRENCY);
            while let Some(existed) = deletes.next().await {
                deleted += u64::from(existed?);
            }
            match page.next_page_token {
                Some(next) => marker = Some(next),
                None => return Ok(deleted),
            }
        }
    }

    /// Sends one request with the service version, the date and authorization.
    async fn send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, String> {
        let date = http_date(OffsetDateTime::now_utc());
        let mut signed = vec![("x-ms-date", date.as_str()), ("x-ms-version", REST_VERSION)];
        signed.extend_from_slice(headers);
        let authorization = match &self.auth {
            AzureAuth::SharedKey(credentials) => {
                credentials
                    .shared_key(method.as_str(), &url, &signed)
                    .map_err(|e| e.to_string())?
                    .header
            }
            AzureAuth::Entra(tokens) => format!(
                "Bearer {}",
                tokens
                    .access_token()
                    .await
                    .map_err(|e| format!("credentials: {e}"))?
            ),
        };
        let mut request = self.http.request(method, url);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        // A token the service no longer takes is not sent again.
        if let AzureAuth::Entra(tokens) = &self.auth
            && response.status() == reqwest::StatusCode::UNAUTHORIZED
        {
            tokens.forget_token().await;
        }
        Ok(response)
    }
}

/// An HTTP date (`Tue, 24 Nov 2026 10:20:30 GMT`) as RFC 3339.
fn rfc3339(http_date: &str) -> Option<String> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(http_date, FORMAT)
        .ok()
        .map(|t| rfc3339_seconds(t.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_becomes_rfc3339() {
        assert_eq!(
            rfc3339("Tue, 24 Nov 2026 10:20:30 GMT").as_deref(),
            Some("2026-11-24T10:20:30Z")
        );
        assert_eq!(rfc3339("2026-11-24T10:20:30Z"), None);
    }

    #[test]
    fn listings_are_read_with_their_names_as_stored() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://a.blob.core.windows.net/" ContainerName="c">
  <Prefix>p/</Prefix><MaxResults>1000</MaxResults>
  <Blobs>
    <Blob><Name> p/two  spaces &amp; é </Name><Properties>
      <Last-Modified>Tue, 24 Nov 2026 10:20:30 GMT</Last-Modified><Etag>0x1</Etag>
      <Content-Length>12</Content-Length><Content-Type>text/plain</Content-Type>
      <BlobType>BlockBlob</BlobType></Properties></Blob>
    <Blob><Name Encoded="true">p/%EF%BF%BF</Name><Properties><Content-Type /></Properties></Blob>
  </Blobs>
  <NextMarker>2!96!bWFya2Vy</NextMarker>
</EnumerationResults>"#;
        let results: EnumerationResults = quick_xml::de::from_str(xml).expect("xml");
        let names: Vec<_> = results.blobs.blob.iter().map(|b| &b.name.text).collect();
        assert_eq!(names, [" p/two  spaces & é ", "p/%EF%BF%BF"]);
        assert_eq!(results.blobs.blob[1].name.encoded.as_deref(), Some("true"));
        assert_eq!(results.next_marker.as_deref(), Some("2!96!bWFya2Vy"));
        let last: EnumerationResults = quick_xml::de::from_str(
            "<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>",
        )
        .expect("xml");
        assert!(last.blobs.blob.is_empty());
        assert_eq!(last.next_marker.as_deref(), Some(""));
    }
}
