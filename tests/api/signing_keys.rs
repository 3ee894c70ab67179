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
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
    let der: Pkcs8V1Der<'static> = key.as_der().expect("der");
    let file = json!({
        "type": "service_account",
        "client_email": "signer@storage-broker-test.iam.gserviceaccount.com",
        "private_key": pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())),
    });
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
