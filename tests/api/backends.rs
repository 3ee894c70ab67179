//! One broker, one bucket class per backend: GCS on fake-gcs-server, S3 on SeaweedFS and Azure
//! Blob on Azurite, each store checking the broker's signatures itself. Bytes go up and down through the answers'
//! URLs and headers alone, as a client would use them; listings, prefix manifests and the
//! `delete` release policy go through each backend's control plane.

use crate::azurite::Azurite;
use crate::helpers::{
    Emulator, SeaweedFs, TestApp, expect_problem, fetch_manifest, manifest_objects, repo,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The S3 bucket behind the S3 class.
const S3_BUCKET: &str = "broker-s3";
/// The Azure container behind the Azure classes.
const AZ_CONTAINER: &str = "broker-az";

/// The stores, and a policies directory with the shipped classes plus one class per backend.
struct Stores {
    gcs: Emulator,
    s3: SeaweedFs,
    azure: Azurite,
    policies: PathBuf,
}

impl Stores {
    async fn start() -> Self {
        let (gcs, s3, azure) =
            tokio::join!(Emulator::start(), SeaweedFs::start(), Azurite::start());
        gcs.create_bucket("storage-broker-data").await;
        s3.create_bucket(S3_BUCKET).await;
        azure.create_container(AZ_CONTAINER).await;
        let policies = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("policies-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&policies).expect("policies dir");
        std::fs::copy(
            repo().join("policies/roles.toml"),
            policies.join("roles.toml"),
        )
        .expect("roles.toml");
        let s3_key = policies.join("s3-key.json");
        std::fs::write(
            &s3_key,
            json!({ "access_key_id": s3.access_key_id, "secret_access_key": s3.secret_access_key })
                .to_string(),
        )
        .expect("s3 key");
        let azure_key = policies.join("azure-key.json");
        std::fs::write(
            &azure_key,
            json!({ "account": "devstoreaccount1", "key": crate::azurite::KEY }).to_string(),
        )
        .expect("azure key");
        let shipped =
            std::fs::read_to_string(repo().join("policies/classes.toml")).expect("classes.toml");
        let classes = format!(
            r#"{shipped}
[backends.seaweed]
kind = "s3"
region = "us-east-1"
endpoint = "{endpoint}"
credentials = "file:{key}"

[classes.project-s3]
backend = "seaweed"
backend_bucket = "{S3_BUCKET}"
prefix = "projects/{{project}}/"
max_ttl_seconds = 3600
max_object_size = 1048576
content_types = ["text/*", "application/octet-stream"]
classification = "unclassified"
release = "delete"

[backends.azurite]
kind = "azure"
account = "devstoreaccount1"
endpoint = "{azure_endpoint}"
credentials = "file:{azure_key}"

[classes.project-az]
backend = "azurite"
backend_bucket = "{AZ_CONTAINER}"
prefix = "projects/{{project}}/"
max_ttl_seconds = 3600
classification = "unclassified"
release = "delete"

[classes.project-az-advised]
backend = "azurite"
backend_bucket = "{AZ_CONTAINER}"
prefix = "advised/{{project}}/"
max_ttl_seconds = 3600
max_object_size = 1048576
content_types = ["text/*"]
advisory_limits = true
classification = "unclassified"
release = "retain"

[classes.existing-s3]
backend = "seaweed"
backend_bucket = "{S3_BUCKET}"
prefix = ""
max_ttl_seconds = 3600
classification = "unclassified"
release = "retain"
"#,
            endpoint = s3.endpoint,
            key = s3_key.display(),
            azure_endpoint = azure.endpoint,
            azure_key = azure_key.display(),
        );
        std::fs::write(policies.join("classes.toml"), classes).expect("classes.toml");
        Self {
            gcs,
            s3,
            azure,
            policies,
        }
    }

    async fn broker(&self) -> TestApp {
        self.broker_with(&[]).await
    }

    async fn broker_with(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut settings = vec![
            ("BROKER_STORAGE_ENDPOINT", self.gcs.endpoint.as_str()),
            (
                "BROKER_POLICIES_DIR",
                self.policies.to_str().expect("utf-8"),
            ),
        ];
        settings.extend_from_slice(extra);
        TestApp::spawn_with(&settings).await
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.policies);
    }
}

/// Alice's project `multi` with bucket `name` of `class`.
async fn project_bucket(app: &TestApp, name: &str, class: &str) {
    let alice = app.idp.token("alice");
    let project = app
        .post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "multi", "name": "Multi" }),
        )
        .await;
    assert!(
        project.status() == 201 || project.status() == 409,
        "project: {}",
        project.status()
    );
    let bucket = app
        .post(
            "/v1/buckets",
            &alice,
            &json!({ "name": name, "class": class, "project": "multi" }),
        )
        .await;
    assert_eq!(
        bucket.status(),
        201,
        "{}",
        bucket.text().await.unwrap_or_default()
    );
}

/// Every object the API lists under `prefix` of `bucket`, page by page through its opaque
/// tokens, which never show a backend name.
async fn listed(app: &TestApp, token: &str, bucket: &str, prefix: &str) -> Vec<Value> {
    let mut objects = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut path = format!("/v1/buckets/{bucket}/objects?prefix={prefix}");
        if let Some(t) = &page_token {
            path.push_str(&format!("&page_token={t}"));
        }
        let page: Value = app.get(&path, token).await.json().await.expect("page");
        objects.extend(page["objects"].as_array().expect("objects").iter().cloned());
        match page["next_page_token"].as_str() {
            Some(next) => {
                assert!(
                    !next.contains("projects/"),
                    "a page token leaks a backend name"
                );
                page_token = Some(next.to_owned());
            }
            None => return objects,
        }
    }
}

/// The objects `fetch-manifest` writes for `prefix` of `bucket`, as alice.
async fn fetched(app: &TestApp, bucket: &str, prefix: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fetch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    std::fs::write(&token, app.idp.token("alice")).expect("token");
    let out = dir.join("manifest.ndjson");
    let args = [
        "--broker",
        app.address.as_str(),
        "--token-file",
        token.to_str().expect("utf-8"),
        "--bucket",
        bucket,
        "--prefix",
        prefix,
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let done = fetch_manifest(args.iter().map(|a| (*a).to_owned()).collect()).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let objects = manifest_objects(&out);
    let _ = std::fs::remove_dir_all(&dir);
    objects
}

async fn signed(app: &TestApp, body: Value) -> Value {
    let response = app.sign("alice", body).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    response.json().await.expect("json")
}

/// Sends `body` to an answer's URL with its method and headers, as a browser does: it sets
/// Content-Length from the body itself (scripts may not set it).
async fn send(answer: &Value, body: Vec<u8>) -> reqwest::Response {
    let method = match answer["method"].as_str().expect("method") {
        "RESUMABLE" => "POST",
        other => other,
    };
    let mut request = reqwest::Client::new().request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        answer["url"].as_str().expect("url"),
    );
    for (name, value) in answer["headers"].as_object().expect("headers") {
        if name != "content-length" {
            request = request.header(name.as_str(), value.as_str().expect("value"));
        }
    }
    request.body(body).send().await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broker_signs_for_each_backend_and_each_store_accepts_its_urls() {
    let stores = Stores::start().await;
    let app = stores.broker().await;
    project_bucket(&app, "p-gcs", "project").await;
    project_bucket(&app, "p-s3", "project-s3").await;
    project_bucket(&app, "p-az", "project-az").await;
    let object = "reports/é t+&=.txt";
    let body = b"the same bytes, to three clouds".to_vec();
    for (bucket, protocol) in [
        ("p-gcs", "gcs-v4"),
        ("p-s3", "s3-sigv4"),
        ("p-az", "azure-sas"),
    ] {
        let put = signed(
            &app,
            json!({ "bucket": bucket, "object": object, "method": "PUT",
                    "content_type": "text/plain", "size": body.len() }),
        )
        .await;
        assert_eq!(put["protocol"], protocol, "{bucket}");
        assert!(put.get("advisory_limits").is_none(), "{bucket}: {put}");
        let uploaded = send(&put, body.clone()).await;
        assert!(
            uploaded.status().is_success(),
            "{bucket}: upload {}: {}",
            uploaded.status(),
            uploaded.text().await.unwrap_or_default()
        );
        let get = signed(
            &app,
            json!({ "bucket": bucket, "object": object, "method": "GET" }),
        )
        .await;
        assert_eq!(get["protocol"], protocol);
        let downloaded = send(&get, Vec::new()).await;
        assert_eq!(downloaded.status(), 200, "{bucket}: download");
        assert_eq!(
            downloaded.bytes().await.expect("bytes").to_vec(),
            body,
            "{bucket}"
        );
    }

    // S3 binds the size the client declared: more bytes on the same URL are refused by the store.
    let put = signed(
        &app,
        json!({ "bucket": "p-s3", "object": "exact.bin", "method": "PUT",
                "content_type": "application/octet-stream", "size": 4 }),
    )
    .await;
    assert_eq!(put["headers"]["content-length"], "4");
    let refused = send(&put, b"four and more".to_vec()).await;
    assert!(
        refused.status().is_client_error(),
        "SeaweedFS took more bytes than signed: {}",
        refused.status()
    );
    assert!(
        !stores
            .s3
            .exists(S3_BUCKET, "projects/multi/exact.bin")
            .await
    );
    // And the content type is signed: another one is refused by the store.
    let put = signed(
        &app,
        json!({ "bucket": "p-s3", "object": "typed.txt", "method": "PUT",
                "content_type": "text/plain", "size": 2 }),
    )
    .await;
    let mut other = put.clone();
    other["headers"]["content-type"] = json!("text/html");
    let refused = send(&other, b"hi".to_vec()).await;
    assert_eq!(
        refused.status(),
        403,
        "SeaweedFS took an unsigned content type"
    );

    // What S3 cannot do is refused by the broker, never signed and dropped.
    let cases = [
        (
            "a size limit without the upload's size",
            json!({ "bucket": "p-s3", "object": "x.bin", "method": "PUT", "content_type": "application/octet-stream" }),
            "unsupported_by_backend",
        ),
        (
            "a resumable upload",
            json!({ "bucket": "p-s3", "object": "x.bin", "method": "RESUMABLE", "content_type": "application/octet-stream", "size": 1 }),
            "unsupported_by_backend",
        ),
        (
            "a size above the class limit",
            json!({ "bucket": "p-s3", "object": "x.bin", "method": "PUT", "content_type": "application/octet-stream", "size": 1_048_577 }),
            "size_exceeds_limit",
        ),
        (
            "a content type the class refuses",
            json!({ "bucket": "p-s3", "object": "x.png", "method": "PUT", "content_type": "image/png", "size": 1 }),
            "content_type_not_allowed",
        ),
    ];
    for (name, body, code) in cases {
        let problem = expect_problem(app.sign("alice", body).await, 400, code).await;
        assert!(problem["detail"].is_string(), "{name}");
    }

    // A form upload on S3: the policy's size range is checked by the store.
    let policy: Value = app
        .post(
            "/v1/upload-policy",
            &app.idp.token("alice"),
            &json!({ "bucket": "p-s3", "object": "form.txt", "content_type": "text/plain", "max_size": 8 }),
        )
        .await
        .json()
        .await
        .expect("policy");
    assert_eq!(policy["protocol"], "s3-sigv4");
    let fields: Vec<(String, String)> = policy["fields"]
        .as_object()
        .expect("fields")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().expect("field").to_owned()))
        .collect();
    let post = |bytes: &'static [u8]| {
        let (content_type, body) = crate::s3_emulator::form(&fields, bytes);
        reqwest::Client::new()
            .post(policy["url"].as_str().expect("url"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let posted = post(b"ok").await.expect("post");
    assert!(
        posted.status().is_success(),
        "form upload: {}",
        posted.status()
    );
    let too_big = post(b"nine bytes").await.expect("post");
    assert!(
        too_big.status().is_client_error(),
        "over-size form upload: {}",
        too_big.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_manifest_and_release_go_through_the_s3_control_plane() {
    let stores = Stores::start().await;
    let app = stores.broker().await;
    project_bucket(&app, "p-s3", "project-s3").await;
    let names: Vec<String> = (0..1050)
        .map(|i| format!("projects/multi/run/{i:04}.txt"))
        .collect();
    stores.s3.store_many(S3_BUCKET, &names).await;
    // A neighbour's object, under another prefix of the same S3 bucket.
    stores
        .s3
        .store_many(S3_BUCKET, &["projects/multi-other/keep.txt".to_owned()])
        .await;
    let alice = app.idp.token("alice");

    // The listing pages through S3's continuation tokens behind opaque tokens of the broker.
    let listed: Vec<String> = listed(&app, &alice, "p-s3", "run/")
        .await
        .into_iter()
        .map(|object| {
            assert!(object["size"].is_u64(), "{object}");
            object["name"].as_str().expect("name").to_owned()
        })
        .collect();
    let want: Vec<String> = (0..1050).map(|i| format!("run/{i:04}.txt")).collect();
    assert_eq!(listed, want);

    // The manifest: every object once, each URL an S3 URL the store serves.
    let manifest = app
        .post(
            "/v1/sign/prefix",
            &alice,
            &json!({ "bucket": "p-s3", "prefix": "run/" }),
        )
        .await;
    assert_eq!(manifest.status(), 200);
    let lines: Vec<Value> = manifest
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len(), 1050, "{:?}", lines.last());
    let objects: Vec<&str> = lines
        .iter()
        .map(|l| l["object"].as_str().expect("object"))
        .collect();
    assert_eq!(objects, want.iter().map(String::as_str).collect::<Vec<_>>());
    for line in [&lines[0], &lines[1049]] {
        assert_eq!(line["protocol"], "s3-sigv4");
        let got = reqwest::get(line["url"].as_str().expect("url"))
            .await
            .expect("get");
        assert_eq!(got.status(), 200);
        let object = line["object"].as_str().expect("object");
        assert_eq!(
            got.text().await.expect("text"),
            format!("projects/multi/{object}")
        );
    }

    // fetch-manifest writes the same, through the same API.
    assert_eq!(fetched(&app, "p-s3", "run/").await, want);

    // Deleting the bucket deletes its objects (release = delete), and nothing beside them.
    let deleted = app.delete("/v1/buckets/p-s3", &alice).await;
    assert_eq!(
        deleted.status(),
        204,
        "{}",
        deleted.text().await.unwrap_or_default()
    );
    assert!(
        !stores
            .s3
            .exists(S3_BUCKET, "projects/multi/run/0000.txt")
            .await
    );
    assert!(
        !stores
            .s3
            .exists(S3_BUCKET, "projects/multi/run/1049.txt")
            .await
    );
    assert!(
        stores
            .s3
            .exists(S3_BUCKET, "projects/multi-other/keep.txt")
            .await
    );
}

async fn multipart_step(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post("/v1/sign/multipart", token, &body).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["protocol"], "s3-sigv4");
    answer
}

/// The one request of a step, sent with `body`.
async fn send_request(request: &Value, body: Vec<u8>) -> reqwest::Response {
    send(request, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_is_signed_step_by_step_and_its_parts_bound_to_the_declared_size() {
    let stores = Stores::start().await;
    let app = stores.broker().await;
    project_bucket(&app, "p-s3", "project-s3").await;
    project_bucket(&app, "p-gcs", "project").await;
    const MIB: usize = 1024 * 1024;
    let object = "big/data é.bin";
    let body: Vec<u8> = (0..(11 * MIB)).map(|i| (i % 251) as u8).collect();

    // The class limits sizes to 1 MiB: a larger declared size is refused before anything.
    let alice = app.idp.token("alice");
    let too_big = app
        .post(
            "/v1/sign/multipart",
            &alice,
            &json!({ "bucket": "p-s3", "object": object, "action": "create",
                     "content_type": "application/octet-stream", "size": body.len() }),
        )
        .await;
    expect_problem(too_big, 400, "size_exceeds_limit").await;
    // Within the limit, the class fixes the part size, so that parts signed under different
    // declarations can never be mixed into a larger object.
    let created = multipart_step(
        &app,
        &alice,
        json!({ "bucket": "p-s3", "object": "small.bin", "action": "create",
                "content_type": "application/octet-stream", "size": 1000 }),
    )
    .await;
    assert_eq!(created["part_size"], 5 * MIB);
    let free_size = app
        .post(
            "/v1/sign/multipart",
            &alice,
            &json!({ "bucket": "p-s3", "object": "small.bin", "action": "parts",
                     "upload_id": "some-id", "size": 1000, "part_size": 500 }),
        )
        .await;
    expect_problem(free_size, 400, "invalid_parts").await;
    // GCS has resumable uploads instead.
    let on_gcs = app
        .post(
            "/v1/sign/multipart",
            &alice,
            &json!({ "bucket": "p-gcs", "object": object, "action": "create" }),
        )
        .await;
    expect_problem(on_gcs, 400, "unsupported_by_backend").await;

    // S3 parts are 5 MiB but the last: the large object goes to a bucket without a size limit,
    // registered by a storage admin over the same S3 bucket.
    let admin = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    );
    let registered = app
        .post(
            "/v1/buckets",
            &admin,
            &json!({ "name": "big-s3", "class": "existing-s3", "backend_bucket": S3_BUCKET, "backend_prefix": "big/" }),
        )
        .await;
    assert_eq!(
        registered.status(),
        201,
        "{}",
        registered.text().await.unwrap_or_default()
    );
    let step = |action: &str, extra: Value| {
        let mut body = json!({ "bucket": "big-s3", "object": object, "action": action });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        multipart_step(&app, &admin, body)
    };
    let created = step(
        "create",
        json!({ "content_type": "application/octet-stream" }),
    )
    .await;
    let create = &created["requests"][0];
    assert_eq!(create["method"], "POST");
    let answered = send_request(create, Vec::new()).await;
    assert_eq!(answered.status(), 200);
    let xml = answered.text().await.expect("xml");
    let upload_id = xml
        .split("<UploadId>")
        .nth(1)
        .and_then(|rest| rest.split("</UploadId>").next())
        .expect("an UploadId")
        .to_owned();

    let parts = step(
        "parts",
        json!({ "upload_id": upload_id, "size": body.len(), "part_size": 5 * MIB }),
    )
    .await;
    let parts = parts["requests"].as_array().expect("parts").clone();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2]["headers"]["content-length"], (MIB).to_string());
    // A part with more bytes than signed is refused by the store.
    let padded = send_request(&parts[2], body[..MIB + 1].to_vec()).await;
    assert!(
        padded.status().is_client_error(),
        "oversized part: {}",
        padded.status()
    );
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["part_number"], i + 1);
        let chunk = body[i * 5 * MIB..((i + 1) * 5 * MIB).min(body.len())].to_vec();
        let sent = send_request(part, chunk).await;
        assert_eq!(sent.status(), 200, "part {}", i + 1);
        etags.push(sent.headers()["etag"].to_str().expect("etag").to_owned());
    }
    let completed = step("complete", json!({ "upload_id": upload_id })).await;
    let list: String = etags
        .iter()
        .enumerate()
        .map(|(i, etag)| {
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                i + 1
            )
        })
        .collect();
    let done = send_request(
        &completed["requests"][0],
        format!("<CompleteMultipartUpload>{list}</CompleteMultipartUpload>").into_bytes(),
    )
    .await;
    assert_eq!(
        done.status(),
        200,
        "{}",
        done.text().await.unwrap_or_default()
    );

    let get: Value = app
        .post(
            "/v1/sign",
            &admin,
            &json!({ "bucket": "big-s3", "object": object, "method": "GET" }),
        )
        .await
        .json()
        .await
        .expect("a URL");
    let downloaded = send(&get, Vec::new()).await;
    assert_eq!(downloaded.status(), 200);
    assert!(
        downloaded.bytes().await.expect("bytes").to_vec() == body,
        "bytes differ"
    );
    // Each step was audited as a write on the object.
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE method LIKE 'MULTIPART_%' AND decision = 'allow' AND bucket = 'big-s3'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(rows, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_manifest_and_release_go_through_the_azure_control_plane() {
    use storage_broker::backends::azure::{AzureAuth, AzureControl};
    let stores = Stores::start().await;
    let app = stores.broker().await;
    project_bucket(&app, "p-az", "project-az").await;
    let names: Vec<String> = (0..1050)
        .map(|i| format!("projects/multi/run/{i:04}.bin"))
        .collect();
    stores.azure.put_many(AZ_CONTAINER, names).await;
    stores
        .azure
        .put_many(
            AZ_CONTAINER,
            vec!["projects/multi-other/keep.bin".to_owned()],
        )
        .await;
    let alice = app.idp.token("alice");

    let listed: Vec<String> = listed(&app, &alice, "p-az", "run/")
        .await
        .into_iter()
        .map(|object| {
            assert_eq!(object["size"], 1, "{object}");
            object["name"].as_str().expect("name").to_owned()
        })
        .collect();
    let want: Vec<String> = (0..1050).map(|i| format!("run/{i:04}.bin")).collect();
    assert_eq!(listed, want);

    let manifest = app
        .post(
            "/v1/sign/prefix",
            &alice,
            &json!({ "bucket": "p-az", "prefix": "run/", "start_after": "run/0049.bin" }),
        )
        .await;
    assert_eq!(manifest.status(), 200);
    let lines: Vec<Value> = manifest
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len(), 1000, "{:?}", lines.last());
    assert_eq!(lines[0]["object"], "run/0050.bin");
    assert_eq!(lines[0]["protocol"], "azure-sas");
    let got = reqwest::get(lines[999]["url"].as_str().expect("url"))
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").len(), 1);

    assert_eq!(fetched(&app, "p-az", "run/").await, want);

    let deleted = app.delete("/v1/buckets/p-az", &alice).await;
    assert_eq!(
        deleted.status(),
        204,
        "{}",
        deleted.text().await.unwrap_or_default()
    );
    let control = AzureControl::new(
        AzureAuth::SharedKey(stores.azure.credentials()),
        stores.azure.blob_endpoint(),
        stores.azure.client(),
    );
    let left = control
        .list(AZ_CONTAINER, "projects/multi", None, None)
        .await
        .expect("list");
    let left: Vec<String> = left.items.into_iter().map(|o| o.name).collect();
    assert_eq!(left, ["projects/multi-other/keep.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_and_size_as_a_hostile_tenant_uses_them() {
    let stores = Stores::start().await;
    let app = stores.broker().await;
    project_bucket(&app, "p-s3", "project-s3").await;
    let alice = app.idp.token("alice");
    let viewer = app
        .put(
            "/v1/projects/multi/members/carol",
            &alice,
            &json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(viewer.status(), 200);
    let step = |extra: Value| {
        let mut body =
            json!({ "bucket": "p-s3", "object": "x.bin", "action": "abort", "upload_id": "id-1" });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };

    // Someone else's bucket is not there; a member who may only read may not upload.
    let bob = app
        .post(
            "/v1/sign/multipart",
            &app.idp.token("bob"),
            &step(json!({})),
        )
        .await;
    expect_problem(bob, 404, "not_found").await;
    let carol = app
        .post(
            "/v1/sign/multipart",
            &app.idp.token("carol"),
            &step(json!({})),
        )
        .await;
    expect_problem(carol, 403, "forbidden").await;

    // Names and upload ids that would reach another object or smuggle a parameter.
    let cases = [
        (
            json!({ "object": "a/../../other/x.bin" }),
            "invalid_object_name",
        ),
        (json!({ "object": "a\u{85}b" }), "invalid_object_name"),
        (
            json!({ "upload_id": "id\r\nx-amz-acl: public-read" }),
            "invalid_upload_id",
        ),
        (json!({ "upload_id": "" }), "invalid_upload_id"),
        (
            json!({ "action": "parts", "size": 10, "part_size": 5_242_880, "first_part": 2 }),
            "invalid_parts",
        ),
        (
            json!({ "action": "complete", "part_size": 5_242_880 }),
            "invalid_request",
        ),
    ];
    for (extra, code) in cases {
        let response = app
            .post("/v1/sign/multipart", &alice, &step(extra.clone()))
            .await;
        let problem = expect_problem(response, 400, code).await;
        assert!(problem["detail"].is_string(), "{extra}");
    }
    // An upload id is a query value, encoded: it cannot add a parameter of its own.
    let signed = multipart_step(
        &app,
        &alice,
        step(json!({ "upload_id": "id&x-amz-acl=public-read" })),
    )
    .await;
    let url = signed["requests"][0]["url"].as_str().expect("url");
    assert!(
        url.contains("uploadId=id%26x-amz-acl%3Dpublic-read"),
        "{url}"
    );
    assert!(!url.contains("&x-amz-acl="), "{url}");

    // size is for uploads only, and never above what the caller asked as max_size.
    let cases = [
        (
            json!({ "bucket": "p-s3", "object": "x.bin", "method": "GET", "size": 1 }),
            "invalid_request",
        ),
        (
            json!({ "bucket": "p-s3", "object": "x.bin", "method": "PUT", "content_type": "text/plain", "max_size": 10, "size": 11 }),
            "size_exceeds_limit",
        ),
    ];
    for (body, code) in cases {
        expect_problem(app.sign("alice", body).await, 400, code).await;
    }
}

/// When a URL says it stops working: `expires_at` of an answer.
fn expires_at(answer: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        answer["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("expires_at")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_the_same_url_within_the_reuse_window_on_every_backend() {
    let stores = Stores::start().await;
    // A 600 s window: a 2400 s read keeps at least 1800 s.
    let app = stores
        .broker_with(&[("BROKER_READ_REUSE_SECONDS", "600")])
        .await;
    let replica = app.replica().await;
    let cases = [
        ("p-gcs", "project", "gcs-v4"),
        ("p-s3", "project-s3", "s3-sigv4"),
        ("p-az", "project-az", "azure-sas"),
    ];
    let alice = app.idp.token("alice");
    for (bucket, class, protocol) in cases {
        project_bucket(&app, bucket, class).await;
        let body = b"the same bytes, cached".to_vec();
        let put = json!({ "bucket": bucket, "object": "img/cat.txt", "method": "PUT",
                          "content_type": "text/plain", "size": body.len() });
        let first_put = signed(&app, put.clone()).await;
        assert_eq!(first_put["protocol"], protocol);
        let stored = send(&first_put, body.clone()).await;
        assert!(
            stored.status().is_success(),
            "{bucket}: {}",
            stored.status()
        );

        let get = json!({ "bucket": bucket, "object": "img/cat.txt", "method": "GET", "expires_in": 2400 });
        let before = OffsetDateTime::now_utc();
        let first = signed(&app, get.clone()).await;
        let second = signed(&app, get.clone()).await;
        assert_eq!(
            first["url"], second["url"],
            "{bucket}: a read asked twice is one URL"
        );
        assert_eq!(first["expires_at"], second["expires_at"]);
        // The expiry is true, and at least the lifetime minus the window away.
        let expires = expires_at(&first);
        let window_start = expires - time::Duration::seconds(2400);
        assert_eq!(
            window_start.unix_timestamp() % 600,
            0,
            "{bucket}: {expires}"
        );
        assert!(window_start <= before, "{bucket}: signed in the future");
        assert!(
            expires - before >= time::Duration::seconds(1800 - 1),
            "{bucket}: {expires}"
        );
        // The other replica, with the same keys and no shared state, answers the same URL.
        let from_replica = app
            .client
            .post(format!("{}/v1/sign", replica.address))
            .bearer_auth(&alice)
            .json(&get)
            .send()
            .await
            .expect("replica");
        let from_replica: Value = from_replica.json().await.expect("json");
        assert_eq!(
            from_replica["url"], first["url"],
            "{bucket}: replicas agree"
        );
        // And it works: the store serves the bytes.
        let fetched = send(&first, Vec::new()).await;
        assert_eq!(fetched.status(), 200, "{bucket}");
        assert_eq!(
            fetched.bytes().await.expect("bytes").to_vec(),
            body,
            "{bucket}"
        );

        // What is signed tells URLs apart: HEAD, an override, another lifetime.
        let mut head = get.clone();
        head["method"] = json!("HEAD");
        let mut typed = get.clone();
        typed["response_content_type"] = json!("application/octet-stream");
        let mut shorter = get.clone();
        shorter["expires_in"] = json!(2000);
        let mut seen = vec![first["url"].clone()];
        let mut shorter_expires = None;
        for other in [head, typed, shorter] {
            let answer = signed(&app, other.clone()).await;
            if other["method"] == "HEAD" && protocol == "azure-sas" {
                // A SAS binds permissions, not the method: `r` reads with GET and HEAD alike.
                assert_eq!(answer["url"], first["url"]);
                continue;
            }
            assert!(
                !seen.contains(&answer["url"]),
                "{bucket}: {other} reused another URL"
            );
            seen.push(answer["url"].clone());
            shorter_expires = Some(expires_at(&answer));
        }

        // A batch answers the same URL for the same read, twice in it.
        let batch = app
            .post(
                "/v1/sign/batch",
                &alice,
                &json!({ "items": [get.clone(), get.clone()] }),
            )
            .await;
        let batch: Value = batch.json().await.expect("batch");
        for result in batch["results"].as_array().expect("results") {
            assert_eq!(result["url"], first["url"], "{bucket}: batch");
        }

        // Uploads are never reused: a second later, another URL.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let second_put = signed(&app, put.clone()).await;
        assert_ne!(
            first_put["url"], second_put["url"],
            "{bucket}: an upload was reused"
        );
        let mut delete = get.clone();
        delete["method"] = json!("DELETE");
        let deletes = [signed(&app, delete.clone()).await, {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            signed(&app, delete.clone()).await
        }];
        assert_ne!(
            deletes[0]["url"], deletes[1]["url"],
            "{bucket}: a delete was reused"
        );

        // Every read was authorized and audited on its own, with the URL's true expiry.
        let rows: Vec<(Option<OffsetDateTime>,)> = sqlx::query_as(
            "SELECT expires_at FROM audit_events WHERE bucket = $1 AND method = 'GET' AND decision = 'allow' AND object = 'img/cat.txt'",
        )
        .bind(bucket)
        .fetch_all(&app.pool)
        .await
        .expect("audit");
        // Two asks, the replica's, two in the batch, the override: one expiry. The shorter
        // read (its window a quarter of its 2000 s): its own.
        let same = rows.iter().filter(|(at,)| *at == Some(expires)).count();
        let shorter = rows.iter().filter(|(at,)| *at == shorter_expires).count();
        assert_eq!(
            (same, shorter, rows.len()),
            (6, 1, 7),
            "{bucket}: {rows:?} vs {expires}"
        );
    }

    // Revocation is unaffected: a reader whose grant is gone never reaches the reused URL.
    let bob = app.idp.token("bob");
    app.grant("p-gcs", "img/", "user:bob", "viewer", None).await;
    app.wait_for_change_feed(&app.address).await;
    let get =
        json!({ "bucket": "p-gcs", "object": "img/cat.txt", "method": "GET", "expires_in": 2400 });
    let bobs = app.post("/v1/sign", &bob, &get).await;
    assert_eq!(bobs.status(), 200);
    sqlx::query("DELETE FROM grants WHERE principal = 'user:bob'")
        .execute(&app.pool)
        .await
        .expect("revoke");
    crate::helpers::within_propagation_limit("bob is refused after the revocation", || {
        let (app, bob, get) = (&app, &bob, &get);
        async move { app.post("/v1/sign", bob, get).await.status() == 404 }
    })
    .await;

    // With the window off, the same read a second later is another URL.
    let off = stores
        .broker_with(&[("BROKER_READ_REUSE_SECONDS", "0")])
        .await;
    let get =
        json!({ "bucket": off.personal_bucket("alice").await, "object": "x.txt", "method": "GET" });
    let first = signed(&off, get.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = signed(&off, get.clone()).await;
    assert_ne!(first["url"], second["url"]);
}
