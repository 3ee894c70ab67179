//! Listing and prefix manifests end to end on fake-gcs-server: bytes go up through signed PUT
//! URLs and come back through signed GET URLs, never through the broker.

use crate::helpers::{Emulator, TestApp, expect_problem, fetch_manifest, manifest_objects};
use serde_json::{Value, json};

async fn upload(app: &TestApp, sub: &str, bucket: &str, object: &str, body: &'static [u8]) {
    let signed: Value = app
        .sign(sub, json!({ "bucket": bucket, "object": object, "method": "PUT", "content_type": "application/octet-stream" }))
        .await
        .json()
        .await
        .expect("json");
    let mut request = app
        .client
        .put(signed["url"].as_str().expect("url"))
        .body(body);
    for (name, value) in signed["headers"].as_object().expect("headers") {
        request = request.header(name.as_str(), value.as_str().expect("value"));
    }
    let response = request.send().await.expect("upload");
    assert!(
        response.status().is_success(),
        "upload {object}: {}",
        response.status()
    );
}

async fn manifest(app: &TestApp, token: &str, body: Value) -> Vec<Value> {
    let response = app.post("/v1/sign/prefix", token, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.expect("body");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_prefix_sign_download() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    let bucket = app.personal_bucket("alice").await;
    let files: [(&str, &'static [u8]); 3] = [
        ("photos/a.jpg", b"first image bytes"),
        ("photos/b.jpg", b"second, longer image bytes"),
        ("docs/c.txt", b"a document"),
    ];
    for (name, bytes) in files {
        upload(&app, "alice", &bucket, name, bytes).await;
    }
    emulator
        .put(
            "storage-broker-data",
            "users/someone-else/secret.txt",
            b"not alice's",
        )
        .await;

    let alice = app.idp.token("alice");
    let listed: Value = app
        .get(
            &format!("/v1/buckets/{bucket}/objects?prefix=photos/"),
            &alice,
        )
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = listed["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["photos/a.jpg", "photos/b.jpg"],
        "names are logical: the backend prefix never shows"
    );
    assert_eq!(listed["objects"][0]["size"], 17);

    let lines = manifest(&app, &alice, json!({ "bucket": bucket, "prefix": "" })).await;
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let name = line["object"].as_str().expect("object");
        let expected = files
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a listed file")
            .1;
        let downloaded = app
            .client
            .get(line["url"].as_str().expect("url"))
            .send()
            .await
            .expect("download");
        assert_eq!(downloaded.status(), 200);
        assert_eq!(
            downloaded.bytes().await.expect("bytes").as_ref(),
            expected,
            "{name}"
        );
        assert_eq!(line["size"], expected.len());
    }
    assert_eq!(
        app.audit_count("allow").await,
        3 + 1 + 1 + 3,
        "three uploads, the listing, the manifest and its three URLs"
    );

    // Bob sees only what a grant opens to him.
    app.grant(&bucket, "photos/", "user:bob", "viewer", None)
        .await;
    let bob = app.idp.token("bob");
    let listed: Value = app
        .get(&format!("/v1/buckets/{bucket}/objects"), &bob)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["objects"].as_array().expect("objects").len(), 2);
    assert_eq!(
        manifest(&app, &bob, json!({ "bucket": bucket, "prefix": "" }))
            .await
            .len(),
        2
    );
    let carol = app.idp.token("carol");
    expect_problem(
        app.get(&format!("/v1/buckets/{bucket}/objects"), &carol)
            .await,
        404,
        "not_found",
    )
    .await;
    expect_problem(
        app.post(
            "/v1/sign/prefix",
            &alice,
            &json!({ "bucket": bucket, "expires_in": 99999 }),
        )
        .await,
        400,
        "ttl_exceeds_limit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_and_listings_page_through_large_prefixes() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    let bucket = app.personal_bucket("alice").await;
    emulator
        .store_many(
            "storage-broker-data",
            (0..1_205)
                .map(|i| format!("users/alice/many/{i:05}.bin"))
                .collect(),
        )
        .await;
    let alice = app.idp.token("alice");
    let lines = manifest(&app, &alice, json!({ "bucket": bucket, "prefix": "many/" })).await;
    assert_eq!(lines.len(), 1_205);
    let mut seen: Vec<&str> = lines
        .iter()
        .map(|l| l["object"].as_str().expect("object"))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1_205, "every object once");

    let mut token: Option<String> = None;
    let mut listed = 0;
    loop {
        let path = match &token {
            Some(t) => format!(
                "/v1/buckets/{bucket}/objects?prefix=many/&page_token={}",
                urlencode(t)
            ),
            None => format!("/v1/buckets/{bucket}/objects?prefix=many/"),
        };
        let page: Value = app.get(&path, &alice).await.json().await.expect("json");
        listed += page["objects"].as_array().expect("objects").len();
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, 1_205);
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_manifest_writes_resumes_and_explains_refusals() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    let bucket = app.personal_bucket("alice").await;
    for i in 0..30 {
        let name: &'static str = Box::leak(format!("users/alice/job/{i:03}.bin").into_boxed_str());
        emulator.put("storage-broker-data", name, b"x").await;
    }
    let dir = tempdir();
    let token_file = dir.join("token").display().to_string();
    std::fs::write(&token_file, app.idp.token("alice")).expect("token");
    let out = dir.join("manifest.ndjson");
    let out_arg = out.display().to_string();
    let base = strings(&[
        "--broker",
        &app.address,
        "--token-file",
        &token_file,
        "--bucket",
        &bucket,
    ]);
    let with = |extra: &[&str]| [base.clone(), strings(extra)].concat();

    let done = fetch_manifest(with(&["--prefix", "job/", "--out", &out_arg])).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let full = manifest_objects(&out);
    assert_eq!(full.len(), 30);

    // An interruption: ten complete lines and a line cut off mid-way. The rerun repairs the file
    // and asks only for what comes after the last complete line.
    let text = std::fs::read_to_string(&out).expect("manifest");
    let kept: Vec<&str> = text.lines().take(10).collect();
    std::fs::write(&out, format!("{}\n{{\"object\":\"job/01", kept.join("\n"))).expect("truncate");
    let before = app.audit_count("allow").await;
    let resumed = fetch_manifest(with(&["--prefix", "job/", "--out", &out_arg])).await;
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        manifest_objects(&out),
        full,
        "the same 30 objects, once each, in order"
    );
    assert_eq!(
        app.audit_count("allow").await - before,
        1 + 20,
        "the resumed manifest, and only the missing 20 signed again"
    );

    // --objects mode.
    let list = dir.join("objects.txt");
    std::fs::write(&list, "job/000.bin\njob/001.bin\n\njob/002.bin\n").expect("list");
    let list_out = dir.join("list.ndjson");
    let listed = fetch_manifest(with(&[
        "--objects",
        &list.display().to_string(),
        "--out",
        &list_out.display().to_string(),
    ]))
    .await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        manifest_objects(&list_out),
        ["job/000.bin", "job/001.bin", "job/002.bin"]
    );

    // An expired token, and one the broker refuses: one clear line each.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    std::fs::write(
        &token_file,
        app.idp.token_with("alice", json!({ "exp": now - 600 })),
    )
    .expect("token");
    let expired = fetch_manifest(with(&["--prefix", "job/"])).await;
    assert!(!expired.status.success());
    let err = String::from_utf8_lossy(&expired.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("has expired"), "{err}");
    std::fs::write(
        &token_file,
        app.idp
            .token_with("alice", json!({ "aud": "elsewhere", "azp": "elsewhere" })),
    )
    .expect("token");
    let refused = fetch_manifest(with(&["--prefix", "job/"])).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("refused the token") && err.contains("resume"),
        "{err}"
    );
}

/// A fresh directory under the target dir, kept for inspection after a failure.
fn tempdir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fetch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
