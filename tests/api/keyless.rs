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
use std::sync::atomic::{AtomicUsize, Ordering};
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
            .route("/v1/projects/-/serviceAccounts/{call}", post(sign_blob))
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
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
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
    let answer: Value = app
        .post(
            "/v1/sign/batch",
            &app.idp.token("alice"),
            &json!({ "items": items }),
        )
        .await
        .json()
        .await
        .expect("json");
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
    let answer: Value = app
        .post(
            "/v1/sign/batch",
            &app.idp.token("alice"),
            &json!({ "items": items }),
        )
        .await
        .json()
        .await
        .expect("json");
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
