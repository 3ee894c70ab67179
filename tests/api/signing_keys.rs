//! Signing-key rotation: two key files configured, the first signs; a replaced file signs from
//! the next reload on without a restart; an unreadable first file falls back to the second.

use crate::helpers::{TestApp, repo, signed_at};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use storage_broker::signing::{
    BucketName, Endpoint, Expiry, Method, ObjectName, UrlRequest, UrlSigner, UrlStyle, load_signer,
};

/// A service-account key file for the fixture's account with a new RSA key, written atomically
/// (a new file renamed over the old, as Kubernetes updates a mounted Secret).
fn write_new_key(path: &Path) {
    write_new_key_with(path, json!({}));
}

/// The same, with `extra` fields in the file (a `token_uri`).
fn write_new_key_with(path: &Path, extra: Value) {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
    let der: Pkcs8V1Der<'static> = key.as_der().expect("der");
    let mut file = json!({
        "type": "service_account",
        "client_email": "signer@storage-broker-test.iam.gserviceaccount.com",
        "private_key": pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())),
    });
    for (k, v) in extra.as_object().expect("object") {
        file[k] = v.clone();
    }
    let staging = path.with_extension("staging");
    std::fs::write(&staging, file.to_string()).expect("write key");
    std::fs::rename(&staging, path).expect("rename key");
}

/// Which of `keys` signed `url`: RSA PKCS#1 v1.5 is deterministic, so signing the same request
/// at the URL's time with the right key gives the same URL.
fn signed_by(url: &str, keys: &[&Path]) -> Option<usize> {
    let request = UrlRequest::new(
        Method::Get,
        BucketName::parse("storage-broker-data").expect("bucket"),
        Some(ObjectName::parse("users/alice/r.txt").expect("name")),
        Expiry::from_secs(900).expect("expiry"),
    );
    keys.iter().position(|key| {
        let signer = UrlSigner::new(
            load_signer(key).expect("key"),
            Endpoint::default(),
            UrlStyle::Path,
        );
        signer.sign(&request, signed_at(url)).expect("sign").url == url
    })
}

async fn url(app: &TestApp) -> String {
    let answer: Value = app
        .sign(
            "alice",
            json!({ "bucket": "u-alice", "object": "r.txt", "method": "GET" }),
        )
        .await
        .json()
        .await
        .expect("json");
    answer["url"].as_str().expect("a URL").to_owned()
}

async fn eventually_signed_by(app: &TestApp, keys: &[&Path], wanted: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = url(app).await;
        let by = signed_by(&url, keys);
        if by == Some(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still signed by {by:?}, wanted key {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-rotation-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_the_new_key_and_keeps_serving() {
    let dir = scratch();
    let (new, old, newer) = (
        dir.join("new.json"),
        dir.join("old.json"),
        dir.join("newer.json"),
    );
    write_new_key(&new);
    std::fs::copy(
        repo().join("tests/fixtures/test-service-account.json"),
        &old,
    )
    .expect("copy");
    write_new_key(&newer);
    let setting = format!("{},{}", new.display(), old.display());
    let app = TestApp::spawn_with(&[
        ("BROKER_SIGNING_CREDENTIALS", setting.as_str()),
        ("BROKER_SIGNING_RELOAD_SECONDS", "1"),
    ])
    .await;
    // What `new.json` holds at first, kept: it is about to change.
    let first = dir.join("first.json");
    std::fs::copy(&new, &first).expect("copy");
    let keys: [&Path; 3] = [&first, &old, &newer];
    assert_eq!(
        signed_by(&url(&app).await, &keys),
        Some(0),
        "the first key signs"
    );

    // The Secret is updated in place: the new file signs from the next reload, no restart.
    std::fs::copy(&newer, dir.join("staging.json")).expect("copy");
    std::fs::rename(dir.join("staging.json"), &new).expect("rename");
    eventually_signed_by(&app, &keys, 2).await;

    // The first file disappears: the second signs, and the broker keeps answering.
    std::fs::remove_file(&new).expect("remove");
    eventually_signed_by(&app, &keys, 1).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_stops_the_start_naming_the_setting() {
    let dir = scratch();
    let missing = dir.join("absent.json");
    let setting = format!(
        "{},{}",
        repo()
            .join("tests/fixtures/test-service-account.json")
            .display(),
        missing.display()
    );
    let config = storage_broker::config::Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some("postgres://nobody@127.0.0.1:1/none".into()),
        "BROKER_OIDC_ISSUER" => Some("http://127.0.0.1:1/realms/x".into()),
        "BROKER_OIDC_AUDIENCE" => Some("storage-broker".into()),
        "BROKER_LISTEN" => Some("127.0.0.1:0".into()),
        "BROKER_POLICIES_DIR" => Some(repo().join("policies").display().to_string()),
        "BROKER_SIGNING_CREDENTIALS" => Some(setting.clone()),
        _ => None,
    })
    .expect("config");
    let Err(err) = storage_broker::app::Application::build(&config).await else {
        panic!("started with a missing key file");
    };
    assert_eq!(err.setting, "BROKER_SIGNING_CREDENTIALS");
    assert!(err.message.contains("absent.json"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A token endpoint and a JSON-API listing on loopback, as Google's: the token endpoint tells
/// which of `keys` signed the JWT-bearer assertion and answers `token-<index>`; the listing
/// records the bearer tokens it was called with.
async fn fake_google(
    keys: Vec<PathBuf>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let bearers = seen.clone();
    let app = axum::Router::new()
        .route(
            "/token",
            post(move |body: String| {
                let keys = keys.clone();
                async move {
                    let assertion = body
                        .split('&')
                        .find_map(|p| p.strip_prefix("assertion="))
                        .unwrap_or("")
                        .to_owned();
                    let (input, signature) = assertion.rsplit_once('.').unwrap_or(("", ""));
                    let signature = crate::helpers::b64_decode(signature);
                    // RSA PKCS#1 v1.5 is deterministic: re-sign with each key and compare.
                    let index = keys.iter().position(|key| {
                        load_signer(key)
                            .expect("key")
                            .sign("", input.as_bytes())
                            .is_ok_and(|s| s == signature)
                    });
                    match index {
                        Some(i) => axum::Json(
                            json!({ "access_token": format!("token-{i}"), "expires_in": 3600 }),
                        )
                        .into_response(),
                        None => axum::http::StatusCode::UNAUTHORIZED.into_response(),
                    }
                }
            }),
        )
        .route(
            "/storage/v1/b/{bucket}/o",
            get(move |headers: axum::http::HeaderMap| {
                let bearers = bearers.clone();
                async move {
                    let bearer = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    bearers.lock().expect("lock").push(bearer);
                    axum::Json(json!({ "items": [] }))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_reaches_the_control_plane_as_it_reaches_urls() {
    let dir = scratch();
    let (first, second, live) = (dir.join("a.json"), dir.join("b.json"), dir.join("key.json"));
    let (base, bearers) = fake_google(vec![first.clone(), second.clone()]).await;
    let token_uri = json!({ "token_uri": format!("{base}/token") });
    write_new_key_with(&first, token_uri.clone());
    write_new_key_with(&second, token_uri);
    std::fs::copy(&first, &live).expect("copy");

    // As the service builds it: the key read once signs URLs and mints the control plane's tokens.
    let files = storage_broker::signing::KeyFiles::new(vec![live.clone()]);
    let key = files.load_all().expect("key");
    let service = storage_broker::signer::SigningService::local(UrlSigner::new(
        key.signer.clone(),
        Endpoint::default(),
        UrlStyle::Path,
    ));
    let current = service.clone();
    let http = reqwest::Client::new();
    let tokens = storage_broker::cloud::ServiceAccountTokens::new(
        std::sync::Arc::new(move || current.current_key()),
        key.token_uri.as_deref().expect("the file's token_uri"),
        http.clone(),
    );
    let gcs = storage_broker::backends::Gcs::with_tokens(&base, tokens, http);
    let reloader = storage_broker::signer::reload_keys(
        files,
        key.fingerprint,
        service.clone(),
        Duration::from_millis(50),
    );

    gcs.list("data", "", None, None).await.expect("list");
    // The file is replaced (a rotated Secret); once the signer has the new key, so do listings.
    let before = service.current_key().expect("a key");
    std::fs::copy(&second, dir.join("staging.json")).expect("copy");
    std::fs::rename(dir.join("staging.json"), &live).expect("rotate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while service
        .current_key()
        .is_some_and(|k| std::sync::Arc::ptr_eq(&k, &before))
    {
        assert!(Instant::now() < deadline, "the key file was not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gcs.list("data", "", None, None).await.expect("list");
    reloader.abort();
    let seen = bearers.lock().expect("lock").clone();
    assert_eq!(seen, ["Bearer token-0", "Bearer token-1"]);
    let _ = std::fs::remove_dir_all(&dir);
}
