//! How URLs are signed and where storage is: `BROKER_SIGNING_*`, keyless signing's
//! `BROKER_METADATA_*` and `BROKER_IAM_*`, `BROKER_STORAGE_ENDPOINT`.

use super::ConfigError;
use super::settings::{Settings, bad};
use crate::signing::{Endpoint, Scheme};
use std::path::PathBuf;
use std::time::Duration;

/// Keyless signing through IAM `signBlob`.
#[derive(Clone, Debug)]
pub struct KeylessConfig {
    pub metadata_url: String,
    pub iam_credentials_url: String,
    /// Google's STS, which downscopes the tokens `/v1/credentials` vends.
    pub sts_url: String,
    /// Sign as this service account instead of the workload's own (needs Token Creator on it).
    pub service_account: Option<String>,
    /// signBlob calls in flight at most, across all requests (fewer while latency allows).
    pub concurrency: usize,
    /// signBlob calls a minute this replica may make: its share of the project's quota.
    pub quota_per_minute: u32,
    /// Fast keyless signing: an HMAC key of the service account, made through the JSON API,
    /// held in memory and rotated every `hmac_rotation`.
    pub hmac: bool,
    pub hmac_rotation: Duration,
    /// From a key's creation to its first signature (Google: up to a minute to be accepted).
    pub hmac_warmup: Duration,
    /// The project that owns the service account (for its HMAC keys); by default the metadata
    /// server's, else the one in the service account's address.
    pub project: Option<String>,
    /// How long the start waits for the metadata server to name the service account (on a
    /// fresh GKE node it may answer late).
    pub metadata_wait: Duration,
}

/// A storage endpoint other than Google's (an emulator): URLs are signed for it and the
/// control plane talks to it.
#[derive(Clone, Debug)]
pub struct StorageEndpoint {
    /// As given, e.g. `http://127.0.0.1:4443`.
    pub url: String,
    pub endpoint: Endpoint,
}

/// The signing section.
pub(super) struct Signing {
    pub credentials: Vec<PathBuf>,
    /// Seconds of the read reuse window (0: off).
    pub read_reuse: u32,
    pub reload: Duration,
    pub keyless: KeylessConfig,
    pub storage_endpoint: Option<StorageEndpoint>,
}

pub(super) fn signing<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<Signing, ConfigError> {
    let credentials: Vec<PathBuf> = s
        .get("BROKER_SIGNING_CREDENTIALS")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    if credentials.len() > 2 {
        return Err(bad(
            "BROKER_SIGNING_CREDENTIALS",
            "at most two key files: the new one first, the old one second".into(),
        ));
    }
    let reload = Duration::from_secs(
        s.number("BROKER_SIGNING_RELOAD_SECONDS", 60, 86_400)?
            .max(1),
    );
    let keyless = KeylessConfig {
        metadata_url: s.http_url("BROKER_METADATA_URL", "http://metadata.google.internal")?,
        iam_credentials_url: s.http_url(
            "BROKER_IAM_CREDENTIALS_URL",
            "https://iamcredentials.googleapis.com",
        )?,
        sts_url: s.http_url("BROKER_GOOGLE_STS_URL", "https://sts.googleapis.com")?,
        service_account: s.get("BROKER_SIGNING_SERVICE_ACCOUNT"),
        concurrency: s.number_from("BROKER_IAM_CONCURRENCY", 128, 1, 1024)? as usize,
        quota_per_minute: s.number_from("BROKER_IAM_QUOTA_PER_MINUTE", 60_000, 60, 6_000_000)?
            as u32,
        hmac: s.flag("BROKER_KEYLESS_HMAC", false)?,
        hmac_rotation: Duration::from_secs(s.number_from(
            "BROKER_KEYLESS_HMAC_ROTATION_SECONDS",
            86_400,
            60,
            30 * 86_400,
        )?),
        hmac_warmup: Duration::from_secs(s.number(
            "BROKER_KEYLESS_HMAC_WARMUP_SECONDS",
            60,
            600,
        )?),
        project: s.get("BROKER_GOOGLE_PROJECT"),
        metadata_wait: Duration::from_secs(s.number("BROKER_METADATA_WAIT_SECONDS", 10, 600)?),
    };
    let storage_endpoint = match s.get("BROKER_STORAGE_ENDPOINT") {
        None => None,
        Some(url) => {
            let endpoint = Endpoint::custom(&url, Scheme::Https).map_err(|e| {
                bad(
                    "BROKER_STORAGE_ENDPOINT",
                    format!("{url:?}: {e}; e.g. http://127.0.0.1:4443"),
                )
            })?;
            Some(StorageEndpoint { url, endpoint })
        }
    };
    let read_reuse = s.number("BROKER_READ_REUSE_SECONDS", 60, 604_800 / 4)? as u32;
    Ok(Signing {
        credentials,
        read_reuse,
        reload,
        keyless,
        storage_endpoint,
    })
}
