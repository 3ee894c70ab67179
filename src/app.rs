//! Builds the service from a [`Config`]: `serve`, the tests and `dev` all start it this way.

use crate::api::{AppState, Services, router};
use crate::backends::{ControlPlane, Gcs};
use crate::cloud::vend::Vendor;
use crate::cloud::vend::gcs::{Downscoper, SourceTokens};
use crate::cloud::{
    GOOGLE_TOKEN_URI, HmacKeyConfig, HmacKeys, IamSigner, MetadataServer, ServiceAccountTokens,
};
use crate::config::Config;
use crate::identity::{JwksSource, KeyStore, TokenRules, TokenVerifier};
use crate::policy::Policies;
use crate::signer::{BackendSigner, Signers, SigningService, reload_keys};
use crate::signing::{Algorithm, Endpoint, KeyFiles, UrlSigner, UrlStyle};
use crate::store::{AuditLog, AuditWriters, DecisionCache, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Why the service could not start; the message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct StartError {
    pub setting: &'static str,
    pub message: String,
}

fn start_error(setting: &'static str, message: impl ToString) -> StartError {
    StartError {
        setting,
        message: message.to_string(),
    }
}

/// Signers, control planes and credential vendors by backend name, and the tasks that renew
/// Azure delegation keys.
struct Backends {
    signers: std::collections::HashMap<String, Arc<BackendSigner>>,
    control_planes: std::collections::HashMap<String, ControlPlane>,
    vendors: std::collections::HashMap<String, Arc<Vendor>>,
    renewing: Vec<tokio::task::JoinHandle<()>>,
}

/// GCS signing as configured: with the key files, or keyless (with HMAC keys when asked), and
/// what the control plane and credential vending need of it.
struct GcsSigning {
    signer: SigningService,
    metadata: Option<Arc<crate::cloud::MetadataServer>>,
    key: Option<crate::signing::LoadedKey>,
    fast_keys: Option<Arc<crate::cloud::HmacKeys>>,
    keyless_email: Option<String>,
}

async fn gcs_signing(
    config: &Config,
    endpoint: &Endpoint,
    key_files: &KeyFiles,
    http: &reqwest::Client,
) -> Result<GcsSigning, StartError> {
    let mut keyless_email = None;
    let mut fast_keys = None;
    let (signer, metadata, key) = if config.signing_credentials.is_empty() {
        let (iam, metadata) = keyless_signer(&config.keyless, http.clone()).await?;
        keyless_email = Some(iam.email().to_owned());
        if config.keyless.hmac {
            let keys = hmac_keys(config, &iam, endpoint, http.clone()).await?;
            fast_keys = Some(keys);
        }
        let signer = SigningService::keyless(
            iam,
            endpoint.clone(),
            UrlStyle::Path,
            config.keyless.concurrency,
            fast_keys.clone(),
        );
        (signer, Some(metadata), None)
    } else {
        let key = key_files
            .load_all()
            .map_err(|e| start_error("BROKER_SIGNING_CREDENTIALS", e))?;
        let signer = SigningService::local(UrlSigner::new(
            key.signer.clone(),
            endpoint.clone(),
            UrlStyle::Path,
        ));
        (signer, None, Some(key))
    };
    Ok(GcsSigning {
        signer,
        metadata,
        key,
        fast_keys,
        keyless_email,
    })
}

/// What building the service and its signers starts from: the policies, the GCS endpoint, the
/// HTTP client for issuers and clouds, the key files.
fn start_inputs(
    config: &Config,
) -> Result<(Policies, Endpoint, reqwest::Client, KeyFiles), StartError> {
    let policies =
        Policies::load(&config.policies_dir).map_err(|e| start_error("BROKER_POLICIES_DIR", e))?;
    let endpoint = config
        .storage_endpoint
        .as_ref()
        .map_or_else(Endpoint::default, |s| s.endpoint.clone());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| start_error("BROKER_OIDC_ISSUER", e))?;
    Ok((
        policies,
        endpoint,
        http,
        KeyFiles::new(config.signing_credentials.clone()),
    ))
}

/// Every backend's signer as `serve` makes them, for commands that sign as the broker
/// (`audit maintain`'s exports); with the tasks that renew Azure delegation keys.
pub async fn signers(
    config: &Config,
) -> Result<(Signers, Vec<tokio::task::JoinHandle<()>>), StartError> {
    let (policies, endpoint, http, key_files) = start_inputs(config)?;
    let gcs = gcs_signing(config, &endpoint, &key_files, &http).await?;
    let export = config.audit.export.as_ref().map(|e| e.backend.as_str());
    let backends = other_backends(&policies, &http, export).await?;
    Ok((
        Signers::new(gcs.signer, backends.signers),
        backends.renewing,
    ))
}

/// A signer and a control plane for every S3 and Azure backend a class is on (and `also`, when
/// it names one no class is on), their credentials read now: a missing or unreadable key stops
/// the start, naming the backend.
async fn other_backends(
    policies: &Policies,
    http: &reqwest::Client,
    also: Option<&str>,
) -> Result<Backends, StartError> {
    use crate::backends::azure::{AzureAuth, AzureControl};
    use crate::cloud::vend::{azure::ContainerSas, azure::SasKeys, s3::AssumeRole};
    use crate::cloud::{DelegationKeys, EntraTokens, MAX_KEY_LIFETIME, WorkloadIdentity};
    use crate::policy::{BackendSettings, CredentialSource};
    use crate::signing::{AzureCredentials, AzureSigner, S3Credentials, S3Signer, SasKey};
    let mut signers = std::collections::HashMap::new();
    let mut control_planes = std::collections::HashMap::new();
    let mut vendors = std::collections::HashMap::new();
    let mut renewing = Vec::new();
    let mut wanted: Vec<_> = policies.classes.backends_in_use().collect();
    if let Some(extra) = also.and_then(|name| policies.classes.backend(name))
        && !wanted.iter().any(|b| b.name == extra.name)
    {
        wanted.push(extra);
    }
    for backend in wanted {
        let failed = |message: String| {
            start_error(
                "BROKER_POLICIES_DIR",
                format!("classes.toml: backend {:?}: {message}", backend.name),
            )
        };
        let env = |name: &str| {
            std::env::var(name).map_err(|_| failed(format!("credentials = \"env\" needs {name}")))
        };
        let signer = match &backend.settings {
            BackendSettings::Gcs => continue,
            BackendSettings::S3 {
                endpoint,
                region,
                url_style,
                credentials,
                vending,
            } => {
                let credentials = match credentials {
                    CredentialSource::File(path) => S3Credentials::load(path),
                    CredentialSource::Env => S3Credentials::new(
                        env("AWS_ACCESS_KEY_ID")?,
                        env("AWS_SECRET_ACCESS_KEY")?,
                        std::env::var("AWS_SESSION_TOKEN").ok(),
                    ),
                    other => return Err(failed(format!("credentials {other:?} cannot sign S3"))),
                }
                .map_err(|e| failed(e.to_string()))?;
                if let Some(vending) = vending {
                    let sts = crate::signing::Endpoint::custom(
                        &vending.sts_endpoint,
                        crate::signing::Scheme::Https,
                    )
                    .and_then(|sts| S3Signer::new(credentials.clone(), region, sts, UrlStyle::Path))
                    .map_err(|e| failed(format!("vend_sts_endpoint: {e}")))?
                    .for_service("sts");
                    vendors.insert(
                        backend.name.clone(),
                        Arc::new(Vendor::S3(AssumeRole::new(
                            sts,
                            vending.role_arn.clone(),
                            http.clone(),
                        ))),
                    );
                }
                let signer =
                    S3Signer::new(credentials, region, endpoint.clone(), url_style.clone())
                        .map_err(|e| failed(e.to_string()))?;
                let signer = Arc::new(signer);
                control_planes.insert(
                    backend.name.clone(),
                    ControlPlane::S3(crate::backends::s3::S3Control::new(
                        signer.clone(),
                        http.clone(),
                    )),
                );
                BackendSigner::s3(signer)
            }
            BackendSettings::Azure {
                account,
                endpoint,
                credentials,
            } => {
                let credentials = match credentials {
                    CredentialSource::File(path) => AzureCredentials::load(path),
                    CredentialSource::Env => {
                        AzureCredentials::new(account, &env("AZURE_STORAGE_KEY")?)
                    }
                    CredentialSource::EntraId => {
                        let identity = WorkloadIdentity::from_env()
                            .map_err(|e| failed(e.to_string()))?
                            .ok_or_else(|| {
                                failed(
                                    "credentials = \"entra-id\" needs Azure Workload Identity: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE".into(),
                                )
                            })?;
                        let tokens = Arc::new(EntraTokens::new(identity, http.clone()));
                        let (keys, renewer) = DelegationKeys::start(
                            account,
                            endpoint.clone(),
                            tokens.clone(),
                            http.clone(),
                            MAX_KEY_LIFETIME,
                        )
                        .await
                        .map_err(|e| failed(format!("no user-delegation key: {e}")))?;
                        renewing.push(renewer);
                        vendors.insert(
                            backend.name.clone(),
                            Arc::new(Vendor::Azure(ContainerSas::new(
                                SasKeys::Delegated(keys.clone()),
                                endpoint.clone(),
                            ))),
                        );
                        control_planes.insert(
                            backend.name.clone(),
                            ControlPlane::Azure(AzureControl::new(
                                AzureAuth::Entra(tokens),
                                endpoint.clone(),
                                http.clone(),
                            )),
                        );
                        signers.insert(
                            backend.name.clone(),
                            Arc::new(BackendSigner::azure_delegated(keys, endpoint.clone())),
                        );
                        continue;
                    }
                    CredentialSource::Broker => {
                        return Err(failed("an Azure backend needs credentials".into()));
                    }
                }
                .map_err(|e| failed(e.to_string()))?;
                if credentials.account != *account {
                    return Err(failed(format!(
                        "the key file is for account {:?}, the backend for {account:?}",
                        credentials.account
                    )));
                }
                control_planes.insert(
                    backend.name.clone(),
                    ControlPlane::Azure(AzureControl::new(
                        AzureAuth::SharedKey(credentials.clone()),
                        endpoint.clone(),
                        http.clone(),
                    )),
                );
                vendors.insert(
                    backend.name.clone(),
                    Arc::new(Vendor::Azure(ContainerSas::new(
                        SasKeys::Account(Box::new(SasKey::Account(credentials.clone()))),
                        endpoint.clone(),
                    ))),
                );
                BackendSigner::azure(AzureSigner::new(
                    SasKey::Account(credentials),
                    endpoint.clone(),
                ))
            }
        };
        signers.insert(backend.name.clone(), Arc::new(signer));
    }
    Ok(Backends {
        signers,
        control_planes,
        vendors,
        renewing,
    })
}

/// The service, bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Routes served beside the API (the dev token issuer).
    extra_routes: Option<axum::Router>,
    /// CORS for browser apps calling the API directly.
    cors: Option<tower_http::cors::CorsLayer>,
    shutdown_timeout: Duration,
    /// Tasks stopped at shutdown, last first.
    background: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    audit_writers: AuditWriters,
}

impl Application {
    /// Loads policies and the signing key, opens the database (lazily), loads the issuer's keys
    /// (or keeps trying, not ready meanwhile) and binds the listener.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let (policies, endpoint, http, key_files) = start_inputs(config)?;
        let GcsSigning {
            signer,
            metadata,
            key,
            fast_keys,
            keyless_email,
        } = gcs_signing(config, &endpoint, &key_files, &http).await?;
        tracing::info!(signer = %signer.identity().credential_id, keyless = metadata.is_some(), "signing");

        let store = Store::connect_lazy(
            config.database_url.expose(),
            config.database_direct_url.as_ref().map(|u| u.expose()),
            config.db_max_connections,
        )
        .map_err(|e| start_error("DATABASE_URL", e))?;
        if config.migrate_on_start {
            // On a connection of its own, made now: its error says why the database cannot be
            // reached (the lazy pool would only say it timed out).
            let mut connection =
                Store::connect_now(config.session_database_url(), Duration::from_secs(10))
                    .await
                    .map_err(|e| start_error("DATABASE_URL", format!("cannot connect: {e}")))?;
            Store::migrate_connection(&mut connection)
                .await
                .map_err(|e| start_error("BROKER_MIGRATE", format!("migrations failed: {e}")))?;
        }

        let oidc = &config.oidc;
        let keys = KeyStore::new(
            JwksSource {
                issuer: oidc.issuer.clone(),
                jwks_url: oidc.jwks_url.clone(),
                refetch_interval: oidc.refetch_interval,
            },
            http.clone(),
        );
        if let Err(err) = keys.refresh().await {
            tracing::warn!(error = %err, "issuer keys not loaded yet; not ready until they are");
        }
        let rules = TokenRules {
            issuer: oidc.issuer.clone(),
            audiences: oidc.audiences.clone(),
            algorithms: oidc.algorithms.clone(),
            client_id: oidc.client_id.clone(),
            leeway: oidc.leeway_seconds,
            clearance_claim: oidc.clearance_claim.clone(),
        };
        let mut storage = std::collections::HashMap::new();
        let gcs = match (&config.storage_endpoint, &key, &metadata) {
            (Some(storage), _, _) => {
                Some(ControlPlane::Gcs(Gcs::emulator(&storage.url, http.clone())))
            }
            // The key read once for signing mints the control plane's tokens too, so that a
            // rotated key reaches both. An HMAC key cannot get OAuth tokens: no control plane.
            (None, Some(key), _) if key.signer.identity().algorithm == Algorithm::RsaSha256 => {
                let service = signer.clone();
                let tokens = ServiceAccountTokens::new(
                    Arc::new(move || service.current_key()),
                    key.token_uri.as_deref().unwrap_or(GOOGLE_TOKEN_URI),
                    http.clone(),
                );
                Some(ControlPlane::Gcs(Gcs::google(tokens, http.clone())))
            }
            (None, Some(_), _) => None,
            (None, None, Some(metadata)) => Some(ControlPlane::Gcs(Gcs::keyless(
                metadata.clone(),
                http.clone(),
            ))),
            (None, None, None) => None,
        };
        storage.extend(gcs.map(|gcs| (crate::policy::DEFAULT_BACKEND.to_owned(), gcs)));
        let Backends {
            signers: others,
            control_planes,
            mut vendors,
            renewing,
        } = other_backends(&policies, &http, None).await?;
        storage.extend(control_planes);
        // Downscoped tokens as the service account that signs: with its key, or keyless.
        let google_identity = match (&key, &metadata, keyless_email) {
            (Some(key), _, _) if key.signer.identity().algorithm == Algorithm::RsaSha256 => {
                let service = signer.clone();
                let tokens = ServiceAccountTokens::new(
                    Arc::new(move || service.current_key()),
                    key.token_uri.as_deref().unwrap_or(GOOGLE_TOKEN_URI),
                    http.clone(),
                );
                Some((
                    SourceTokens::ServiceAccount(tokens),
                    key.signer.identity().credential_id.clone(),
                ))
            }
            (None, Some(metadata), Some(email)) => {
                Some((SourceTokens::Metadata(metadata.clone()), email))
            }
            _ => None,
        };
        if let Some((source, email)) = google_identity {
            let downscoper = Downscoper::new(
                source,
                email,
                &config.keyless.iam_credentials_url,
                &format!("{}/v1/token", config.keyless.sts_url.trim_end_matches('/')),
                http.clone(),
            );
            vendors.insert(
                crate::policy::DEFAULT_BACKEND.to_owned(),
                Arc::new(Vendor::Gcs(downscoper)),
            );
        }
        let signers = Signers::new(signer.clone(), others);
        // Background tasks, in the order shutdown stops them; the audit writers stop last.
        let mut background: Vec<(&'static str, tokio::task::JoinHandle<()>)> = renewing
            .into_iter()
            .map(|task| ("Azure delegation key renewal", task))
            .collect();
        let (audit, audit_writers) = AuditLog::start(store.clone());
        let cache = DecisionCache::new();
        background.push(("change feed", cache.listen(store.clone())));
        background.push(("audit partitions", audit_partitions(store.clone())));
        let (rate_limit, forgetting) = rate_limiter(config.rate_limit).unzip();
        background.extend(forgetting.map(|task| ("rate-limit cleanup", task)));
        let console_csp =
            crate::api::console::content_security_policy(&crate::api::console::storage_origins(
                &policies,
                config.storage_endpoint.as_ref().map(|s| s.url.as_str()),
            ));
        let state = AppState::new(Services {
            store,
            audit,
            verifier: TokenVerifier::new(rules, keys),
            policies,
            signers,
            admin_role: config.admin_role.clone(),
            metrics: Default::default(),
            cache,
            storage,
            vendors,
            credentials: Default::default(),
            gcs_endpoint: config.storage_endpoint.as_ref().map(|s| s.url.clone()),
            read_reuse: config.read_reuse,
            rate_limit,
            page_tokens: Default::default(),
            console_csp,
        });

        if let Some(keys) = fast_keys {
            background.push(("HMAC key rotation", keys.spawn()));
        }
        if let Some(key) = key {
            background.push((
                "key reloader",
                reload_keys(
                    key_files,
                    key.fingerprint,
                    signer.clone(),
                    config.signing_reload,
                ),
            ));
        }

        let refresh_every = oidc.refresh_interval;
        let refresher = state.clone();
        let refreshing = tokio::spawn(async move {
            loop {
                // Quickly while no key is loaded, then at the configured pace.
                let pause = if refresher.verifier.keys().has_keys() {
                    refresh_every
                } else {
                    Duration::from_secs(2)
                };
                tokio::time::sleep(pause).await;
                if let Err(err) = refresher.verifier.keys().refresh().await {
                    tracing::warn!(error = %err, "JWKS refresh failed; keeping the cached keys");
                }
            }
        });
        background.push(("JWKS refresher", refreshing));

        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            start_error(
                "BROKER_LISTEN",
                format!("cannot listen on {}: {e}", config.listen),
            )
        })?;
        Ok(Self {
            listener,
            state,
            extra_routes: None,
            cors: cors_layer(&config.cors_origins),
            shutdown_timeout: config.shutdown_timeout,
            background,
            audit_writers,
        })
    }

    /// Serves `routes` beside the API.
    pub fn with_routes(mut self, routes: axum::Router) -> Self {
        self.extra_routes = Some(routes);
        self
    }

    /// The address it listens on (port 0 picks a free one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests reach the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for at most the
    /// configured shutdown timeout.
    ///
    /// Then it stops what runs in the background, in order: the JWKS refresher, the key
    /// reloader, the rate limiter's cleanup and the change feed; last the audit writers, once
    /// every request that could still write a row is gone, after they have committed what is
    /// queued (for at most the shutdown timeout again).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let draining = Arc::new(Notify::new());
        let signal = draining.clone();
        let mut routes = router(self.state);
        if let Some(extra) = self.extra_routes {
            routes = extra.merge(routes);
        }
        if let Some(cors) = self.cors {
            routes = routes.layer(cors);
        }
        let server = axum::serve(self.listener, routes).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            signal.notify_one();
        });
        let timeout = self.shutdown_timeout;
        let served = tokio::select! {
            result = server.into_future() => result,
            () = async { draining.notified().await; tokio::time::sleep(timeout).await } => {
                tracing::warn!(?timeout, "shutdown timeout reached; dropping requests still in flight");
                Ok(())
            }
        };
        for (name, task) in self.background.into_iter().rev() {
            task.abort();
            let _ = task.await;
            tracing::debug!(task = name, "stopped");
        }
        // The server and the refresher held the last senders of the audit log: the writers
        // commit what is queued and stop.
        if self.audit_writers.drained(timeout).await {
            tracing::info!("audit log drained; stopped");
        } else {
            tracing::warn!(
                ?timeout,
                "audit writers still busy: requests were still in flight"
            );
        }
        served
    }
}

/// A limiter of `per_second` requests per subject with bursts of `burst`; forgets idle subjects
/// every minute so that its memory follows the active callers.
fn rate_limiter(
    limit: Option<(u32, u32)>,
) -> Option<(Arc<crate::api::SubjectLimiter>, tokio::task::JoinHandle<()>)> {
    let (per_second, burst) = limit?;
    let quota = governor::Quota::per_second(std::num::NonZeroU32::new(per_second)?)
        .allow_burst(std::num::NonZeroU32::new(burst)?);
    let limiter = Arc::new(governor::RateLimiter::keyed(quota));
    let weak = Arc::downgrade(&limiter);
    let forgetting = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let Some(limiter) = weak.upgrade() else { break };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
    Some((limiter, forgetting))
}

/// Answers preflights and adds CORS headers for `origins` (none: no CORS at all). Bearer tokens,
/// not cookies, authenticate callers, so credentials are not allowed.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Keyless signing: the service account from `BROKER_SIGNING_SERVICE_ACCOUNT` or the metadata
/// server (tried for `BROKER_METADATA_WAIT_SECONDS`: on a fresh GKE node it may answer late).
async fn keyless_signer(
    config: &crate::config::KeylessConfig,
    http: reqwest::Client,
) -> Result<(Arc<IamSigner>, Arc<MetadataServer>), StartError> {
    let metadata = Arc::new(MetadataServer::new(&config.metadata_url, http.clone()));
    let email = match &config.service_account {
        Some(email) => email.clone(),
        None => {
            let deadline = tokio::time::Instant::now() + config.metadata_wait;
            loop {
                match metadata.email().await {
                    Ok(email) => break email,
                    Err(err) if tokio::time::Instant::now() >= deadline => {
                        return Err(start_error(
                            "BROKER_SIGNING_CREDENTIALS",
                            format!(
                                "not set, so signing is keyless, but no service account comes from BROKER_METADATA_URL ({err}); give a key file, or run with Workload Identity"
                            ),
                        ));
                    }
                    Err(_) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
                    }
                }
            }
        }
    };
    let iam = IamSigner::new(
        &config.iam_credentials_url,
        email,
        metadata.clone(),
        http,
        config.concurrency,
        config.quota_per_minute,
    );
    Ok((Arc::new(iam), metadata))
}

/// Fast keyless signing: the service account's HMAC keys, in its project (from
/// `BROKER_GOOGLE_PROJECT`, the metadata server, or the service account's address), through the
/// JSON API at `BROKER_STORAGE_ENDPOINT` or Google's.
async fn hmac_keys(
    config: &Config,
    iam: &IamSigner,
    endpoint: &Endpoint,
    http: reqwest::Client,
) -> Result<Arc<HmacKeys>, StartError> {
    let keyless = &config.keyless;
    let project = match &keyless.project {
        Some(project) => project.clone(),
        None => match iam.metadata().project_id().await {
            Ok(project) => project,
            Err(err) => crate::cloud::project_of(iam.email()).ok_or_else(|| {
                start_error(
                    "BROKER_GOOGLE_PROJECT",
                    format!("not set, and the project of {} is unknown ({err}): name the project of the service account", iam.email()),
                )
            })?,
        },
    };
    let api = config
        .storage_endpoint
        .as_ref()
        .map_or("https://storage.googleapis.com", |s| s.url.as_str());
    let keys = HmacKeys::new(
        HmacKeyConfig {
            api: api.to_owned(),
            project,
            service_account: iam.email().to_owned(),
            rotation: keyless.hmac_rotation,
            longest_url: Duration::from_secs(u64::from(crate::signer::KEYLESS_MAX_EXPIRY_SECONDS)),
            warmup: keyless.hmac_warmup,
            endpoint: endpoint.clone(),
            style: UrlStyle::Path,
        },
        iam.metadata().clone(),
        http,
    )
    .map_err(|e| start_error("BROKER_STORAGE_ENDPOINT", e))?;
    Ok(Arc::new(keys))
}

/// Completes on SIGINT or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// SIGTERM that arrives in between would otherwise end the process at once, with no cleanup
/// (`dev` would leave its throwaway PostgreSQL running). Call it inside the runtime.
/// Keeps the audit's daily partitions made a week ahead: now (the database may still be down,
/// then again a minute later) and every hour. The audit writer makes a missing one by itself
/// too; this keeps that off the request path.
fn audit_partitions(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pause = match store
                .ensure_audit_partitions_around(time::OffsetDateTime::now_utc())
                .await
            {
                Ok(made) => {
                    if made > 0 {
                        tracing::info!(made, "audit partitions made ahead");
                    }
                    Duration::from_secs(3600)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot make the audit partitions ahead yet");
                    Duration::from_secs(60)
                }
            };
            tokio::time::sleep(pause).await;
        }
    })
}

pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (interrupt, terminate) = handlers;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { () = wait(interrupt) => {}, () = wait(terminate) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
