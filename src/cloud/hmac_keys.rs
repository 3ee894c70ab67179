//! Fast keyless signing: an HMAC key of the broker's own service account, created through the
//! Cloud Storage JSON API (`projects.hmacKeys`), its secret held in memory only, so that URLs are
//! signed locally (GOOG4-HMAC-SHA256, microseconds) instead of by an IAM `signBlob` round trip.
//!
//! Each replica makes its own key (a secret is shown only once, at creation) and makes a new one
//! every rotation period; a new key signs only after a warm-up (Google: up to a minute before a
//! new key is accepted everywhere). A key signs only while younger than the rotation period, so
//! every URL it signed has expired once it is older than the rotation period plus the longest
//! URL lifetime: then any replica deactivates it, and deletes it a few minutes later (state
//! changes take up to three minutes to spread). That sweep runs at start and at each rotation,
//! so keys left by crashed replicas go too. When Google refuses to create keys (no permission,
//! an organization policy) signing stays with `signBlob`, said once in the log.

use super::CloudError;
use super::metadata::MetadataServer;
use crate::signing::{Endpoint, HmacSigner, UrlSigner, UrlStyle};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// Beyond the rotation period and the longest URL lifetime, before a key is retired: clocks
/// and a late rotation.
const RETIRE_MARGIN: Duration = Duration::from_secs(15 * 60);
/// From deactivation to deletion (Google: state changes take up to 3 minutes to spread).
const DELETE_AFTER_INACTIVE: Duration = Duration::from_secs(4 * 60);
/// Between attempts while a key cannot be made for a passing reason.
const RETRY: Duration = Duration::from_secs(60);

/// Where and as whom keys are made, and how long they live.
#[derive(Clone, Debug)]
pub struct HmacKeyConfig {
    /// The JSON API, e.g. `https://storage.googleapis.com`.
    pub api: String,
    pub project: String,
    pub service_account: String,
    pub rotation: Duration,
    /// The longest lifetime of a URL signed with a key.
    pub longest_url: Duration,
    /// From a key's creation to its first signature.
    pub warmup: Duration,
    /// What the URLs are signed for.
    pub endpoint: Endpoint,
    pub style: UrlStyle,
}

/// The keys this replica made, and the task that makes and retires them.
#[derive(Debug)]
pub struct HmacKeys {
    http: reqwest::Client,
    api: reqwest::Url,
    metadata: Arc<MetadataServer>,
    config: HmacKeyConfig,
    /// Newest last: the one signing and, during a rotation, the next one warming up.
    held: Mutex<Vec<Arc<HeldKey>>>,
}

#[derive(Debug)]
struct HeldKey {
    /// 1 for the first key this replica made, then 2, …: a new generation of signatures.
    serial: u64,
    access_id: String,
    created: OffsetDateTime,
    signer: Arc<UrlSigner>,
}

/// One key as the JSON API lists it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyMetadata {
    access_id: String,
    state: String,
    #[serde(with = "time::serde::rfc3339")]
    time_created: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    updated: Option<OffsetDateTime>,
}

/// Why a key could not be made.
#[derive(Debug)]
enum Refusal {
    /// For good: no permission, an organization policy. Signing stays with signBlob.
    Forbidden(String),
    /// For now: the key limit, an outage.
    Passing(String),
}

impl HmacKeys {
    /// Keys of `config.service_account`, managed with the workload's tokens.
    pub fn new(
        config: HmacKeyConfig,
        metadata: Arc<MetadataServer>,
        http: reqwest::Client,
    ) -> Result<Self, CloudError> {
        let api = reqwest::Url::parse(&config.api)
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| CloudError(format!("{:?} is not a JSON API address", config.api)))?;
        Ok(Self {
            http,
            api,
            metadata,
            config,
            held: Mutex::new(Vec::new()),
        })
    }

    /// The key to sign with now, and its generation: the newest past its warm-up and still
    /// within its rotation period. None before the first key, or when rotation fell behind.
    pub fn current(&self) -> Option<(u64, Arc<UrlSigner>)> {
        self.current_at(OffsetDateTime::now_utc())
    }

    fn current_at(&self, now: OffsetDateTime) -> Option<(u64, Arc<UrlSigner>)> {
        let held = self.lock();
        held.iter()
            .rev()
            .find(|key| {
                let age = now - key.created;
                age >= self.config.warmup && age < self.config.rotation + self.config.warmup
            })
            .map(|key| (key.serial, key.signer.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<HeldKey>>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the first key, then a new one a warm-up before each rotation is due, retiring old
    /// keys each time; ends when Google refuses keys for good.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.sweep().await;
                match self.make_key().await {
                    Ok(()) => {
                        let due = self.config.rotation.saturating_sub(self.config.warmup);
                        tokio::time::sleep(due.max(Duration::from_secs(1))).await;
                    }
                    Err(Refusal::Forbidden(why)) => {
                        tracing::error!(service_account = %self.config.service_account, reason = %why,
                            "fast keyless signing is off: Google refused to create an HMAC key; signing with IAM signBlob");
                        return;
                    }
                    Err(Refusal::Passing(why)) => {
                        tracing::warn!(reason = %why, "no new HMAC key yet; trying again in a minute");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        })
    }

    /// Creates a key and holds it (with the one signing now, if any).
    async fn make_key(&self) -> Result<(), Refusal> {
        #[derive(Deserialize)]
        struct Created {
            metadata: KeyMetadata,
            secret: String,
        }
        let mut url = self.keys_url(None);
        url.query_pairs_mut()
            .append_pair("serviceAccountEmail", &self.config.service_account);
        let response = self
            .send(self.http.post(url).header("content-length", "0"))
            .await
            .map_err(|e| Refusal::Passing(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let why = format!(
                "creating an HMAC key answered {status}: {}",
                text.chars().take(300).collect::<String>()
            );
            // The key limit is a 403 too, but it passes as old keys are retired.
            return Err(match status.as_u16() {
                403 if !text.contains("quotaExceeded") && !text.contains("limit") => {
                    Refusal::Forbidden(why)
                }
                400 | 401 | 404 | 412 => Refusal::Forbidden(why),
                _ => Refusal::Passing(why),
            });
        }
        let created: Created = response
            .json()
            .await
            .map_err(|e| Refusal::Passing(format!("the created HMAC key: {e}")))?;
        let mut held = self.lock();
        let serial = held.last().map_or(1, |key| key.serial + 1);
        let signer = UrlSigner::new(
            Arc::new(HmacSigner::new(
                created.metadata.access_id.clone(),
                &created.secret,
            )),
            self.config.endpoint.clone(),
            self.config.style.clone(),
        );
        tracing::info!(access_id = %created.metadata.access_id, warmup_seconds = self.config.warmup.as_secs(),
            "made an HMAC key for fast keyless signing");
        held.push(Arc::new(HeldKey {
            serial,
            access_id: created.metadata.access_id,
            created: created.metadata.time_created,
            signer: Arc::new(signer),
        }));
        // The one signing now and the new one: older keys sign no more.
        let keep = held.len().saturating_sub(2);
        held.drain(..keep);
        Ok(())
    }

    /// Deactivates the service account's keys past every URL they may have signed, and deletes
    /// those deactivated long enough ago; whichever replica made them.
    async fn sweep(&self) {
        let keys = match self.list().await {
            Ok(keys) => keys,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list the service account's HMAC keys");
                return;
            }
        };
        let now = OffsetDateTime::now_utc();
        let ours: Vec<String> = self.lock().iter().map(|k| k.access_id.clone()).collect();
        for key in keys {
            match retire_step(&key, now, &self.config, &ours) {
                Some(Step::Deactivate) => {
                    let body = serde_json::json!({ "state": "INACTIVE" });
                    let put = self
                        .http
                        .put(self.keys_url(Some(&key.access_id)))
                        .json(&body);
                    self.log_step("deactivated", &key.access_id, self.send(put).await);
                }
                Some(Step::Delete) => {
                    let delete = self.http.delete(self.keys_url(Some(&key.access_id)));
                    self.log_step("deleted", &key.access_id, self.send(delete).await);
                }
                None => {}
            }
        }
    }

    fn log_step(&self, what: &str, access_id: &str, result: Result<reqwest::Response, CloudError>) {
        match result {
            Ok(response) if response.status().is_success() => {
                tracing::info!(access_id, "{what} an expired HMAC key");
            }
            Ok(response) => {
                tracing::warn!(access_id, status = %response.status(), "an expired HMAC key could not be {what}");
            }
            Err(err) => {
                tracing::warn!(access_id, error = %err, "an expired HMAC key could not be {what}")
            }
        }
    }

    /// Every key of the service account that is not deleted.
    async fn list(&self) -> Result<Vec<KeyMetadata>, CloudError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            items: Vec<KeyMetadata>,
            next_page_token: Option<String>,
        }
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = self.keys_url(None);
            url.query_pairs_mut()
                .append_pair("serviceAccountEmail", &self.config.service_account);
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("pageToken", token);
            }
            let response = self.send(self.http.get(url)).await?;
            if !response.status().is_success() {
                return Err(CloudError(format!(
                    "listing HMAC keys answered {}",
                    response.status()
                )));
            }
            let page: Page = response
                .json()
                .await
                .map_err(|e| CloudError(format!("listing HMAC keys: {e}")))?;
            keys.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if keys.len() < 10_000 => token = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// `…/projects/{project}/hmacKeys[/{accessId}]`, each segment encoded.
    fn keys_url(&self, access_id: Option<&str>) -> reqwest::Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([
                "storage",
                "v1",
                "projects",
                &self.config.project,
                "hmacKeys",
            ]);
            if let Some(id) = access_id {
                path.push(id);
            }
        }
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CloudError> {
        let token = self.metadata.access_token().await?;
        request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| CloudError(format!("Cloud Storage JSON API: {e}")))
    }
}

/// What the sweep does to a key.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Deactivate,
    Delete,
}

/// A key older than the rotation period, the longest URL lifetime and a margin signed nothing
/// still valid: deactivate it; once inactive for a few minutes, delete it. Keys this replica
/// holds are left alone.
fn retire_step(
    key: &KeyMetadata,
    now: OffsetDateTime,
    config: &HmacKeyConfig,
    ours: &[String],
) -> Option<Step> {
    if ours.contains(&key.access_id) {
        return None;
    }
    let spent = config.rotation + config.warmup + config.longest_url + RETIRE_MARGIN;
    if now - key.time_created < spent {
        return None;
    }
    match key.state.as_str() {
        "ACTIVE" => Some(Step::Deactivate),
        "INACTIVE" => {
            let since = key.updated.unwrap_or(key.time_created);
            (now - since >= DELETE_AFTER_INACTIVE).then_some(Step::Delete)
        }
        _ => None,
    }
}

/// The project of a service account's address (`name@PROJECT.iam.gserviceaccount.com`).
pub fn project_of(service_account: &str) -> Option<String> {
    let domain = service_account.rsplit_once('@')?.1;
    let project = domain.strip_suffix(".iam.gserviceaccount.com")?;
    (!project.is_empty()).then(|| project.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn config() -> HmacKeyConfig {
        HmacKeyConfig {
            api: "https://storage.googleapis.com".into(),
            project: "p".into(),
            service_account: "signer@p.iam.gserviceaccount.com".into(),
            rotation: Duration::from_secs(86_400),
            longest_url: Duration::from_secs(43_200),
            warmup: Duration::from_secs(60),
            endpoint: Endpoint::default(),
            style: UrlStyle::Path,
        }
    }

    fn key(id: &str, state: &str, created: OffsetDateTime, updated: OffsetDateTime) -> KeyMetadata {
        KeyMetadata {
            access_id: id.into(),
            state: state.into(),
            time_created: created,
            updated: Some(updated),
        }
    }

    #[test]
    fn keys_retire_only_after_every_url_they_signed() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let config = config();
        // 24 h of signing + 1 min warm-up + 12 h URLs + 15 min: 36 h 16 min.
        let spent = now - time::Duration::minutes(36 * 60 + 16);
        let young = now - time::Duration::minutes(36 * 60 + 15);
        let ours = vec!["GOOG1OURS".to_owned()];
        let cases = [
            (key("A", "ACTIVE", young, young), None),
            (key("B", "ACTIVE", spent, spent), Some(Step::Deactivate)),
            (key("GOOG1OURS", "ACTIVE", spent, spent), None),
            (
                key("C", "INACTIVE", spent, now - time::Duration::minutes(3)),
                None,
            ),
            (
                key("D", "INACTIVE", spent, now - time::Duration::minutes(4)),
                Some(Step::Delete),
            ),
            (key("E", "DELETED", spent, spent), None),
        ];
        for (key, expected) in cases {
            assert_eq!(
                retire_step(&key, now, &config, &ours),
                expected,
                "{}",
                key.access_id
            );
        }
    }

    #[test]
    fn a_key_signs_after_its_warmup_and_until_its_rotation() {
        let keys = HmacKeys::new(
            config(),
            Arc::new(MetadataServer::new(
                "http://127.0.0.1:9",
                reqwest::Client::new(),
            )),
            reqwest::Client::new(),
        )
        .expect("keys");
        let made = datetime!(2026-11-25 12:00 UTC);
        let held = |serial, id: &str, created| {
            Arc::new(HeldKey {
                serial,
                access_id: id.into(),
                created,
                signer: Arc::new(UrlSigner::new(
                    Arc::new(HmacSigner::new(id.into(), "secret")),
                    Endpoint::default(),
                    UrlStyle::Path,
                )),
            })
        };
        keys.lock().push(held(1, "GOOG1FIRST", made));
        let serial = |at| keys.current_at(at).map(|(serial, _)| serial);
        assert_eq!(
            serial(made + time::Duration::seconds(59)),
            None,
            "warming up"
        );
        assert_eq!(serial(made + time::Duration::seconds(60)), Some(1));
        // The next key, made a warm-up before the rotation, takes over when warm.
        let next = made + time::Duration::hours(24) - time::Duration::seconds(60);
        keys.lock().push(held(2, "GOOG1NEXT", next));
        assert_eq!(serial(next + time::Duration::seconds(30)), Some(1));
        assert_eq!(serial(next + time::Duration::seconds(60)), Some(2));
        // Without a next key, the first stops at its rotation: signBlob signs meanwhile.
        keys.lock().pop();
        assert_eq!(
            serial(made + time::Duration::hours(24) + time::Duration::seconds(59)),
            Some(1)
        );
        assert_eq!(
            serial(made + time::Duration::hours(24) + time::Duration::seconds(60)),
            None
        );
    }

    #[test]
    fn projects_come_from_service_account_addresses() {
        assert_eq!(
            project_of("signer@my-proj.iam.gserviceaccount.com").as_deref(),
            Some("my-proj")
        );
        assert_eq!(
            project_of("123-compute@developer.gserviceaccount.com"),
            None
        );
        assert_eq!(project_of("no-at-sign"), None);
    }

    #[test]
    fn hostile_ids_stay_in_their_path_segment() {
        let keys = HmacKeys::new(
            config(),
            Arc::new(MetadataServer::new(
                "http://127.0.0.1:9",
                reqwest::Client::new(),
            )),
            reqwest::Client::new(),
        )
        .expect("keys");
        let url = keys.keys_url(Some("../../b/x?y=z#w"));
        assert_eq!(
            url.as_str(),
            "https://storage.googleapis.com/storage/v1/projects/p/hmacKeys/..%2F..%2Fb%2Fx%3Fy=z%23w"
        );
    }
}
