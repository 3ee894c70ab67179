//! The signing service the API signs through, one signer per configured backend, composed above
//! [`crate::signing`] (pure) and [`crate::cloud`] (I/O). The API plans an [`ObjectUrl`] —
//! what to sign, in no protocol's terms — and the bucket class's backend turns it into a GCS V4
//! URL, an S3 SigV4 presigned URL or an Azure SAS, with the headers the client must send.
//! A single URL is signed on the async worker that asks (microseconds with HMAC, a third of a
//! millisecond with RSA); batches are signed on rayon's pool ([`start_batch_pool`]).

mod gcs;
mod objects;
mod reuse;

pub use gcs::{KEYLESS_MAX_EXPIRY_SECONDS, SigningService, V4_MAX_EXPIRY_SECONDS, reload_keys};
pub use objects::{ObjectMethod, ObjectUrl, Upload};
pub use reuse::window_start;

use crate::cloud::DelegationKeys;
use crate::policy::BackendKind;
use crate::signing::{
    AzureSigner, BlobEndpoint, PostPolicy, PostPolicyRequest, S3Signer, SignedUrl, SigningError,
};
use rayon::prelude::*;
use reuse::{ReadReuse, ReuseKey};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Longest SAS lifetime the broker gives with an account key: the same week as V4 and SigV4.
pub const AZURE_MAX_EXPIRY_SECONDS: u32 = 604_800;

/// Signs for one backend.
#[derive(Clone, Debug)]
pub struct BackendSigner {
    kind: BackendKind,
    how: How,
    /// Reads signed in the current reuse window.
    reuse: ReadReuse,
}

#[derive(Clone, Debug)]
enum How {
    Gcs(SigningService),
    S3(Arc<S3Signer>),
    Azure(Arc<AzureSigner>),
    /// Keyless Azure: user-delegation keys fetched with the workload's Entra ID token and
    /// renewed in the background; no URL outlives the key that signs it.
    AzureDelegated(Arc<DelegationKeys>, BlobEndpoint),
}

impl BackendSigner {
    /// GCS, through the broker's GCS signing service.
    pub fn gcs(service: SigningService) -> Self {
        Self {
            kind: BackendKind::Gcs,
            how: How::Gcs(service),
            reuse: ReadReuse::default(),
        }
    }

    /// An S3 or S3-compatible store.
    pub fn s3(signer: Arc<S3Signer>) -> Self {
        Self {
            kind: BackendKind::S3,
            how: How::S3(signer),
            reuse: ReadReuse::default(),
        }
    }

    /// Azure Blob Storage, signing SAS with `signer`.
    pub fn azure(signer: AzureSigner) -> Self {
        Self {
            kind: BackendKind::Azure,
            how: How::Azure(Arc::new(signer)),
            reuse: ReadReuse::default(),
        }
    }

    /// Azure Blob Storage, keyless: user-delegation SAS with the current key of `keys`.
    pub fn azure_delegated(keys: Arc<DelegationKeys>, endpoint: BlobEndpoint) -> Self {
        Self {
            kind: BackendKind::Azure,
            how: How::AzureDelegated(keys, endpoint),
            reuse: ReadReuse::default(),
        }
    }

    /// `gcs-v4`, `s3-sigv4` or `azure-sas`: what the client speaks.
    pub fn protocol(&self) -> &'static str {
        self.kind.protocol()
    }

    /// The longest lifetime a URL may have with this signer.
    pub fn max_expiry_seconds(&self) -> u32 {
        match &self.how {
            How::Gcs(service) => service.max_expiry_seconds(),
            How::S3(_) => V4_MAX_EXPIRY_SECONDS,
            How::Azure(_) => AZURE_MAX_EXPIRY_SECONDS,
            // What is left of the current key's life (none: nothing can be signed).
            How::AzureDelegated(keys, _) => keys.current().map_or(0, |key| {
                let left = (key.expires_at - OffsetDateTime::now_utc()).whole_seconds();
                u32::try_from(left.max(0))
                    .unwrap_or(u32::MAX)
                    .min(AZURE_MAX_EXPIRY_SECONDS)
            }),
        }
    }

    /// Signs one URL at `now`; a read in a reuse window is the URL signed at the window's
    /// start, signed once per window.
    pub async fn sign(
        &self,
        url: ObjectUrl,
        now: OffsetDateTime,
    ) -> Result<SignedUrl, SigningError> {
        use tracing::Instrument;
        let span = crate::telemetry::traces::inner(|| {
            tracing::info_span!("sign", protocol = self.protocol())
        });
        async {
            match ReuseKey::of(&url, now, || self.generation()) {
                Some((key, at)) => self.reuse.get_or_sign(key, self.sign_at(url, at)).await,
                None => self.sign_at(url, now).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Signatures made for reusable reads, and reads answered without one (for benchmarks).
    pub fn reuse_counts(&self) -> (u64, u64) {
        self.reuse.counts()
    }

    /// Which key signs: a rotation makes a new generation, so no URL of the key before it is
    /// reused.
    fn generation(&self) -> u64 {
        match &self.how {
            How::Gcs(service) => service.generation(),
            How::AzureDelegated(keys, _) => keys
                .current()
                .map_or(0, |key| key.expires_at.unix_timestamp() as u64),
            How::S3(_) | How::Azure(_) => 0,
        }
    }

    /// Signs one URL at `at`. An S3 or Azure URL is an HMAC or two (about 2 µs): signed right
    /// here, as a hop to a signing pool would cost more than the signature.
    async fn sign_at(&self, url: ObjectUrl, at: OffsetDateTime) -> Result<SignedUrl, SigningError> {
        match &self.how {
            How::Gcs(service) => service.sign(url.for_gcs(), at).await,
            _ => self.sign_hmac(&url, at),
        }
    }

    /// Signs now on this thread, when the key is local: `gcs` is the GCS key of the batch
    /// (`None` when GCS signs keylessly, which is asynchronous: then `None`).
    fn sign_local(
        &self,
        url: &ObjectUrl,
        at: OffsetDateTime,
        gcs: Option<&crate::signing::UrlSigner>,
    ) -> Option<Result<SignedUrl, SigningError>> {
        match &self.how {
            How::Gcs(_) => gcs.map(|signer| signer.sign(&url.for_gcs(), at)),
            _ => Some(self.sign_hmac(url, at)),
        }
    }

    /// Signs an S3 or Azure URL.
    fn sign_hmac(&self, url: &ObjectUrl, at: OffsetDateTime) -> Result<SignedUrl, SigningError> {
        match &self.how {
            How::Gcs(_) => Err(SigningError::Backend(
                "GCS signs through its signing service".into(),
            )),
            How::S3(signer) => signer.sign(&url.for_s3()?, at),
            How::Azure(signer) => Self::sign_sas(signer, url, &url.for_azure(at)?),
            How::AzureDelegated(keys, endpoint) => {
                let key = keys.current().ok_or_else(|| {
                    SigningError::Unavailable("no current Azure user-delegation key".into())
                })?;
                let request = url.for_azure(at)?;
                if request.expiry > key.expires_at {
                    return Err(SigningError::UnsupportedByBackend(format!(
                        "the URL would outlive the Azure delegation key signing it (until {}): ask for a shorter expires_in",
                        crate::signing::rfc3339_seconds(key.expires_at)
                    )));
                }
                let signer = AzureSigner::new(key.sas_key(), endpoint.clone());
                Self::sign_sas(&signer, url, &request)
            }
        }
    }

    fn sign_sas(
        signer: &AzureSigner,
        url: &ObjectUrl,
        request: &crate::signing::BlobSasRequest,
    ) -> Result<SignedUrl, SigningError> {
        let sas = signer.sign(request)?;
        Ok(SignedUrl {
            url: sas.url,
            method: url.method.http(),
            expires_at: sas.expires_at,
            headers: url.azure_headers(),
        })
    }

    /// Signs a POST policy for an HTML form upload (GCS and S3; Azure has no form uploads).
    pub async fn post_policy(
        &self,
        request: PostPolicyRequest,
        at: OffsetDateTime,
    ) -> Result<PostPolicy, SigningError> {
        match &self.how {
            How::Gcs(service) => service.post_policy(request, at).await,
            // One HMAC, signed here as for URLs.
            How::S3(signer) => signer.post_policy(&request, at),
            How::Azure(_) | How::AzureDelegated(..) => Err(SigningError::UnsupportedByBackend(
                "Azure Blob Storage has no HTML form uploads: sign a PUT (POST /v1/sign) instead"
                    .into(),
            )),
        }
    }
}

/// Every backend's signer, by backend name.
#[derive(Clone, Debug)]
pub struct Signers {
    gcs: SigningService,
    by_name: Arc<HashMap<String, Arc<BackendSigner>>>,
}

impl Signers {
    /// The broker's GCS signing service (signs the `gcs` backend), and the other backends'.
    pub fn new(gcs: SigningService, others: HashMap<String, Arc<BackendSigner>>) -> Self {
        let mut by_name = others;
        by_name
            .entry(crate::policy::DEFAULT_BACKEND.to_owned())
            .or_insert_with(|| Arc::new(BackendSigner::gcs(gcs.clone())));
        Self {
            gcs,
            by_name: Arc::new(by_name),
        }
    }

    /// The GCS signing service (key rotation, the control plane's tokens, readiness).
    pub fn gcs(&self) -> &SigningService {
        &self.gcs
    }

    /// The signer of backend `name`.
    pub fn backend(&self, name: &str) -> Option<&Arc<BackendSigner>> {
        self.by_name.get(name)
    }

    /// Signs many URLs at `now`, each with its backend's signer; results keep the input's
    /// order and fail one by one. Reads already signed in their reuse window are answered from
    /// it; local keys sign the rest on all cores; keyless GCS signing keeps its calls in flight.
    pub async fn sign_all(
        &self,
        items: Vec<(Arc<BackendSigner>, ObjectUrl)>,
        now: OffsetDateTime,
    ) -> Vec<Result<SignedUrl, SigningError>> {
        let count = items.len();
        let mut results: Vec<Option<Result<SignedUrl, SigningError>>> =
            (0..count).map(|_| None).collect();
        let mut todo = Vec::with_capacity(count);
        for (slot, (signer, url)) in items.into_iter().enumerate() {
            match ReuseKey::of(&url, now, || signer.generation()) {
                Some((key, at)) => match signer.reuse.get(&key).await {
                    Some(url) => results[slot] = Some(Ok(url)),
                    None => todo.push(Unsigned {
                        slot,
                        signer,
                        url,
                        at,
                        key: Some(key),
                    }),
                },
                None => todo.push(Unsigned {
                    slot,
                    signer,
                    url,
                    at: now,
                    key: None,
                }),
            }
        }
        let gcs = self.gcs.local_signer();
        let local = on_pool(move || {
            todo.into_par_iter()
                .with_min_len(32)
                .map(|item| {
                    let signed = item.signer.sign_local(&item.url, item.at, gcs.as_deref());
                    (item, signed)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let signed = match local {
            Ok(signed) => signed,
            Err(err) => {
                return (0..count)
                    .map(|_| Err(SigningError::Backend(err.to_string())))
                    .collect();
            }
        };
        // What is left is keyless GCS: through IAM, calls in flight together.
        let mut fresh = Vec::new();
        let mut keyless = Vec::new();
        for (item, outcome) in signed {
            match outcome {
                Some(result) => fresh.push((item, result)),
                None => keyless.push(item),
            }
        }
        if !keyless.is_empty() {
            let requests = keyless
                .iter()
                .map(|item| (item.url.for_gcs(), item.at))
                .collect();
            let signed = self.gcs.sign_all(requests).await;
            fresh.extend(keyless.into_iter().zip(signed));
        }
        for (item, result) in fresh {
            if let (Some(key), Ok(url)) = (item.key, &result) {
                item.signer.reuse.insert(key, url).await;
            }
            results[item.slot] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SigningError::Backend("not signed".into()))))
            .collect()
    }
}

/// A URL of a batch still to sign, at `at`, and where its answer goes.
struct Unsigned {
    slot: usize,
    signer: Arc<BackendSigner>,
    url: ObjectUrl,
    at: OffsetDateTime,
    /// Where the URL is kept for the rest of its reuse window.
    key: Option<ReuseKey>,
}

/// Starts rayon's global pool, where batches are signed, with threads named `batch-signer-N`
/// in Linux's idle scheduling class: they take only CPU that nothing else wants, and any other
/// thread that wakes up (an async worker with a single URL, PostgreSQL, the listing's backend)
/// takes the core from them at once. At equal priority a batch of 100 RSA URLs (30 ms of CPU)
/// held both cores for whole scheduler slices, and every single URL answered meanwhile waited
/// (BENCHMARKS.md, "Tail latency"). The price: on a replica whose cores are saturated, batches
/// get what is left. Called before the first batch; later calls change nothing.
pub fn start_batch_pool() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("batch-signer-{i}"))
        .start_handler(|_| idle_priority())
        .build_global();
}

/// Moves the calling thread (not the process) to the idle scheduling class.
#[cfg(target_os = "linux")]
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the calling
    // thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot move a batch signing thread to the idle scheduling class");
    }
}

#[cfg(not(target_os = "linux"))]
fn idle_priority() {}

/// Runs `work` (a batch's signatures) on rayon's pool, spread over every core, and waits for
/// it without blocking the async worker. One URL or one policy is signed where it is asked
/// for: handing it to a pool thread and back cost more CPU than an HMAC signature and a
/// tenth of an RSA one (context switches, the pool's idle spinning; BENCHMARKS.md, "Cost per
/// request").
pub(crate) async fn on_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SigningError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(work());
    });
    rx.await
        .map_err(|_| SigningError::Backend("a signing task panicked".into()))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn batches_are_signed_on_named_threads_of_the_idle_class() {
        super::start_batch_pool();
        let (tx, rx) = std::sync::mpsc::channel();
        rayon::spawn(move || {
            // SAFETY: no arguments but the calling thread's id (0).
            let policy = unsafe { libc::sched_getscheduler(0) };
            let name = std::thread::current().name().map(str::to_owned);
            tx.send((policy, name)).expect("send");
        });
        let (policy, name) = rx.recv().expect("the pool ran the task");
        assert_eq!(policy, libc::SCHED_IDLE);
        assert!(name.is_some_and(|n| n.starts_with("batch-signer-")));
        // The caller's own thread keeps its class.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }
}
