//! GCS signing: a local key (RSA or HMAC, signed on the rayon pool so the async workers never
//! block, re-read when its file is replaced) or keyless signing through IAM `signBlob`
//! (Workload Identity on GKE). Both sign exactly what [`prepare_url`] and
//! [`prepare_post_policy`] produce.

use super::on_pool;
use crate::cloud::{HmacKeys, IamSigner};
use crate::signing::{
    Algorithm, Endpoint, KeyFiles, PostPolicy, PostPolicyRequest, SignedUrl, Signer, SigningError,
    SigningIdentity, UrlRequest, UrlSigner, UrlStyle, prepare_post_policy, prepare_url,
};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// Longest URL lifetime with keyless signing: Google-managed keys are only guaranteed for 12 hours.
pub const KEYLESS_MAX_EXPIRY_SECONDS: u32 = 43_200;
/// Longest URL lifetime GCS V4 allows.
pub const V4_MAX_EXPIRY_SECONDS: u32 = 604_800;

/// Signs URLs and POST policies for the API.
#[derive(Clone, Debug)]
pub struct SigningService {
    backend: Arc<Backend>,
    /// Bumped when another key signs, so that nothing signed before is taken for its URL.
    generation: Arc<AtomicU64>,
}

#[derive(Debug)]
enum Backend {
    /// Swapped whole when the key file is replaced (a rotation).
    Local(arc_swap::ArcSwap<UrlSigner>),
    Keyless {
        iam: Arc<IamSigner>,
        identity: SigningIdentity,
        endpoint: Endpoint,
        style: UrlStyle,
        /// signBlob calls one batch keeps in flight.
        concurrency: usize,
        /// Fast keyless signing: the service account's own HMAC key, when it has one.
        fast: Option<Arc<HmacKeys>>,
    },
}

impl SigningService {
    /// Signs with a local key.
    pub fn local(signer: UrlSigner) -> Self {
        Self::with(Backend::Local(arc_swap::ArcSwap::from_pointee(signer)))
    }

    /// Signs with `key` from now on, for the same endpoint and URL style; URLs already handed
    /// out stay valid as long as the old key exists. Keyless signing has no key to replace.
    pub fn replace_key(&self, key: Arc<dyn Signer>) {
        if let Backend::Local(current) = &*self.backend {
            current.rcu(|signer| Arc::new(signer.with_key(key.clone())));
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Signs through IAM `signBlob`, or locally with an HMAC key of the service account from
    /// `fast` whenever it holds one; a batch keeps at most `concurrency` calls in flight.
    pub fn keyless(
        iam: Arc<IamSigner>,
        endpoint: Endpoint,
        style: UrlStyle,
        concurrency: usize,
        fast: Option<Arc<HmacKeys>>,
    ) -> Self {
        let identity = SigningIdentity {
            algorithm: Algorithm::RsaSha256,
            credential_id: iam.email().to_owned(),
        };
        Self::with(Backend::Keyless {
            iam,
            identity,
            endpoint,
            style,
            concurrency: concurrency.max(1),
            fast,
        })
    }

    fn with(backend: Backend) -> Self {
        Self {
            backend: Arc::new(backend),
            generation: Arc::default(),
        }
    }

    /// Which key signs: a new generation each time another key takes over.
    pub fn generation(&self) -> u64 {
        let fast = match &*self.backend {
            Backend::Keyless {
                fast: Some(fast), ..
            } => fast.current().map_or(0, |(serial, _)| serial),
            _ => 0,
        };
        self.generation.load(Ordering::Acquire) + (fast << 32)
    }

    /// The HMAC key of fast keyless signing, when it signs now.
    fn fast_signer(&self) -> Option<Arc<UrlSigner>> {
        match &*self.backend {
            Backend::Keyless {
                fast: Some(fast), ..
            } => fast.current().map(|(_, signer)| signer),
            _ => None,
        }
    }

    /// IAM's counts, when signing is keyless (for benchmarks).
    pub fn iam_counts(&self) -> Option<crate::cloud::IamCounts> {
        match &*self.backend {
            Backend::Keyless { iam, .. } => Some(iam.counts()),
            Backend::Local(_) => None,
        }
    }

    /// The local signer (none when signing is keyless, unless with the service account's HMAC
    /// key): what a batch signs with on the pool.
    pub(super) fn local_signer(&self) -> Option<Arc<UrlSigner>> {
        match &*self.backend {
            Backend::Local(signer) => Some(signer.load_full()),
            Backend::Keyless { .. } => self.fast_signer(),
        }
    }

    /// The local key that signs now (none when signing is keyless): what the control plane's
    /// OAuth tokens are minted with, so that a rotated key reaches them too.
    pub fn current_key(&self) -> Option<Arc<dyn Signer>> {
        match &*self.backend {
            Backend::Local(signer) => Some(signer.load().key()),
            Backend::Keyless { .. } => None,
        }
    }

    /// Who signs.
    pub fn identity(&self) -> SigningIdentity {
        match &*self.backend {
            Backend::Local(signer) => signer.load().identity().clone(),
            Backend::Keyless { identity, .. } => identity.clone(),
        }
    }

    /// The longest lifetime a URL may have with this backend.
    pub fn max_expiry_seconds(&self) -> u32 {
        match &*self.backend {
            Backend::Local(_) => V4_MAX_EXPIRY_SECONDS,
            Backend::Keyless { .. } => KEYLESS_MAX_EXPIRY_SECONDS,
        }
    }

    /// Signs one URL.
    pub async fn sign(
        &self,
        request: UrlRequest,
        at: OffsetDateTime,
    ) -> Result<SignedUrl, SigningError> {
        match &*self.backend {
            // Here, on this worker: see `on_pool`.
            Backend::Local(signer) => signer.load().sign(&request, at),
            Backend::Keyless {
                iam,
                identity,
                endpoint,
                style,
                ..
            } => {
                // An HMAC signature costs microseconds: signed right here.
                if let Some(fast) = self.fast_signer() {
                    return fast.sign(&request, at);
                }
                let prepared = prepare_url(identity, endpoint, style, &request, at)?;
                let signature = iam.sign_blob(prepared.string_to_sign().as_bytes()).await?;
                Ok(prepared.finish(&signature))
            }
        }
    }

    /// Signs many URLs, each at its time; results keep the input's order and fail one by one.
    pub async fn sign_all(
        &self,
        requests: Vec<(UrlRequest, OffsetDateTime)>,
    ) -> Vec<Result<SignedUrl, SigningError>> {
        match &*self.backend {
            Backend::Local(signer) => {
                let signer = signer.load_full();
                let count = requests.len();
                let signing = move || {
                    requests
                        .iter()
                        .map(|(request, at)| signer.sign(request, *at))
                        .collect()
                };
                match on_pool(signing).await {
                    Ok(results) => results,
                    Err(err) => (0..count)
                        .map(|_| Err(SigningError::Backend(err.to_string())))
                        .collect(),
                }
            }
            Backend::Keyless { concurrency, .. } => {
                futures::stream::iter(requests)
                    .map(|(request, at)| self.sign(request, at))
                    .buffered(*concurrency)
                    .collect()
                    .await
            }
        }
    }

    /// Signs a POST policy for an HTML form upload.
    pub async fn post_policy(
        &self,
        request: PostPolicyRequest,
        at: OffsetDateTime,
    ) -> Result<PostPolicy, SigningError> {
        match &*self.backend {
            Backend::Local(signer) => signer.load().post_policy(&request, at),
            Backend::Keyless {
                iam,
                identity,
                endpoint,
                style,
                ..
            } => {
                if let Some(fast) = self.fast_signer() {
                    return fast.post_policy(&request, at);
                }
                let prepared = prepare_post_policy(identity, endpoint, style, &request, at)?;
                let signature = iam.sign_blob(prepared.string_to_sign().as_bytes()).await?;
                Ok(prepared.finish(&signature))
            }
        }
    }
}

/// Re-reads the key files every `every`: a replaced first file (a rotated Kubernetes Secret)
/// signs from then on without a restart (URLs, and the control plane's tokens); when the first
/// cannot be read the second signs, and when none can, the key loaded before keeps signing.
/// `current` is the fingerprint of the key signing now.
pub fn reload_keys(
    files: KeyFiles,
    mut current: [u8; 32],
    signer: SigningService,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The key in use was read at start-up.
        let parts = &crate::telemetry::COMPONENTS;
        parts.signing_key_checked.set(crate::telemetry::unix_now());
        parts.signing_key_unreadable.set(0);
        loop {
            tokio::time::sleep(every).await;
            let reading = files.clone();
            let Ok((loaded, errors)) =
                tokio::task::spawn_blocking(move || reading.load_first()).await
            else {
                continue;
            };
            for error in &errors {
                tracing::warn!(%error, "a signing key file cannot be used");
            }
            let parts = &crate::telemetry::COMPONENTS;
            parts.signing_key_checked.set(crate::telemetry::unix_now());
            parts
                .signing_key_unreadable
                .set(i64::from(loaded.is_none()));
            match loaded {
                Some(key) if key.fingerprint != current => {
                    current = key.fingerprint;
                    tracing::info!(path = %key.path.display(), signer = %key.signer.identity().credential_id, "signing with a new key");
                    signer.replace_key(key.signer);
                }
                Some(_) => {}
                None => tracing::error!(
                    "no signing key file can be read; signing with the key loaded before"
                ),
            }
        }
    })
}
