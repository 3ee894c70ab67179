//! `POST /v1/credentials` and `storage-broker credentials` against real servers where one
//! exists: S3 session credentials from SeaweedFS's STS, used by boto3 and rclone; a container
//! SAS used on Azurite. No emulator implements Google's STS: there the token exchange goes to a
//! fake and is compared, byte for byte, with what google-auth's `downscoped.Credentials` sends
//! for the same boundary.

use crate::azurite::Azurite;
use crate::helpers::{TestApp, expect_problem, repo};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// A fresh directory under the test tree.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A policies directory: the shipped roles and classes, plus `extra` classes.toml text.
fn policies_with(extra: &str) -> PathBuf {
    let dir = scratch("policies");
    std::fs::copy(repo().join("policies/roles.toml"), dir.join("roles.toml")).expect("roles");
    let shipped =
        std::fs::read_to_string(repo().join("policies/classes.toml")).expect("classes.toml");
    std::fs::write(dir.join("classes.toml"), format!("{shipped}\n{extra}")).expect("classes");
    dir
}

fn admin_token(app: &TestApp) -> String {
    app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    )
}

/// Registers `name` over `backend_bucket` (`prefix` in it) in `class`, as a storage admin.
async fn register(app: &TestApp, name: &str, class: &str, backend_bucket: &str, prefix: &str) {
    let created = app
        .post(
            "/v1/buckets",
            &admin_token(app),
            &json!({ "name": name, "class": class, "backend_bucket": backend_bucket, "backend_prefix": prefix }),
        )
        .await;
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
}

async fn vend(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/v1/credentials", token, &body).await
}

async fn vended(app: &TestApp, token: &str, body: Value) -> Value {
    let response = vend(app, token, body).await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("credentials json")
}

fn expires_at(answer: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        answer["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339")
}

// ---------------------------------------------------------------------------------------------
// Azure: a container SAS, for buckets that are a whole container.

const AZ_WHOLE: &str = "vend-whole";
const AZ_OTHER: &str = "vend-other";
const AZ_PROJECTS: &str = "vend-projects";

#[tokio::test]
async fn azure_container_sas_lists_reads_and_writes_only_what_was_vended() {
    let azure = Azurite::start().await;
    for container in [AZ_WHOLE, AZ_OTHER, AZ_PROJECTS] {
        azure.create_container(container).await;
    }
    azure
        .put_blob(AZ_WHOLE, "shared/a.txt", b"inside", "text/plain")
        .await;
    azure
        .put_blob(AZ_OTHER, "b.txt", b"elsewhere", "text/plain")
        .await;
    let key = scratch("azure-key").join("key.json");
    std::fs::write(
        &key,
        json!({ "account": "devstoreaccount1", "key": crate::azurite::KEY }).to_string(),
    )
    .expect("key");
    let policies = policies_with(&format!(
        r#"
[backends.azurite]
kind = "azure"
account = "devstoreaccount1"
endpoint = "{endpoint}"
credentials = "file:{key}"

[classes.existing-az]
backend = "azurite"
backend_bucket = "{AZ_WHOLE}"
prefix = ""
max_ttl_seconds = 3600
classification = "unclassified"
release = "retain"

[classes.project-az]
backend = "azurite"
backend_bucket = "{AZ_PROJECTS}"
prefix = "projects/{{project}}/"
max_ttl_seconds = 3600
classification = "unclassified"
release = "retain"
"#,
        endpoint = azure.endpoint,
        key = key.display(),
    ));
    let app =
        TestApp::spawn_with(&[("BROKER_POLICIES_DIR", policies.to_str().expect("utf-8"))]).await;
    register(&app, "az-whole", "existing-az", AZ_WHOLE, "").await;
    app.grant("az-whole", "", "user:bob", "viewer", None).await;
    app.grant("az-whole", "shared/", "user:carol", "editor", None)
        .await;
    let bob = app.idp.token("bob");
    let client = azure.client();

    let read = vended(
        &app,
        &bob,
        json!({ "bucket": "az-whole", "access": "read" }),
    )
    .await;
    assert_eq!(read["kind"], "azure");
    let sas = read["azure"]["sas_token"].as_str().expect("sas").to_owned();
    let container_url = read["azure"]["container_url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(container_url, format!("{}/{AZ_WHOLE}", azure.endpoint));
    let left = (expires_at(&read) - OffsetDateTime::now_utc()).whole_seconds();
    assert!((850..=900).contains(&left), "default lifetime: {left} s");

    let listing = client
        .get(format!("{container_url}?restype=container&comp=list&{sas}"))
        .send()
        .await
        .expect("list");
    assert_eq!(listing.status(), 200);
    assert!(listing.text().await.expect("xml").contains("shared/a.txt"));
    let got = client
        .get(format!("{container_url}/shared/a.txt?{sas}"))
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.expect("body"), "inside");
    let put = client
        .put(format!("{container_url}/shared/new.txt?{sas}"))
        .header("x-ms-blob-type", "BlockBlob")
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 403, "a read SAS wrote");
    let other = client
        .get(format!("{}/{AZ_OTHER}/b.txt?{sas}", azure.endpoint))
        .send()
        .await
        .expect("other");
    assert_eq!(other.status(), 403, "the SAS reached another container");

    // A viewer gets no write; an editor of one prefix gets no container-wide SAS at all.
    let denied = vend(
        &app,
        &bob,
        json!({ "bucket": "az-whole", "access": "read-write" }),
    )
    .await;
    expect_problem(denied, 403, "forbidden").await;
    let carol = app.idp.token("carol");
    let whole = vend(
        &app,
        &carol,
        json!({ "bucket": "az-whole", "access": "read" }),
    )
    .await;
    expect_problem(whole, 403, "forbidden").await;
    let prefixed = vend(
        &app,
        &carol,
        json!({ "bucket": "az-whole", "prefix": "shared/", "access": "read" }),
    )
    .await;
    let problem = expect_problem(prefixed, 400, "unsupported_by_backend").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("whole container"),
        "{problem}"
    );

    // The storage admin's read-write SAS uploads.
    let admin = admin_token(&app);
    let write = vended(
        &app,
        &admin,
        json!({ "bucket": "az-whole", "access": "read-write", "duration": 600 }),
    )
    .await;
    let sas = write["azure"]["sas_token"].as_str().expect("sas");
    let put = client
        .put(format!("{container_url}/shared/new.txt?{sas}"))
        .header("x-ms-blob-type", "BlockBlob")
        .body("written")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 201);

    // A project bucket is a prefix of its container: no SAS can be that narrow.
    let alice = app.idp.token("alice");
    let project = app
        .post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "azp", "name": "Azp" }),
        )
        .await;
    assert_eq!(project.status(), 201);
    let bucket = app
        .post(
            "/v1/buckets",
            &alice,
            &json!({ "name": "p-azp", "class": "project-az", "project": "azp" }),
        )
        .await;
    assert_eq!(bucket.status(), 201);
    let narrow = vend(&app, &alice, json!({ "bucket": "p-azp", "access": "read" })).await;
    expect_problem(narrow, 400, "unsupported_by_backend").await;

    // Every vend and refusal is in the audit, the vends with their expiry.
    let rows: Vec<(String, String, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT method, decision, expires_at FROM audit_events WHERE method LIKE 'CREDENTIALS%' ORDER BY at",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    let allowed: Vec<_> = rows.iter().filter(|r| r.1 == "allow").collect();
    assert_eq!(allowed.len(), 2, "{rows:?}");
    assert!(allowed.iter().all(|r| r.2.is_some()), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.1 == "deny").count(), 4, "{rows:?}");
    let _ = std::fs::remove_dir_all(policies);
}

// ---------------------------------------------------------------------------------------------
// GCS: the broker's token of the exact lifetime, downscoped at STS.

#[derive(Default)]
struct Google {
    /// The `lifetime` of each generateAccessToken call.
    lifetimes: Mutex<Vec<String>>,
    /// The raw body of each exchange the broker sent, and of google-auth's.
    broker_exchanges: Mutex<Vec<String>>,
    python_exchanges: Mutex<Vec<String>>,
}

/// Google's token endpoint, IAM Credentials and STS, on loopback, each checking what it is sent.
async fn fake_google() -> (String, Arc<Google>) {
    let seen = Arc::new(Google::default());
    let routes = Router::new()
        .route(
            "/token",
            post(|body: String| async move {
                if !body.starts_with("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
                    return Err(StatusCode::BAD_REQUEST);
                }
                Ok(Json(json!({ "access_token": "ya29.broker", "expires_in": 3600 })))
            }),
        )
        .route(
            "/v1/projects/-/serviceAccounts/{call}",
            post(
                |State(seen): State<Arc<Google>>,
                 UrlPath(call): UrlPath<String>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    let email = "signer@storage-broker-test.iam.gserviceaccount.com";
                    if call != format!("{email}:generateAccessToken")
                        || headers.get("authorization").and_then(|v| v.to_str().ok())
                            != Some("Bearer ya29.broker")
                        || body["scope"] != json!(["https://www.googleapis.com/auth/cloud-platform"])
                    {
                        return Err(StatusCode::FORBIDDEN);
                    }
                    let lifetime = body["lifetime"].as_str().unwrap_or_default().to_owned();
                    let seconds: i64 = lifetime
                        .strip_suffix('s')
                        .and_then(|s| s.parse().ok())
                        .ok_or(StatusCode::BAD_REQUEST)?;
                    seen.lifetimes.lock().expect("lock").push(lifetime);
                    let end = OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
                    Ok(Json(json!({
                        "accessToken": "ya29.short-lived",
                        "expireTime": end.format(&time::format_description::well_known::Rfc3339).expect("time"),
                    })))
                },
            ),
        )
        .route(
            "/v1/token",
            post(|State(seen): State<Arc<Google>>, body: String| async move {
                seen.broker_exchanges.lock().expect("lock").push(body);
                // Longer than the source: the broker must not believe it.
                Json(json!({
                    "access_token": "ya29.downscoped",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 7200,
                }))
            }),
        )
        .route(
            "/python/v1/token",
            post(|State(seen): State<Arc<Google>>, body: String| async move {
                seen.python_exchanges.lock().expect("lock").push(body);
                Json(json!({
                    "access_token": "ya29.python",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 900,
                }))
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, routes).await });
    (url, seen)
}

/// google-auth's exchange for one rule, sent to `sts_url`.
fn google_auth_exchange(sts_url: &str, permission: &str, bucket: &str, expression: Option<&str>) {
    let python = std::env::var("PYTOOLS").unwrap_or_default();
    assert!(
        !python.is_empty(),
        "PYTOOLS is not set: run the tests with scripts/test, which installs google-auth and boto3 (scripts/pytools)"
    );
    let mut command = std::process::Command::new(python);
    command
        .arg(repo().join("tests/tools/google_auth_downscope.py"))
        .arg(sts_url)
        .arg("ya29.short-lived")
        .arg(format!(
            "//storage.googleapis.com/projects/_/buckets/{bucket}"
        ))
        .arg(permission);
    command.args(expression);
    let output = command.output().expect("run python");
    assert!(
        output.status.success(),
        "google-auth: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn gcs_token_exchange_is_google_auths_byte_for_byte_and_lives_as_asked() {
    let (google, seen) = fake_google().await;
    // The fixture key, with its token endpoint on the fake.
    let mut key: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/test-service-account.json"))
            .expect("key"),
    )
    .expect("key json");
    key["token_uri"] = json!(format!("{google}/token"));
    let key_file = scratch("gcs-key").join("key.json");
    std::fs::write(&key_file, key.to_string()).expect("key");
    let app = TestApp::spawn_with(&[
        (
            "BROKER_SIGNING_CREDENTIALS",
            key_file.to_str().expect("utf-8"),
        ),
        ("BROKER_IAM_CREDENTIALS_URL", google.as_str()),
        ("BROKER_GOOGLE_STS_URL", google.as_str()),
    ])
    .await;
    let alice = app.idp.token("alice");
    let bucket = app.personal_bucket("alice").await;
    let record: (String, String) =
        sqlx::query_as("SELECT backend_bucket, backend_prefix FROM buckets WHERE name = $1")
            .bind(&bucket)
            .fetch_one(&app.pool)
            .await
            .expect("bucket");
    let (backend_bucket, backend_prefix) = record;

    // A hostile prefix: a CEL literal it could end, JSON it could break, non-ASCII.
    let prefix = "pics/it's \"é\\\" || true/";
    let answer = vended(
        &app,
        &alice,
        json!({ "bucket": bucket, "prefix": prefix, "access": "read", "duration": 600 }),
    )
    .await;
    assert_eq!(answer["kind"], "gcs");
    assert_eq!(answer["gcs"]["access_token"], "ya29.downscoped");
    assert_eq!(
        answer["storage"]["prefix"],
        format!("{backend_prefix}{prefix}")
    );
    assert_eq!(
        *seen.lifetimes.lock().expect("lock"),
        vec!["600s".to_owned()]
    );
    let left = (expires_at(&answer) - OffsetDateTime::now_utc()).whole_seconds();
    assert!(
        (590..=600).contains(&left),
        "the token ends with its 600 s source, not with STS's 7200 s: {left} s left"
    );

    // The same boundary through google-auth: the expression as Google documents it, written
    // here by hand, not by the broker.
    let full = format!("{backend_prefix}{prefix}");
    let cel = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    let expression = format!(
        "resource.name.startsWith({}) || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith({})",
        cel(&format!(
            "projects/_/buckets/{backend_bucket}/objects/{full}"
        )),
        cel(&full),
    );
    let sts = format!("{google}/python/v1/token");
    let (sts_for_python, bucket_for_python) = (sts.clone(), backend_bucket.clone());
    tokio::task::spawn_blocking(move || {
        google_auth_exchange(
            &sts_for_python,
            "inRole:roles/storage.objectViewer",
            &bucket_for_python,
            Some(&expression),
        )
    })
    .await
    .expect("python");
    let broker = seen.broker_exchanges.lock().expect("lock").clone();
    let python = seen.python_exchanges.lock().expect("lock").clone();
    assert_eq!(broker.len(), 1);
    let fields = |body: &str| -> Vec<(String, String)> {
        url::form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    assert_eq!(fields(&broker[0]), fields(&python[0]), "field for field");
    assert_eq!(broker[0], python[0], "byte for byte");

    // Read-write on the whole bucket: objectUser on its own prefix; google-auth agrees.
    let whole = vended(
        &app,
        &alice,
        json!({ "bucket": bucket, "access": "read-write", "duration": 600 }),
    )
    .await;
    assert_eq!(whole["access"], "read-write");
    let expression = format!(
        "resource.name.startsWith({}) || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith({})",
        cel(&format!(
            "projects/_/buckets/{backend_bucket}/objects/{backend_prefix}"
        )),
        cel(&backend_prefix),
    );
    tokio::task::spawn_blocking(move || {
        google_auth_exchange(
            &sts,
            "inRole:roles/storage.objectUser",
            &backend_bucket,
            Some(&expression),
        )
    })
    .await
    .expect("python");
    let broker = seen.broker_exchanges.lock().expect("lock").clone();
    let python = seen.python_exchanges.lock().expect("lock").clone();
    assert_eq!(broker[1], python[1], "byte for byte");

    // GCS's tokens live at most an hour; the personal class at most an hour too.
    let long = vend(
        &app,
        &alice,
        json!({ "bucket": bucket, "access": "read", "duration": 3601 }),
    )
    .await;
    expect_problem(long, 400, "invalid_duration").await;
}
