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
use base64::Engine;
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

// ---------------------------------------------------------------------------------------------
// S3: session credentials from SeaweedFS's STS, narrowed by the session policy.

const S3_BUCKET: &str = "vend-s3";
const ROLE: &str = "arn:aws:iam::000000000000:role/BrokerVended";

/// SeaweedFS with STS: a role the admin identity may assume, whose own policy allows all of S3,
/// so that only the session policy narrows what vended credentials can do.
async fn seaweed_with_sts() -> crate::helpers::SeaweedFs {
    let mut signing_key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut signing_key).expect("random");
    let iam = json!({
        "sts": {
            "tokenDuration": "1h",
            "maxSessionLength": "12h",
            "issuer": "seaweedfs-sts",
            // Standard base64: SeaweedFS leaves STS off (every call 503) with another alphabet.
            "signingKey": base64::engine::general_purpose::STANDARD.encode(signing_key),
        },
        "policy": { "defaultEffect": "Deny" },
        "roles": [{
            "roleName": "BrokerVended",
            "roleArn": ROLE,
            "trustPolicy": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "AWS": "arn:aws:iam::000000000000:user/admin" },
                    "Action": ["sts:AssumeRole"],
                }],
            },
            "attachedPolicies": ["S3FullAccess"],
        }],
        "policies": [{
            "name": "S3FullAccess",
            "document": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["s3:*"],
                    "Resource": ["arn:aws:s3:::*", "arn:aws:s3:::*/*"],
                }],
            },
        }],
    });
    crate::helpers::SeaweedFs::start_with_iam(Some(iam)).await
}

/// A broker with an S3 project class on `s3` that vends through STS, and alice's project
/// `vision` with its bucket `p-vision` (`projects/vision/` of the S3 bucket).
async fn s3_broker(s3: &crate::helpers::SeaweedFs) -> (TestApp, PathBuf) {
    s3_broker_with(s3, &[]).await
}

/// [`s3_broker`] with more settings.
async fn s3_broker_with(
    s3: &crate::helpers::SeaweedFs,
    settings: &[(&str, &str)],
) -> (TestApp, PathBuf) {
    s3.create_bucket(S3_BUCKET).await;
    let key = scratch("s3-key").join("key.json");
    std::fs::write(
        &key,
        json!({ "access_key_id": s3.access_key_id, "secret_access_key": s3.secret_access_key })
            .to_string(),
    )
    .expect("key");
    let policies = policies_with(&format!(
        r#"
[backends.seaweed]
kind = "s3"
region = "us-east-1"
endpoint = "{endpoint}"
credentials = "file:{key}"
vend_role_arn = "{ROLE}"

[classes.project-s3]
backend = "seaweed"
backend_bucket = "{S3_BUCKET}"
prefix = "projects/{{project}}/"
max_ttl_seconds = 7200
classification = "unclassified"
release = "retain"
"#,
        endpoint = s3.endpoint,
        key = key.display(),
    ));
    let mut settings = settings.to_vec();
    settings.push(("BROKER_POLICIES_DIR", policies.to_str().expect("utf-8")));
    let app = TestApp::spawn_with(&settings).await;
    let alice = app.idp.token("alice");
    let project = app
        .post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "vision", "name": "Vision" }),
        )
        .await;
    assert_eq!(project.status(), 201);
    let bucket = app
        .post(
            "/v1/buckets",
            &alice,
            &json!({ "name": "p-vision", "class": "project-s3", "project": "vision" }),
        )
        .await;
    assert_eq!(
        bucket.status(),
        201,
        "{}",
        bucket.text().await.unwrap_or_default()
    );
    s3.store_many(
        S3_BUCKET,
        &[
            "projects/vision/shared/a.txt".to_owned(),
            "projects/vision/private/b.txt".to_owned(),
        ],
    )
    .await;
    (app, policies)
}

/// An AWS config whose profile `broker` runs `storage-broker credentials` for `access` on
/// `prefix` of p-vision as the user whose token is in `token_file`.
fn aws_config(dir: &Path, app: &TestApp, token_file: &Path, access: &str) -> PathBuf {
    let config = dir.join(format!("aws-config-{access}"));
    std::fs::write(
        &config,
        format!(
            "[profile broker]\nregion = us-east-1\ncredential_process = {bin} credentials --broker {broker} --token-file {token} --bucket p-vision --prefix shared/ --access {access} --duration 3600 --format credential-process\n",
            bin = env!("CARGO_BIN_EXE_storage-broker"),
            broker = app.address,
            token = token_file.display(),
        ),
    )
    .expect("aws config");
    config
}

/// boto3's outcomes (see tests/tools/s3_credentials_check.py) with the profile in `config`.
fn boto3_outcomes(config: &Path, endpoint: &str) -> Value {
    let python = std::env::var("PYTOOLS").expect("PYTOOLS (scripts/pytools) is set");
    let output = std::process::Command::new(python)
        .arg(repo().join("tests/tools/s3_credentials_check.py"))
        .args([
            endpoint,
            S3_BUCKET,
            "projects/vision/shared/",
            "projects/vision/private/",
        ])
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_PROFILE", "broker")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run boto3");
    assert!(
        output.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("outcomes json")
}

/// Runs rclone with remote `x:` configured for the S3 endpoint and credentials from the
/// profile in `config` (rclone's `env_auth`, which reads credential_process).
fn rclone(config: &Path, endpoint: &str, args: &[&str]) -> std::process::Output {
    let rclone = std::env::var("RCLONE").unwrap_or_else(|_| "rclone".into());
    std::process::Command::new(rclone)
        .args(args)
        .args([
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "--s3-no-check-bucket",
        ])
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_X_TYPE", "s3")
        .env("RCLONE_CONFIG_X_PROVIDER", "Other")
        .env("RCLONE_CONFIG_X_ENV_AUTH", "true")
        .env("RCLONE_CONFIG_X_ENDPOINT", endpoint)
        .env("RCLONE_CONFIG_X_REGION", "us-east-1")
        .env("RCLONE_CONFIG_X_FORCE_PATH_STYLE", "true")
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SDK_LOAD_CONFIG", "1")
        .env("AWS_PROFILE", "broker")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        // rclone 1.60 fails every S3 call with a custom CA bundle on a plain-HTTP endpoint.
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("run rclone")
}

#[tokio::test]
async fn s3_session_credentials_work_in_boto3_and_rclone_within_the_prefix_only() {
    let s3 = seaweed_with_sts().await;
    let (app, policies) = s3_broker(&s3).await;
    app.grant("p-vision", "shared/", "user:bob", "viewer", None)
        .await;
    app.grant("p-vision", "shared/", "user:carol", "editor", None)
        .await;
    let dir = scratch("s3-tools");
    let bob_token = dir.join("bob.jwt");
    std::fs::write(&bob_token, app.idp.token("bob")).expect("token");
    let carol_token = dir.join("carol.jwt");
    std::fs::write(&carol_token, app.idp.token("carol")).expect("token");

    // Read credentials for shared/: boto3 lists and reads there, and the server refuses the rest.
    let read = aws_config(&dir, &app, &bob_token, "read");
    let endpoint = s3.endpoint.clone();
    let outcomes = {
        let (read, endpoint) = (read.clone(), endpoint.clone());
        tokio::task::spawn_blocking(move || boto3_outcomes(&read, &endpoint))
            .await
            .expect("boto3")
    };
    assert_eq!(
        outcomes["list inside"], "ok: ['projects/vision/shared/a.txt']",
        "{outcomes}"
    );
    // SeaweedFs::store_many stores each name as its own content.
    assert_eq!(
        outcomes["get inside"], "ok: projects/vision/shared/a.txt",
        "{outcomes}"
    );
    for refused in [
        "put inside",
        "get outside",
        "list outside",
        "list bucket",
        "put outside",
    ] {
        assert_eq!(
            outcomes[refused], "denied: AccessDenied",
            "{refused}: {outcomes}"
        );
    }

    // rclone, with the same profile.
    let (read_config, ep) = (read.clone(), endpoint.clone());
    let (listing, cat, outside, upload) = tokio::task::spawn_blocking(move || {
        let local = read_config.with_file_name("local.txt");
        std::fs::write(&local, "from rclone").expect("local");
        (
            rclone(
                &read_config,
                &ep,
                &["lsf", &format!("x:{S3_BUCKET}/projects/vision/shared/")],
            ),
            rclone(
                &read_config,
                &ep,
                &[
                    "cat",
                    &format!("x:{S3_BUCKET}/projects/vision/shared/a.txt"),
                ],
            ),
            rclone(
                &read_config,
                &ep,
                &[
                    "cat",
                    &format!("x:{S3_BUCKET}/projects/vision/private/b.txt"),
                ],
            ),
            rclone(
                &read_config,
                &ep,
                &[
                    "copyto",
                    local.to_str().expect("utf-8"),
                    &format!("x:{S3_BUCKET}/projects/vision/shared/rclone.txt"),
                ],
            ),
        )
    })
    .await
    .expect("rclone");
    assert!(
        listing.status.success(),
        "rclone lsf: {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&listing.stdout).trim(), "a.txt");
    assert!(
        cat.status.success(),
        "rclone cat: {}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&cat.stdout),
        "projects/vision/shared/a.txt"
    );
    assert!(!outside.status.success(), "rclone read outside the prefix");
    assert!(
        !upload.status.success(),
        "rclone wrote with read credentials"
    );
    assert!(
        !s3.exists(S3_BUCKET, "projects/vision/shared/rclone.txt")
            .await
    );

    // Read-write credentials upload, inside the prefix only.
    let write = aws_config(&dir, &app, &carol_token, "read-write");
    let (write_config, ep) = (write.clone(), endpoint.clone());
    let (outcomes, upload) = tokio::task::spawn_blocking(move || {
        let local = write_config.with_file_name("local.txt");
        (
            boto3_outcomes(&write_config, &ep),
            rclone(
                &write_config,
                &ep,
                &[
                    "copyto",
                    local.to_str().expect("utf-8"),
                    &format!("x:{S3_BUCKET}/projects/vision/shared/rclone.txt"),
                ],
            ),
        )
    })
    .await
    .expect("tools");
    assert_eq!(outcomes["put inside"], "ok: True", "{outcomes}");
    assert_eq!(
        outcomes["put outside"], "denied: AccessDenied",
        "{outcomes}"
    );
    assert_eq!(
        outcomes["get outside"], "denied: AccessDenied",
        "{outcomes}"
    );
    assert!(
        upload.status.success(),
        "rclone copyto: {}",
        String::from_utf8_lossy(&upload.stderr)
    );
    assert!(
        s3.exists(S3_BUCKET, "projects/vision/shared/rclone.txt")
            .await
    );
    assert!(
        s3.exists(S3_BUCKET, "projects/vision/shared/boto3.txt")
            .await
    );
    assert!(
        !s3.exists(S3_BUCKET, "projects/vision/private/boto3.txt")
            .await
    );
    let _ = std::fs::remove_dir_all(policies);
}

#[tokio::test]
async fn credentials_never_reach_beyond_or_outlive_the_grants() {
    let s3 = seaweed_with_sts().await;
    let (app, policies) = s3_broker(&s3).await;
    let now = OffsetDateTime::now_utc();
    // An exact-object grant, a prefix grant ending in 10 minutes and one ending in 30.
    sqlx::query(
        "INSERT INTO grants (id, bucket, prefix, principal, role, exact, created_by) VALUES ($1, 'p-vision', 'shared/a.txt', 'user:dave', 'viewer', true, 'test')",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&app.pool)
    .await
    .expect("exact grant");
    app.grant(
        "p-vision",
        "soon/",
        "user:erin",
        "viewer",
        Some(now + time::Duration::minutes(10)),
    )
    .await;
    app.grant(
        "p-vision",
        "later/",
        "user:erin",
        "viewer",
        Some(now + time::Duration::minutes(30)),
    )
    .await;
    let (dave, erin) = (app.idp.token("dave"), app.idp.token("erin"));

    // An exact-object grant is never a prefix, even of its own name.
    let exact = vend(
        &app,
        &dave,
        json!({ "bucket": "p-vision", "prefix": "shared/a.txt", "access": "read" }),
    )
    .await;
    expect_problem(exact, 403, "forbidden").await;
    // Another's bucket, or one that does not exist: not found.
    let unknown = vend(
        &app,
        &dave,
        json!({ "bucket": "p-nothing", "access": "read" }),
    )
    .await;
    expect_problem(unknown, 404, "not_found").await;
    // A prefix the caller does not hold, or a wider one.
    let wider = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "", "access": "read" }),
    )
    .await;
    expect_problem(wider, 403, "forbidden").await;
    let write = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read-write" }),
    )
    .await;
    expect_problem(write, 403, "forbidden").await;
    // STS vends 15 minutes at least: a grant ending in 10 cannot be stretched to it.
    let soon = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "soon/", "access": "read" }),
    )
    .await;
    expect_problem(soon, 400, "expiry_exceeds_holding").await;
    let long = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read", "duration": 1900 }),
    )
    .await;
    expect_problem(long, 400, "expiry_exceeds_holding").await;
    let short = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read", "duration": 60 }),
    )
    .await;
    expect_problem(short, 400, "invalid_duration").await;
    let above = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read", "duration": 7201 }),
    )
    .await;
    expect_problem(above, 400, "ttl_exceeds_limit").await;
    let beyond_sts = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read", "duration": 43_201 }),
    )
    .await;
    expect_problem(beyond_sts, 400, "invalid_duration").await;
    // Wildcards would widen the session policy beyond the prefix held.
    let wild = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/*", "access": "read" }),
    )
    .await;
    expect_problem(wild, 400, "unsupported_by_backend").await;
    let dots = vend(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/../shared/", "access": "read" }),
    )
    .await;
    expect_problem(dots, 400, "invalid_prefix").await;

    // Within the holding: vended, and vended again from the cache, the same credentials.
    let body =
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read", "duration": 1200 });
    let first = vended(&app, &erin, body.clone()).await;
    let left = (expires_at(&first) - OffsetDateTime::now_utc()).whole_seconds();
    assert!((1150..=1200).contains(&left), "{left} s");
    assert_eq!(first["storage"]["prefix"], "projects/vision/later/");
    assert_eq!(first["storage"]["bucket"], S3_BUCKET);
    let misses = app.state.credentials.misses();
    let second = vended(&app, &erin, body.clone()).await;
    assert_eq!(first["s3"], second["s3"], "an identical vend is reused");
    assert_eq!(app.state.credentials.misses(), misses, "no second STS call");
    // Another duration is another vend.
    let other = vended(
        &app,
        &erin,
        json!({ "bucket": "p-vision", "prefix": "later/", "access": "read", "duration": 1000 }),
    )
    .await;
    assert_ne!(first["s3"]["access_key_id"], other["s3"]["access_key_id"]);

    // Revoked: the cache answers nobody whose grant is gone.
    sqlx::query("DELETE FROM grants WHERE principal = 'user:erin'")
        .execute(&app.pool)
        .await
        .expect("revoke");
    app.state
        .cache
        .changed(storage_broker::store::CacheChange::grant("p-vision"))
        .await;
    let revoked = vend(&app, &erin, body).await;
    expect_problem(revoked, 404, "not_found").await;

    // The audit has each vend with scope, access and expiry, reuse noted.
    let rows: Vec<(String, Option<String>, String, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT decision, object, reason, expires_at FROM audit_events WHERE subject = 'erin' AND method = 'CREDENTIALS_READ' AND decision = 'allow' ORDER BY at",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.1.as_deref() == Some("later/") && r.3.is_some()),
        "{rows:?}"
    );
    assert!(rows[1].2.contains("(reused)"), "{rows:?}");
    assert!(
        rows[0]
            .2
            .contains("read credentials for \"projects/vision/later/\""),
        "{rows:?}"
    );
    let _ = std::fs::remove_dir_all(policies);
}

/// The latency of `/v1/credentials` with the vend cache hit and missed, against SeaweedFS's STS
/// on loopback: a measurement for `bench/credentials.sh`, which runs it alone (ignored in the
/// test run; it asserts nothing about speed). Prints one JSON line.
#[tokio::test]
#[ignore = "a benchmark: run by bench/credentials.sh"]
async fn bench_credentials_cache_hit_and_miss() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let s3 = seaweed_with_sts().await;
    // One caller asks hundreds of times a second: not what the rate limit is for here.
    let (app, policies) = s3_broker_with(&s3, &[("BROKER_RATE_LIMIT_PER_SECOND", "0")]).await;
    app.grant("p-vision", "shared/", "authenticated", "viewer", None)
        .await;
    let percentile = |mut samples: Vec<f64>, p: f64| {
        samples.sort_by(f64::total_cmp);
        samples[((samples.len() as f64 - 1.0) * p).round() as usize]
    };
    let warm = app.idp.token("warm");
    let timed = |duration: u64| {
        let (app, warm) = (&app, &warm);
        async move {
            let started = std::time::Instant::now();
            let response = vend(
                app,
                warm,
                json!({ "bucket": "p-vision", "prefix": "shared/", "access": "read", "duration": duration }),
            )
            .await;
            let status = response.status();
            assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
            started.elapsed().as_secs_f64() * 1000.0
        }
    };
    // Misses and hits interleaved, so that both see the same machine, by one caller: a new
    // duration each miss (another vend: an STS call), the same one for every hit.
    timed(900).await;
    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    let before = app.state.credentials.misses();
    for round in 0..rounds {
        misses.push(timed(1000 + round as u64).await);
        hits.push(timed(900).await);
    }
    assert_eq!(
        app.state.credentials.misses() - before,
        rounds as u64,
        "every miss reached STS, no hit did"
    );
    println!(
        "{}",
        json!({
            "rounds": rounds,
            "hit_p50_ms": percentile(hits.clone(), 0.5),
            "hit_p99_ms": percentile(hits, 0.99),
            "miss_p50_ms": percentile(misses.clone(), 0.5),
            "miss_p99_ms": percentile(misses, 0.99),
        })
    );
    let _ = std::fs::remove_dir_all(policies);
}
