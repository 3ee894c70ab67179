//! Azure without an account key: Entra ID access tokens for Azure Storage through Azure Workload
//! Identity (a federated Kubernetes service-account token exchanged with the client-credentials
//! grant), and user-delegation keys fetched with them (Get User Delegation Key), kept current by
//! a background task so that signing a user-delegation SAS ([`crate::signing::azure`]) reads
//! the key from memory and never waits on the network.

use super::CloudError;
use crate::signing::azure::{REST_VERSION, UserDelegationKey, http_date};
use crate::signing::{BlobEndpoint, SasKey, rfc3339_seconds};
use arc_swap::ArcSwap;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Mutex;

/// The scope of a token for Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Entra ID's public cloud, unless `AZURE_AUTHORITY_HOST` names another.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// The longest a user-delegation key may live (the service's limit).
pub const MAX_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// A key is asked to start this long before now, and to end this long before the seven days
/// run out: the service compares both with its own clock.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Retries of a failed renewal wait from the first to the longest, doubling.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(5 * 60);

/// Azure Workload Identity: what the AKS webhook puts in a pod's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub tenant_id: String,
    pub client_id: String,
    /// The projected service-account token, re-read for every exchange (the kubelet rotates it).
    pub token_file: PathBuf,
    /// With a trailing slash.
    pub authority_host: String,
}

impl WorkloadIdentity {
    /// An identity in `tenant_id` for the app `client_id`.
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        token_file: PathBuf,
        authority_host: &str,
    ) -> Self {
        let mut authority_host = authority_host.trim().to_owned();
        if !authority_host.ends_with('/') {
            authority_host.push('/');
        }
        Self {
            tenant_id: tenant_id.trim().to_owned(),
            client_id: client_id.trim().to_owned(),
            token_file,
            authority_host,
        }
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and
    /// `AZURE_AUTHORITY_HOST`: none when the first three are all unset, an error when only some
    /// are set.
    pub fn from_env() -> Result<Option<Self>, CloudError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, CloudError> {
        let names = [
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
        ];
        let values = names.map(|name| var(name).filter(|v| !v.trim().is_empty()));
        match values {
            [None, None, None] => Ok(None),
            [Some(tenant), Some(client), Some(file)] => {
                let authority = var("AZURE_AUTHORITY_HOST")
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
                Ok(Some(Self::new(&tenant, &client, file.into(), &authority)))
            }
            _ => {
                let missing: Vec<&str> = names
                    .iter()
                    .zip(&values)
                    .filter(|(_, value)| value.is_none())
                    .map(|(name, _)| *name)
                    .collect();
                Err(CloudError(format!(
                    "Azure Workload Identity is half configured: {} unset",
                    missing.join(", ")
                )))
            }
        }
    }

    fn token_url(&self) -> String {
        format!(
            "{}{}/oauth2/v2.0/token",
            self.authority_host, self.tenant_id
        )
    }
}

/// Access tokens for Azure Storage, each reused until five minutes before it expires (or
/// half its life, if shorter).
pub struct EntraTokens {
    http: reqwest::Client,
    identity: WorkloadIdentity,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraTokens")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl EntraTokens {
    pub fn new(identity: WorkloadIdentity, http: reqwest::Client) -> Self {
        Self {
            http,
            identity,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token for Azure Storage.
    pub async fn access_token(&self) -> Result<String, CloudError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let identity = &self.identity;
        let assertion = tokio::fs::read_to_string(&identity.token_file)
            .await
            .map_err(|e| {
                CloudError(format!(
                    "federated token file {}: {e}",
                    identity.token_file.display()
                ))
            })?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &identity.client_id)
            .append_pair("scope", STORAGE_SCOPE)
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", assertion.trim())
            .finish();
        let url = identity.token_url();
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| CloudError(format!("token request to {url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CloudError(format!(
                "token request to {url} answered {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            /// A number from Entra ID v2.0, a string from older endpoints.
            expires_in: serde_json::Value,
        }
        let token: Token = response
            .json()
            .await
            .map_err(|e| CloudError(format!("token answer from {url}: {e}")))?;
        let lifetime = match &token.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| CloudError(format!("token answer from {url}: no expires_in")))?;
        let reuse = lifetime.saturating_sub(300).max(lifetime / 2);
        *cached = Some((
            token.access_token.clone(),
            Instant::now() + Duration::from_secs(reuse),
        ));
        Ok(token.access_token)
    }

    /// Forgets the cached token (after the service refused it).
    pub async fn forget_token(&self) {
        *self.cached.lock().await = None;
    }
}

/// A user-delegation key and what signing with it must respect.
#[derive(Clone, Debug)]
pub struct DelegationKey {
    pub account: String,
    pub key: UserDelegationKey,
    /// When the key stops working: no URL signed with it may expire later.
    pub expires_at: OffsetDateTime,
    /// When it was fetched: it is renewed half way from here to its expiry.
    pub fetched_at: OffsetDateTime,
}

impl DelegationKey {
    /// What signs a user-delegation SAS with this key.
    pub fn sas_key(&self) -> SasKey {
        SasKey::UserDelegation {
            account: self.account.clone(),
            key: self.key.clone(),
        }
    }

    fn renew_at(&self) -> OffsetDateTime {
        self.fetched_at + (self.expires_at - self.fetched_at) / 2
    }
}

/// The user-delegation key of one account, renewed in the background at half its life; a
/// failed renewal is retried with backoff while the key in hand stays valid.
pub struct DelegationKeys {
    account: String,
    endpoint: BlobEndpoint,
    tokens: Arc<EntraTokens>,
    http: reqwest::Client,
    lifetime: Duration,
    current: ArcSwap<DelegationKey>,
}

impl std::fmt::Debug for DelegationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegationKeys")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .field("lifetime", &self.lifetime)
            .field("expires_at", &self.current.load().expires_at)
            .finish_non_exhaustive()
    }
}

/// Get User Delegation Key's answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyAnswer {
    signed_oid: String,
    signed_tid: String,
    signed_start: String,
    signed_expiry: String,
    signed_service: String,
    signed_version: String,
    signed_delegated_user_tid: Option<String>,
    value: String,
}

impl DelegationKeys {
    /// Fetches the first key of `account` (whose blob service is at `endpoint`), valid for
    /// `lifetime` (at most [`MAX_KEY_LIFETIME`]), and starts renewing it. The task ends when
    /// the keys are dropped; the caller owns it, to stop it at shutdown.
    pub async fn start(
        account: &str,
        endpoint: BlobEndpoint,
        tokens: Arc<EntraTokens>,
        http: reqwest::Client,
        lifetime: Duration,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), CloudError> {
        if lifetime.is_zero() || lifetime > MAX_KEY_LIFETIME {
            return Err(CloudError(format!(
                "a user-delegation key lives for up to seven days, not {lifetime:?}"
            )));
        }
        let first = fetch(account, &endpoint, &tokens, &http, lifetime).await?;
        let keys = Arc::new(Self {
            account: account.to_owned(),
            endpoint,
            tokens,
            http,
            lifetime,
            current: ArcSwap::from_pointee(first),
        });
        let task = tokio::spawn(renewing(Arc::downgrade(&keys)));
        Ok((keys, task))
    }

    /// The key to sign with now, or none once the key in hand has expired (renewal has failed
    /// for half its life). No I/O.
    pub fn current(&self) -> Option<Arc<DelegationKey>> {
        let key = self.current.load_full();
        (OffsetDateTime::now_utc() < key.expires_at).then_some(key)
    }

    /// Fetches a new key and signs with it from now on.
    pub async fn renew(&self) -> Result<(), CloudError> {
        let key = fetch(
            &self.account,
            &self.endpoint,
            &self.tokens,
            &self.http,
            self.lifetime,
        )
        .await?;
        tracing::info!(account = %self.account, expires_at = %rfc3339_seconds(key.expires_at), "user-delegation key renewed");
        self.current.store(Arc::new(key));
        Ok(())
    }
}

/// Renews the key of `keys` at half its life, until they are dropped.
async fn renewing(keys: Weak<DelegationKeys>) {
    loop {
        let Some(due) = keys.upgrade().map(|k| k.current.load().renew_at()) else {
            return;
        };
        let wait = due - OffsetDateTime::now_utc();
        tokio::time::sleep(wait.try_into().unwrap_or(Duration::ZERO)).await;
        let mut backoff = FIRST_RETRY;
        loop {
            let Some(keys) = keys.upgrade() else {
                return;
            };
            match keys.renew().await {
                Ok(()) => break,
                Err(err) if keys.current().is_some() => {
                    tracing::warn!(error = %err, "user-delegation key renewal failed; the current key stays until it expires");
                }
                Err(err) => {
                    tracing::error!(error = %err, "user-delegation key renewal failed and the key has expired: Azure URLs cannot be signed");
                }
            }
            drop(keys);
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(LONGEST_RETRY);
        }
    }
}

/// One Get User Delegation Key call: a key from a little before now for `lifetime`.
async fn fetch(
    account: &str,
    endpoint: &BlobEndpoint,
    tokens: &EntraTokens,
    http: &reqwest::Client,
    lifetime: Duration,
) -> Result<DelegationKey, CloudError> {
    let now = OffsetDateTime::now_utc();
    let start = now - CLOCK_SKEW;
    let expiry = now + lifetime.min(MAX_KEY_LIFETIME - CLOCK_SKEW);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
        rfc3339_seconds(start),
        rfc3339_seconds(expiry)
    );
    let url = format!(
        "{}/?restype=service&comp=userdelegationkey",
        endpoint.base()
    );
    let token = tokens.access_token().await?;
    let response = http
        .post(&url)
        .bearer_auth(token)
        .header("x-ms-version", REST_VERSION)
        .header("x-ms-date", http_date(now))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .map_err(|e| CloudError(format!("Get User Delegation Key at {url}: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| CloudError(format!("Get User Delegation Key at {url}: {e}")))?;
    if !status.is_success() {
        if status == reqwest::StatusCode::UNAUTHORIZED {
            tokens.forget_token().await;
        }
        return Err(CloudError(format!(
            "Get User Delegation Key at {url} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    let answer: KeyAnswer = quick_xml::de::from_str(&text)
        .map_err(|e| CloudError(format!("Get User Delegation Key answer: {e}")))?;
    // The key ends when the service says, never later than asked.
    let expires_at = OffsetDateTime::parse(&answer.signed_expiry, &Rfc3339)
        .map_or(expiry, |given| given.min(expiry));
    let key = UserDelegationKey::new(
        answer.signed_oid,
        answer.signed_tid,
        answer.signed_start,
        answer.signed_expiry,
        answer.signed_service,
        answer.signed_version,
        answer.signed_delegated_user_tid.filter(|t| !t.is_empty()),
        &answer.value,
    )
    .map_err(|e| CloudError(format!("Get User Delegation Key answer: {e}")))?;
    Ok(DelegationKey {
        account: account.to_owned(),
        key,
        expires_at,
        fetched_at: now,
    })
}

/// Between half and all of `backoff`, so that replicas retrying together spread out.
fn jitter(backoff: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
    backoff / 2 + backoff * u32::from(byte[0]) / 512
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn workload_identity_comes_whole_or_not_at_all() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            WorkloadIdentity::from_vars(move |name| map.get(name).cloned())
        };
        assert_eq!(env(&[]).expect("none"), None);
        let whole = env(&[
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_ID", "client"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ])
        .expect("ok")
        .expect("some");
        assert_eq!(
            whole.token_url(),
            "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
        );
        let elsewhere = env(&[
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_ID", "client"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
        ])
        .expect("ok")
        .expect("some");
        assert_eq!(
            elsewhere.token_url(),
            "https://login.microsoftonline.us/tenant/oauth2/v2.0/token"
        );
        let half = env(&[("AZURE_TENANT_ID", "tenant")]).expect_err("half");
        assert!(half.0.contains("AZURE_CLIENT_ID"), "{half}");
    }

    #[test]
    fn a_key_answer_is_read() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><UserDelegationKey>
            <SignedOid>oid</SignedOid><SignedTid>tid</SignedTid>
            <SignedStart>2026-11-24T10:00:00Z</SignedStart><SignedExpiry>2026-11-25T10:00:00Z</SignedExpiry>
            <SignedService>b</SignedService><SignedVersion>2026-06-06</SignedVersion>
            <Value>a2V5</Value></UserDelegationKey>"#;
        let answer: KeyAnswer = quick_xml::de::from_str(xml).expect("xml");
        assert_eq!(answer.signed_expiry, "2026-11-25T10:00:00Z");
        assert_eq!(answer.signed_delegated_user_tid, None);
        assert_eq!(answer.value, "a2V5");
    }
}
