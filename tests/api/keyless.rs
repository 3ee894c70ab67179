//! Keyless signing (no `BROKER_SIGNING_CREDENTIALS`): tokens from a metadata server, signatures
//! from IAM Credentials `signBlob`, both faked on loopback by a server that checks what it is
//! sent and signs with the fixture key, so keyless URLs can be compared with locally signed ones.

use crate::helpers::{TestApp, expect_problem, repo, signed_at};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use storage_broker::signing::{
    BucketName, Endpoint, Method, ObjectName, UrlRequest, UrlSigner, UrlStyle, load_signer,
    rsa_key_from_pem,
};

const EMAIL: &str = "signer@storage-broker-test.iam.gserviceaccount.com";

#[derive(Default)]
struct Seen {
    tokens_issued: AtomicUsize,
    signed: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Answer 503 to this many signBlob calls before answering properly.
    fail_next: AtomicUsize,
    /// Answer every signBlob call with 403 (no Token Creator role).
    deny: std::sync::atomic::AtomicBool,
    /// Milliseconds each signBlob and JSON API call takes (default 10).
    latency_ms: AtomicU64,
    /// signBlob calls allowed per wall-clock second, 429 past it (0: no quota).
    quota_per_second: AtomicUsize,
    /// The current second and the calls made in it.
    window: std::sync::Mutex<(u64, usize)>,
    throttled: AtomicUsize,
    /// The service account's HMAC keys, as the JSON API holds them.
    hmac_keys: std::sync::Mutex<Vec<FakeHmacKey>>,
    /// Answer key creation with 403 (an organization policy).
    hmac_denied: std::sync::atomic::AtomicBool,
    hmac_created: AtomicUsize,
}

#[derive(Clone, Debug)]
struct FakeHmacKey {
    access_id: String,
    secret: String,
    state: String,
    created: time::OffsetDateTime,
    updated: time::OffsetDateTime,
}

impl FakeHmacKey {
    fn metadata(&self) -> Value {
        let rfc3339 = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("time")
        };
        json!({
            "kind": "storage#hmacKeyMetadata",
            "accessId": self.access_id,
            "id": format!("storage-broker-test/{}", self.access_id),
            "projectId": "storage-broker-test",
            "serviceAccountEmail": EMAIL,
            "state": self.state,
            "timeCreated": rfc3339(self.created),
            "updated": rfc3339(self.updated),
            "etag": "e",
        })
    }
}

impl Seen {
    async fn latency(&self) {
        let ms = self.latency_ms.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(if ms == 0 {
            10
        } else {
            ms
        }))
        .await;
    }

    /// True when this call is past the quota of its second.
    fn over_quota(&self) -> bool {
        let quota = self.quota_per_second.load(Ordering::SeqCst);
        if quota == 0 {
            return false;
        }
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut window = self.window.lock().expect("window");
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        window.1 > quota
    }
}

struct FakeGoogle {
    url: String,
    seen: Arc<Seen>,
}

impl FakeGoogle {
    async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let routes = Router::new()
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/email",
                get(|headers: HeaderMap| async move {
                    metadata_flavor(&headers)?;
                    Ok::<_, StatusCode>(EMAIL)
                }),
            )
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(
                    |State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                        metadata_flavor(&headers)?;
                        let n = seen.tokens_issued.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, StatusCode>(Json(json!({
                            "access_token": format!("ya29.fake-{n}"),
                            "expires_in": 3599,
                            "token_type": "Bearer",
                        })))
                    },
                ),
            )
            .route(
                "/computeMetadata/v1/project/project-id",
                get(|headers: HeaderMap| async move {
                    metadata_flavor(&headers)?;
                    Ok::<_, StatusCode>("storage-broker-test")
                }),
            )
            .route("/v1/projects/-/serviceAccounts/{call}", post(sign_blob))
            .route(
                "/storage/v1/projects/{project}/hmacKeys",
                get(list_hmac_keys).post(create_hmac_key),
            )
            .route(
                "/storage/v1/projects/{project}/hmacKeys/{access_id}",
                axum::routing::put(update_hmac_key).delete(delete_hmac_key),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, routes).await });
        Self { url, seen }
    }

    async fn app(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut settings = vec![
            ("BROKER_SIGNING_CREDENTIALS", ""),
            ("BROKER_METADATA_URL", self.url.as_str()),
            ("BROKER_IAM_CREDENTIALS_URL", self.url.as_str()),
        ];
        settings.extend_from_slice(extra);
        TestApp::spawn_with(&settings).await
    }
}

fn metadata_flavor(headers: &HeaderMap) -> Result<(), StatusCode> {
    // The real metadata server refuses requests without this header.
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) == Some("Google") {
        Ok(())
    } else {
        Err(StatusCode::FORBIDDEN)
    }
}

async fn sign_blob(
    State(seen): State<Arc<Seen>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let fail = |status: StatusCode, why: &str| Err((status, why.to_owned()));
    if call != format!("{EMAIL}:signBlob") {
        return fail(StatusCode::NOT_FOUND, "wrong service account or method");
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bearer.starts_with("Bearer ya29.fake-") {
        return fail(StatusCode::UNAUTHORIZED, "no metadata-server token");
    }
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let over = seen.over_quota();
    seen.latency().await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    if over {
        seen.throttled.fetch_add(1, Ordering::SeqCst);
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Quota exceeded for quota metric 'Sign blob requests'",
        );
    }
    if seen.deny.load(Ordering::SeqCst) {
        return fail(
            StatusCode::FORBIDDEN,
            "Permission 'iam.serviceAccounts.signBlob' denied",
        );
    }
    if seen
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "try again");
    }
    let payload = STANDARD
        .decode(body["payload"].as_str().unwrap_or(""))
        .map_err(|_| (StatusCode::BAD_REQUEST, "payload is not base64".to_owned()))?;
    let key: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/test-service-account.json")).expect("fixture"),
    )
    .expect("json");
    let key = rsa_key_from_pem(key["private_key"].as_str().expect("pem")).expect("rsa");
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &payload,
        &mut signature,
    )
    .expect("sign");
    seen.signed.fetch_add(1, Ordering::SeqCst);
    Ok(Json(
        json!({ "keyId": "fake-key", "signedBlob": STANDARD.encode(signature) }),
    ))
}

/// The JSON API's checks: the workload's token, this project, this service account.
fn json_api_caller(headers: &HeaderMap, project: &str) -> Result<(), (StatusCode, String)> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bearer.starts_with("Bearer ya29.fake-") {
        return Err((StatusCode::UNAUTHORIZED, "no token".into()));
    }
    if project != "storage-broker-test" {
        return Err((StatusCode::NOT_FOUND, format!("no project {project:?}")));
    }
    Ok(())
}

async fn create_hmac_key(
    State(seen): State<Arc<Seen>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, (StatusCode, String)> {
    json_api_caller(&headers, &project)?;
    seen.latency().await;
    seen.hmac_created.fetch_add(1, Ordering::SeqCst);
    if query.get("serviceAccountEmail").map(String::as_str) != Some(EMAIL) {
        return Err((StatusCode::BAD_REQUEST, "serviceAccountEmail".into()));
    }
    if seen.hmac_denied.load(Ordering::SeqCst) {
        return Err((
            StatusCode::PRECONDITION_FAILED,
            r#"{"error":{"code":412,"message":"Request violates constraint 'constraints/iam.disableServiceAccountKeyCreation'","errors":[{"reason":"conditionNotMet"}]}}"#.into(),
        ));
    }
    let mut keys = seen.hmac_keys.lock().expect("keys");
    if keys.iter().filter(|k| k.state != "DELETED").count() >= 10 {
        return Err((StatusCode::FORBIDDEN, r#"{"error":{"code":403,"message":"Service account HMAC key limit reached","errors":[{"reason":"quotaExceeded"}]}}"#.into()));
    }
    let now = time::OffsetDateTime::now_utc();
    let key = FakeHmacKey {
        access_id: format!("GOOG1FAKE{}", uuid::Uuid::new_v4().simple()).to_uppercase(),
        secret: STANDARD.encode(uuid::Uuid::new_v4().as_bytes()),
        state: "ACTIVE".into(),
        created: now,
        updated: now,
    };
    keys.push(key.clone());
    Ok(Json(
        json!({ "kind": "storage#hmacKey", "metadata": key.metadata(), "secret": key.secret }),
    ))
}

async fn list_hmac_keys(
    State(seen): State<Arc<Seen>>,
    Path(project): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, (StatusCode, String)> {
    json_api_caller(&headers, &project)?;
    seen.latency().await;
    let keys = seen.hmac_keys.lock().expect("keys");
    let items: Vec<Value> = keys
        .iter()
        .filter(|k| k.state != "DELETED")
        .map(FakeHmacKey::metadata)
        .collect();
    Ok(Json(
        json!({ "kind": "storage#hmacKeysMetadata", "items": items }),
    ))
}

async fn update_hmac_key(
    State(seen): State<Arc<Seen>>,
    Path((project, access_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, String)> {
    json_api_caller(&headers, &project)?;
    let mut keys = seen.hmac_keys.lock().expect("keys");
    let key = keys
        .iter_mut()
        .find(|k| k.access_id == access_id)
        .ok_or((StatusCode::NOT_FOUND, "no such key".into()))?;
    let state = body["state"].as_str().unwrap_or("");
    if !["ACTIVE", "INACTIVE"].contains(&state) || key.state == "DELETED" {
        return Err((StatusCode::BAD_REQUEST, "bad state".into()));
    }
    key.state = state.into();
    key.updated = time::OffsetDateTime::now_utc();
    Ok(Json(key.metadata()))
}

async fn delete_hmac_key(
    State(seen): State<Arc<Seen>>,
    Path((project, access_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, (StatusCode, String)> {
    json_api_caller(&headers, &project)?;
    let mut keys = seen.hmac_keys.lock().expect("keys");
    let key = keys
        .iter_mut()
        .find(|k| k.access_id == access_id)
        .ok_or((StatusCode::NOT_FOUND, "no such key".into()))?;
    if key.state != "INACTIVE" {
        return Err((
            StatusCode::BAD_REQUEST,
            "Cannot delete keys in 'ACTIVE' state".into(),
        ));
    }
    key.state = "DELETED".into();
    Ok(StatusCode::NO_CONTENT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_urls_are_the_urls_the_key_itself_would_sign() {
    let google = FakeGoogle::start().await;
    let app = google.app(&[]).await;
    let response = app
        .sign(
            "alice",
            json!({ "bucket": "u-alice", "object": "photos/cat.jpg", "method": "GET", "expires_in": 600 }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let signed: Value = response.json().await.expect("json");
    let url = signed["url"].as_str().expect("url");

    let local = UrlSigner::new(
        load_signer(&repo().join("tests/fixtures/test-service-account.json")).expect("key"),
        Endpoint::default(),
        UrlStyle::Path,
    );
    let request = UrlRequest::new(
        Method::Get,
        BucketName::parse("storage-broker-data").expect("bucket"),
        Some(ObjectName::parse("users/alice/photos/cat.jpg").expect("name")),
        storage_broker::signing::Expiry::from_secs(600).expect("expiry"),
    );
    let expected = local
        .sign(&request, signed_at(url))
        .expect("local signature");
    assert_eq!(
        url, expected.url,
        "signBlob signs exactly the string-to-sign"
    );

    // Many signatures, one metadata-server token.
    for _ in 0..5 {
        let r = app
            .sign(
                "alice",
                json!({ "bucket": "u-alice", "object": "a.txt", "method": "GET" }),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(google.seen.tokens_issued.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_lifetimes_stop_at_twelve_hours() {
    let google = FakeGoogle::start().await;
    let app = google.app(&[]).await;
    let alice = app.idp.token("alice");
    assert_eq!(
        app.post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "long", "name": "Long" })
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.post(
            "/v1/buckets",
            &alice,
            &json!({ "name": "p-long", "class": "project", "project": "long" })
        )
        .await
        .status(),
        201
    );
    // The project class allows a day; keyless signing allows 12 hours.
    let sign = |ttl: i64| {
        app.sign(
            "alice",
            json!({ "bucket": "p-long", "object": "x.bin", "method": "GET", "expires_in": ttl }),
        )
    };
    let problem = expect_problem(sign(43_201).await, 400, "ttl_exceeds_limit").await;
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("43200"),
        "{problem}"
    );
    assert_eq!(sign(43_200).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_batches_are_bounded_and_retried() {
    let google = FakeGoogle::start().await;
    let app = google.app(&[("BROKER_IAM_CONCURRENCY", "4")]).await;
    google.seen.fail_next.store(5, Ordering::SeqCst);
    let items: Vec<Value> = (0..40)
        .map(|i| json!({ "bucket": "u-alice", "object": format!("b/{i}.jpg"), "method": "GET" }))
        .collect();
    let answer = batch_as_alice(&app, items).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 40);
    assert!(
        results.iter().all(|r| r["url"].is_string()),
        "503s were retried: {answer}"
    );
    let most = google.seen.most_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "signBlob calls in flight: {most}, the bound is 4"
    );
    assert_eq!(app.audit_count("allow").await, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_refusing_is_a_503_and_per_item_errors_with_no_url_audited() {
    let google = FakeGoogle::start().await;
    let app = google.app(&[]).await;
    google.seen.deny.store(true, Ordering::SeqCst);
    let response = app
        .sign(
            "alice",
            json!({ "bucket": "u-alice", "object": "a.txt", "method": "GET" }),
        )
        .await;
    assert!(response.headers().contains_key("retry-after"));
    expect_problem(response, 503, "unavailable").await;

    let items: Vec<Value> = (0..3)
        .map(|i| json!({ "bucket": "u-alice", "object": format!("{i}.txt"), "method": "GET" }))
        .collect();
    let answer = batch_as_alice(&app, items).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(result["error"]["code"], "unavailable", "{answer}");
    }
    assert_eq!(app.audit_count("allow").await, 0, "no URL, no allow row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_without_a_metadata_server_names_the_setting() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = storage_broker::config::Config::from_lookup(|name| {
        match name {
            "DATABASE_URL" => Some("postgres://nobody@127.0.0.1:1/none"),
            "BROKER_OIDC_ISSUER" => Some("http://127.0.0.1:1/realms/x"),
            "BROKER_OIDC_AUDIENCE" => Some("storage-broker"),
            "BROKER_LISTEN" => Some("127.0.0.1:0"),
            "BROKER_POLICIES_DIR" => Some(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
            // One try is enough to prove the point; the default waits ten seconds.
            "BROKER_METADATA_WAIT_SECONDS" => Some("0"),
            _ => None,
        }
        .map(str::to_owned)
        .or_else(|| (name == "BROKER_METADATA_URL").then(|| format!("http://127.0.0.1:{port}")))
    })
    .expect("config");
    let Err(err) = storage_broker::app::Application::build(&config).await else {
        panic!("started without a signer");
    };
    assert_eq!(err.setting, "BROKER_SIGNING_CREDENTIALS");
    assert!(err.message.contains("keyless"), "{err}");
}

/// The URL of `body`, asked for again until the broker signs it with an HMAC key (fast
/// keyless makes its key in the background; signBlob signs until then).
async fn signed_with_hmac_key(app: &TestApp, body: &Value) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer: Value = app
            .sign("alice", body.clone())
            .await
            .json()
            .await
            .expect("json");
        let url = answer["url"].as_str().expect("url").to_owned();
        if url.contains("X-Goog-Algorithm=GOOG4-HMAC-SHA256") {
            return url;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never signed with an HMAC key: {url}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `POST /v1/sign/batch` of `items` as alice: the JSON answer.
async fn batch_as_alice(app: &TestApp, items: Vec<Value>) -> Value {
    app.post(
        "/v1/sign/batch",
        &app.idp.token("alice"),
        &json!({ "items": items }),
    )
    .await
    .json()
    .await
    .expect("json")
}

/// A key some replica made `hours_ago`, in `state` since `updated_minutes_ago`.
fn old_key(id: &str, state: &str, hours_ago: i64, updated_minutes_ago: i64) -> FakeHmacKey {
    let now = time::OffsetDateTime::now_utc();
    FakeHmacKey {
        access_id: id.into(),
        secret: "not-ours".into(),
        state: state.into(),
        created: now - time::Duration::hours(hours_ago),
        updated: now - time::Duration::minutes(updated_minutes_ago),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_keyless_signs_with_its_own_hmac_key_and_retires_spent_ones() {
    let google = FakeGoogle::start().await;
    // Left by replicas: one spent and active (a crash), one spent and inactive for 10 minutes,
    // one in use by a live replica (an hour old), one spent but inactive only a minute.
    *google.seen.hmac_keys.lock().expect("keys") = vec![
        old_key("GOOG1CRASHED", "ACTIVE", 72, 72 * 60),
        old_key("GOOG1INACTIVE", "INACTIVE", 72, 10),
        old_key("GOOG1LIVE", "ACTIVE", 1, 60),
        old_key("GOOG1JUSTOFF", "INACTIVE", 72, 1),
    ];
    let app = google
        .app(&[
            ("BROKER_KEYLESS_HMAC", "true"),
            ("BROKER_KEYLESS_HMAC_WARMUP_SECONDS", "0"),
            ("BROKER_STORAGE_ENDPOINT", google.url.as_str()),
        ])
        .await;
    let get = json!({ "bucket": "u-alice", "object": "photos/cat.jpg", "method": "GET", "expires_in": 600 });
    // The key is made in the background; signBlob signs until it is there.
    let url = signed_with_hmac_key(&app, &get).await;
    let ours: Vec<FakeHmacKey> = google
        .seen
        .hmac_keys
        .lock()
        .expect("keys")
        .iter()
        .filter(|k| k.access_id.starts_with("GOOG1FAKE"))
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "one key made");
    // Exactly the URL the key's secret signs: the broker held the secret the API gave once.
    let local = UrlSigner::new(
        Arc::new(storage_broker::signing::HmacSigner::new(
            ours[0].access_id.clone(),
            &ours[0].secret,
        )),
        Endpoint::custom(&google.url, storage_broker::signing::Scheme::Https).expect("endpoint"),
        UrlStyle::Path,
    );
    let request = UrlRequest::new(
        Method::Get,
        BucketName::parse("storage-broker-data").expect("bucket"),
        Some(ObjectName::parse("users/alice/photos/cat.jpg").expect("name")),
        storage_broker::signing::Expiry::from_secs(600).expect("expiry"),
    );
    assert_eq!(
        url,
        local.sign(&request, signed_at(&url)).expect("local").url
    );

    // From now on no signBlob call: single URLs, uploads and a batch sign locally.
    let signed_blobs = google.seen.signed.load(Ordering::SeqCst);
    let put = app
        .sign(
            "alice",
            json!({ "bucket": "u-alice", "object": "up.bin", "method": "PUT" }),
        )
        .await;
    assert_eq!(put.status(), 200);
    let items: Vec<Value> = (0..200)
        .map(|i| json!({ "bucket": "u-alice", "object": format!("b/{i}.jpg"), "method": "GET" }))
        .collect();
    let answer = batch_as_alice(&app, items).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 200);
    assert!(results.iter().all(|r| {
        r["url"]
            .as_str()
            .is_some_and(|u| u.contains(&ours[0].access_id))
    }));
    assert_eq!(google.seen.signed.load(Ordering::SeqCst), signed_blobs);

    // The sweep at start: the crashed replica's key deactivated, the long-inactive one deleted;
    // the live replica's key, the one inactive only a minute and ours left alone.
    let states: std::collections::HashMap<String, String> = google
        .seen
        .hmac_keys
        .lock()
        .expect("keys")
        .iter()
        .map(|k| (k.access_id.clone(), k.state.clone()))
        .collect();
    assert_eq!(states["GOOG1CRASHED"], "INACTIVE");
    assert_eq!(states["GOOG1INACTIVE"], "DELETED");
    assert_eq!(states["GOOG1LIVE"], "ACTIVE");
    assert_eq!(states["GOOG1JUSTOFF"], "INACTIVE");
    assert_eq!(states[&ours[0].access_id], "ACTIVE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_keyless_falls_back_to_sign_blob_when_keys_are_forbidden() {
    let google = FakeGoogle::start().await;
    google.seen.hmac_denied.store(true, Ordering::SeqCst);
    let app = google
        .app(&[
            ("BROKER_KEYLESS_HMAC", "true"),
            ("BROKER_KEYLESS_HMAC_WARMUP_SECONDS", "0"),
            ("BROKER_STORAGE_ENDPOINT", google.url.as_str()),
        ])
        .await;
    crate::helpers::within_propagation_limit("the broker asked for a key", || async {
        google.seen.hmac_created.load(Ordering::SeqCst) >= 1
    })
    .await;
    for i in 0..3 {
        let answer: Value = app
            .sign(
                "alice",
                json!({ "bucket": "u-alice", "object": format!("{i}.txt"), "method": "GET" }),
            )
            .await
            .json()
            .await
            .expect("json");
        let url = answer["url"].as_str().expect("url");
        assert!(url.contains("X-Goog-Algorithm=GOOG4-RSA-SHA256"), "{url}");
    }
    assert!(
        google.seen.signed.load(Ordering::SeqCst) >= 3,
        "signBlob signed"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        google.seen.hmac_created.load(Ordering::SeqCst),
        1,
        "a refusal for good is not retried"
    );
}

/// The CPU time this process has used, in seconds (`/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn percentile(mut samples: Vec<f64>, p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Object ranks drawn from a Zipf distribution over `n` objects with exponent `s` (inverse
/// CDF over the cumulative weights, xorshift for randomness: the same draws every run).
struct Zipf {
    cumulative: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Self {
            cumulative,
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let total = *self.cumulative.last().expect("objects");
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cumulative.partition_point(|c| *c < u)
    }
}

/// Streams a batch of `count` GETs as NDJSON: (seconds to the first line, seconds in all,
/// URLs answered, item errors).
async fn timed_batch(app: &TestApp, count: usize, tag: &str) -> (f64, f64, usize, usize) {
    let items: Vec<Value> = (0..count)
        .map(
            |i| json!({ "bucket": "u-alice", "object": format!("{tag}/{i}.jpg"), "method": "GET" }),
        )
        .collect();
    let started = std::time::Instant::now();
    let mut response = app
        .client
        .post(app.url("/v1/sign/batch"))
        .bearer_auth(app.idp.token("alice"))
        .header("accept", "application/x-ndjson")
        .json(&json!({ "items": items }))
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status(), 200);
    let (mut first, mut body) = (None, Vec::new());
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed().as_secs_f64();
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("line"))
        .collect();
    let urls = lines.iter().filter(|l| l["url"].is_string()).count();
    (first.unwrap_or(total), total, urls, lines.len() - urls)
}

/// Single URLs one after another, each another object (no reuse): p50 and p99 in ms.
async fn single_latencies(app: &TestApp, count: usize, tag: &str) -> (f64, f64) {
    let alice = app.idp.token("alice");
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let body =
            json!({ "bucket": "u-alice", "object": format!("{tag}/{i}.jpg"), "method": "GET" });
        let started = std::time::Instant::now();
        let response = app.post("/v1/sign", &alice, &body).await;
        assert_eq!(response.status(), 200);
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (percentile(samples.clone(), 0.5), percentile(samples, 0.99))
}

/// `requests` reads of a Zipf(1.1) workload over 100,000 objects of one bucket by 1,000 users,
/// 16 at a time: (requests per second, process CPU seconds per request).
async fn zipf_reads(app: &TestApp, bucket: &str, requests: usize) -> (f64, f64) {
    let tokens: Vec<String> = (0..1000)
        .map(|u| app.idp.token(&format!("reader-{u}")))
        .collect();
    let mut zipf = Zipf::new(100_000, 1.1);
    let draws: Vec<(usize, usize)> = (0..requests).map(|i| (i % 1000, zipf.next())).collect();
    let (cpu, started) = (process_cpu_seconds(), std::time::Instant::now());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((user, object)) = draws.get(i) else {
                return;
            };
            let body = json!({ "bucket": bucket, "object": format!("gallery/{object}.jpg"), "method": "GET" });
            let response = app.post("/v1/sign", &tokens[*user], &body).await;
            assert_eq!(response.status(), 200);
        }
    };
    futures::future::join_all((0..16).map(|_| worker())).await;
    let seconds = started.elapsed().as_secs_f64();
    (
        requests as f64 / seconds,
        (process_cpu_seconds() - cpu) / requests as f64,
    )
}

/// Keyless signing at scale and the read reuse window (BENCHMARKS.md "Keyless signing and
/// the read reuse window", by bench/keyless.sh in release mode, run alone; it asserts what
/// must hold, never a speed). IAM and the JSON API are faked on loopback with 50 ms per call
/// and a quota of 1,000 signBlob calls a second (429 past it). Prints one JSON line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by bench/keyless.sh"]
async fn bench_keyless_and_reuse() {
    let items: usize = std::env::var("BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let zipf_requests: usize = std::env::var("BENCH_ZIPF_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let google = FakeGoogle::start().await;
    google.seen.latency_ms.store(50, Ordering::SeqCst);
    google.seen.quota_per_second.store(1000, Ordering::SeqCst);
    let quiet = [
        ("BROKER_RATE_LIMIT_PER_SECOND", "0"),
        ("BROKER_READ_REUSE_SECONDS", "0"),
    ];
    let mut result = serde_json::Map::new();

    // 1. signBlob: a batch paced to the quota; no 429 reaches the client.
    let keyless = google
        .app(&[
            quiet[0],
            quiet[1],
            ("BROKER_IAM_QUOTA_PER_MINUTE", "60000"),
            ("BROKER_IAM_CONCURRENCY", "256"),
        ])
        .await;
    let (first, total, urls, errors) = timed_batch(&keyless, items, "signblob").await;
    assert_eq!((urls, errors), (items, 0), "every item signed, none failed");
    let counts = keyless.state.signers.gcs().iam_counts().expect("keyless");
    result.insert(
        "signblob_batch".into(),
        json!({
            "items": items, "seconds": total, "first_line_seconds": first,
            "per_second": items as f64 / total, "share_of_quota": items as f64 / total / 1000.0,
            "calls": counts.calls, "throttled_by_iam": counts.throttled,
            "fake_429s": google.seen.throttled.load(Ordering::SeqCst), "client_errors": errors,
            "most_in_flight": counts.most_in_flight,
        }),
    );
    let (p50, p99) = single_latencies(&keyless, 200, "signblob-single").await;
    result.insert(
        "signblob_single_ms".into(),
        json!({ "p50": p50, "p99": p99 }),
    );

    // 2. Fast keyless beside the key-file HMAC key: batches interleaved, three rounds each.
    let fast = google
        .app(&[
            quiet[0],
            quiet[1],
            ("BROKER_KEYLESS_HMAC", "true"),
            ("BROKER_KEYLESS_HMAC_WARMUP_SECONDS", "0"),
            ("BROKER_STORAGE_ENDPOINT", google.url.as_str()),
        ])
        .await;
    let probe = json!({ "bucket": "u-alice", "object": "probe.jpg", "method": "GET" });
    signed_with_hmac_key(&fast, &probe).await;
    let hmac_file = crate::helpers::fixture("test-hmac-key.json");
    let key_file = TestApp::spawn_with(&[
        quiet[0],
        quiet[1],
        (
            "BROKER_SIGNING_CREDENTIALS",
            hmac_file.to_str().expect("utf-8"),
        ),
    ])
    .await;
    let (mut fast_rates, mut file_rates) = (Vec::new(), Vec::new());
    let signed_before = google.seen.signed.load(Ordering::SeqCst);
    for round in 0..3 {
        let (_, total, urls, _) = timed_batch(&fast, items, &format!("fast-{round}")).await;
        assert_eq!(urls, items);
        fast_rates.push(items as f64 / total);
        let (_, total, urls, _) = timed_batch(&key_file, items, &format!("file-{round}")).await;
        assert_eq!(urls, items);
        file_rates.push(items as f64 / total);
    }
    assert_eq!(
        google.seen.signed.load(Ordering::SeqCst),
        signed_before,
        "fast keyless called signBlob"
    );
    let (fast_rate, file_rate) = (percentile(fast_rates, 0.5), percentile(file_rates, 0.5));
    result.insert("fast_batch_per_second".into(), json!(fast_rate));
    result.insert("keyfile_hmac_batch_per_second".into(), json!(file_rate));
    result.insert("fast_vs_keyfile".into(), json!(fast_rate / file_rate));
    let (p50, p99) = single_latencies(&fast, 200, "fast-single").await;
    result.insert("fast_single_ms".into(), json!({ "p50": p50, "p99": p99 }));
    let (p50, p99) = single_latencies(&key_file, 200, "file-single").await;
    result.insert(
        "keyfile_hmac_single_ms".into(),
        json!({ "p50": p50, "p99": p99 }),
    );

    // 3. The reuse window with signBlob: a Zipf read workload, calls saved.
    let windowed = google
        .app(&[
            quiet[0],
            ("BROKER_IAM_QUOTA_PER_MINUTE", "60000"),
            ("BROKER_IAM_CONCURRENCY", "256"),
        ])
        .await;
    let gallery = windowed.personal_bucket("alice").await;
    windowed
        .grant(&gallery, "gallery/", "authenticated", "viewer", None)
        .await;
    let calls_before = windowed
        .state
        .signers
        .gcs()
        .iam_counts()
        .expect("keyless")
        .calls;
    let keyless_zipf = zipf_requests.min(5000);
    let (rate, _) = zipf_reads(&windowed, &gallery, keyless_zipf).await;
    let calls = windowed
        .state
        .signers
        .gcs()
        .iam_counts()
        .expect("keyless")
        .calls
        - calls_before;
    result.insert(
        "signblob_zipf".into(),
        json!({
            "requests": keyless_zipf, "per_second": rate, "signblob_calls": calls,
            "saved": 1.0 - calls as f64 / keyless_zipf as f64,
        }),
    );
    drop((keyless, fast, windowed, key_file));

    // 4. An RSA key: a reuse hit against a miss in the signer, then the Zipf workload through
    // the API with the window and without, side by side.
    let rsa = TestApp::spawn_with(&[quiet[0]]).await;
    let signer = rsa.state.signers.backend("gcs").expect("gcs").clone();
    let object = |i: usize, window: u32| {
        let mut url = storage_broker::signer::ObjectUrl::new(
            storage_broker::signer::ObjectMethod::Get,
            BucketName::parse("storage-broker-data").expect("bucket"),
            ObjectName::parse(&format!("users/alice/{i}.jpg")).expect("name"),
            storage_broker::signing::Expiry::from_secs(900).expect("expiry"),
        );
        url.reuse_window = window;
        url
    };
    let (mut hit_cpu, mut miss_cpu) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let now = time::OffsetDateTime::now_utc();
        let cpu = process_cpu_seconds();
        for i in 0..1000 {
            signer
                .sign(object(round * 1000 + i, 0), now)
                .await
                .expect("miss");
        }
        miss_cpu.push((process_cpu_seconds() - cpu) / 1000.0 * 1e6);
        signer.sign(object(0, 60), now).await.expect("first");
        let cpu = process_cpu_seconds();
        for _ in 0..100_000 {
            signer.sign(object(0, 60), now).await.expect("hit");
        }
        hit_cpu.push((process_cpu_seconds() - cpu) / 100_000.0 * 1e6);
    }
    let (hit, miss) = (percentile(hit_cpu, 0.5), percentile(miss_cpu, 0.5));
    result.insert(
        "rsa_signer_cpu_us".into(),
        json!({ "hit": hit, "miss": miss, "ratio": hit / miss }),
    );

    let off = TestApp::spawn_with(&[quiet[0], quiet[1]]).await;
    let mut runs = serde_json::Map::new();
    for (name, app) in [("window_60s", &rsa), ("window_off", &off)] {
        let bucket = app.personal_bucket("alice").await;
        app.grant(&bucket, "gallery/", "authenticated", "viewer", None)
            .await;
        let gcs = app.state.signers.backend("gcs").expect("gcs").clone();
        let (misses, hits) = gcs.reuse_counts();
        let (rate, cpu) = zipf_reads(app, &bucket, zipf_requests).await;
        let (misses_after, hits_after) = gcs.reuse_counts();
        let (m, h) = (misses_after - misses, hits_after - hits);
        runs.insert(
            name.into(),
            json!({
                "requests": zipf_requests, "per_second": rate, "cpu_us_per_request": cpu * 1e6,
                "signatures": if name == "window_off" { zipf_requests as u64 } else { m },
                "saved": if name == "window_off" { 0.0 } else { h as f64 / (h + m).max(1) as f64 },
            }),
        );
    }
    result.insert("rsa_zipf".into(), Value::Object(runs));
    println!("{}", Value::Object(result));
}
