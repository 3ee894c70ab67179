//! The issuer's signing keys: found through OIDC discovery, cached, refetched when a token names
//! an unknown `kid` (at most once per interval, one fetch at a time), and kept when the issuer
//! cannot be reached.

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// One usable key.
#[derive(Clone)]
pub struct VerificationKey {
    pub algorithm: Algorithm,
    pub key: Arc<DecodingKey>,
}

/// The keys by `kid`.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, VerificationKey>,
}

/// Where the keys come from and how often they may be fetched.
#[derive(Clone, Debug)]
pub struct JwksSource {
    pub issuer: String,
    /// Overrides the discovered `jwks_uri`.
    pub jwks_url: Option<String>,
    /// Shortest time between two fetches caused by unknown `kid`s.
    pub refetch_interval: Duration,
}

/// The cached key set.
pub struct KeyStore {
    source: JwksSource,
    http: reqwest::Client,
    current: ArcSwap<KeySet>,
    /// When the last fetch was tried, and the discovered JWKS address; held while fetching, so
    /// concurrent misses share one fetch.
    fetch: Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    jwks_url: Option<String>,
}

impl KeyStore {
    /// An empty store; call [`refresh`](Self::refresh) to load it.
    pub fn new(source: JwksSource, http: reqwest::Client) -> Self {
        let fetch = FetchState {
            last_attempt: None,
            jwks_url: source.jwks_url.clone(),
        };
        Self {
            source,
            http,
            current: ArcSwap::from_pointee(KeySet::default()),
            fetch: Mutex::new(fetch),
        }
    }

    /// Whether any key is loaded (readiness).
    pub fn has_keys(&self) -> bool {
        !self.current.load().keys.is_empty()
    }

    /// The key named `kid`; an unknown one triggers a refetch unless one was tried within the
    /// refetch interval.
    pub async fn key(&self, kid: &str) -> Option<VerificationKey> {
        if let Some(key) = self.current.load().keys.get(kid) {
            return Some(key.clone());
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.current.load().keys.get(kid) {
            return Some(key.clone());
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.source.refetch_interval)
        {
            return None;
        }
        if let Err(err) = self.fetch_locked(&mut state).await {
            tracing::warn!(error = %err, "JWKS refetch failed; keeping the cached keys");
        }
        self.current.load().keys.get(kid).cloned()
    }

    /// Fetches the key set now (start-up, periodic refresh). On failure the cached keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state).await
    }

    /// Fetches the key set, counting the outcome (`crate::telemetry`).
    async fn fetch_locked(&self, state: &mut FetchState) -> Result<usize, String> {
        let parts = &crate::telemetry::COMPONENTS;
        let fetched = self.fetch_once(state).await;
        match fetched {
            Ok(_) => {
                parts.jwks_refreshed.set(crate::telemetry::unix_now());
            }
            Err(_) => {
                parts.jwks_refresh_failures.inc();
            }
        }
        fetched
    }

    async fn fetch_once(&self, state: &mut FetchState) -> Result<usize, String> {
        state.last_attempt = Some(Instant::now());
        let url = match &state.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = self.discover().await?;
                state.jwks_url = Some(url.clone());
                url
            }
        };
        let set: JwkSet = self.get_json(&url).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let Some(algorithm) = algorithm_of(jwk) else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(
                        kid,
                        VerificationKey {
                            algorithm,
                            key: Arc::new(key),
                        },
                    );
                }
                Err(err) => tracing::warn!(kid, error = %err, "skipping unusable JWKS key"),
            }
        }
        if keys.is_empty() {
            return Err(format!("{url} holds no usable signing key"));
        }
        let count = keys.len();
        self.current.store(Arc::new(KeySet { keys }));
        tracing::info!(keys = count, "JWKS loaded");
        Ok(count)
    }

    async fn discover(&self) -> Result<String, String> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.source.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer.trim_end_matches('/') != self.source.issuer.trim_end_matches('/') {
            return Err(format!("discovery at {url} names issuer {:?}", doc.issuer));
        }
        Ok(doc.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let response = response
            .error_for_status()
            .map_err(|e| format!("GET {url}: {e}"))?;
        response.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

/// The key's algorithm: its `alg`, or the one its type implies.
fn algorithm_of(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            // Symmetric or encryption keys never verify a token here.
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}
