//! Health, readiness, metrics, the OpenAPI document, and answers to unknown routes.

use crate::helpers::{TestApp, expect_problem};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_openapi() {
    let app = TestApp::spawn().await;
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), 200);
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["database"], "ok", "{ready}");
    assert_eq!(ready["keys"], "ok", "{ready}");
    assert!(
        ["listening", "connecting"].contains(&ready["change_feed"].as_str().unwrap_or("")),
        "{ready}"
    );

    let metrics = metrics_after_a_signature_and_a_refusal(&app).await;
    for needle in [
        "storage_broker_urls_signed_total{protocol=\"gcs-v4\",method=\"GET\"} 1",
        "storage_broker_decisions_total{outcome=\"allow\"} 1",
        "storage_broker_decisions_total{outcome=\"not_found\"} 1",
        "storage_broker_http_requests_total{method=\"POST\",route=\"/v1/sign\",status=\"200\"} 1",
        "storage_broker_errors_total{route=\"/v1/sign\",code=\"not_found\"} 1",
        // The parts outside the request path (crate::telemetry).
        "storage_broker_audit_commit_seconds_bucket{le=",
        "storage_broker_audit_commit_rows_count ",
        "storage_broker_audit_commit_failures_total 0",
        "storage_broker_jwks_refresh_failures_total 0",
        "storage_broker_signing_key_unreadable 0",
        "storage_broker_keyless_call_seconds_count 0",
        "storage_broker_change_feed_connected ",
        "storage_broker_http_request_duration_seconds_bucket{le=",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    let gauge = |name: &str| -> i64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let refreshed = gauge("storage_broker_jwks_refreshed_timestamp_seconds");
    assert!(
        (now - 300..=now).contains(&refreshed),
        "JWKS refreshed at {refreshed}, now {now}"
    );

    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    for path in [
        "/v1/me",
        "/v1/sign",
        "/v1/sign/batch",
        "/v1/upload-policy",
        "/v1/buckets",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"].get("SignRequest").is_some());
    // Client generators (openapi-typescript for clients/js) need unique operation ids, and a
    // parameter in the path only where the path names it.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(
                ids.insert(id.to_owned()),
                "operationId {id} twice ({method} {path})"
            );
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("name");
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"] == "path",
                    in_path,
                    "{method} {path}: parameter {name} is in {}",
                    parameter["in"]
                );
            }
        }
    }

    let unknown = app
        .client
        .get(app.url("/v2/nothing"))
        .send()
        .await
        .expect("request");
    expect_problem(unknown, 404, "no_route").await;
    let wrong_method = app
        .client
        .delete(app.url("/v1/sign"))
        .send()
        .await
        .expect("request");
    expect_problem(wrong_method, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_is_503_with_retry_after_and_not_ready() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    // Take the database away under the broker: end its connections and refuse new ones.
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&app.pool)
        .await
        .expect("name");
    let admin = sqlx::PgPool::connect(&std::env::var("DATABASE_URL").expect("DATABASE_URL"))
        .await
        .expect("admin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"
    )))
    .execute(&admin)
    .await
    .expect("alter");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db)
        .execute(&admin)
        .await
        .expect("terminate");

    let response = app
        .sign(
            "alice",
            json!({ "bucket": bucket, "object": "x", "method": "GET" }),
        )
        .await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii")),
        Some("2")
    );
    expect_problem(response, 503, "unavailable").await;
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request");
    let problem = expect_problem(ready, 503, "unavailable").await;
    // It says which check fails.
    assert_eq!(problem["database"], "failing", "{problem}");
    assert_eq!(problem["keys"], "ok", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("database")),
        "{problem}"
    );

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"
    )))
    .execute(&admin)
    .await
    .expect("alter");
    let response = app
        .sign(
            "alice",
            json!({ "bucket": bucket, "object": "x", "method": "GET" }),
        )
        .await;
    assert_eq!(response.status(), 200, "back without a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight() {
    // However slow the machine, the batch may finish draining.
    let mut app = TestApp::spawn_with(&[("BROKER_SHUTDOWN_TIMEOUT_SECONDS", "120")]).await;
    let bucket = app.personal_bucket("alice").await;
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({ "bucket": bucket, "object": format!("o{i}"), "method": "GET" }))
        .collect();
    let request = app
        .client
        .post(app.url("/v1/sign/batch"))
        .bearer_auth(app.idp.token("alice"))
        .json(&json!({ "items": items }))
        .send();
    let in_flight = tokio::spawn(request);
    // The batch takes over a second to sign; stop while it runs.
    app.wait_for_in_flight("/v1/sign/batch").await;
    app.stop();
    let response = in_flight
        .await
        .expect("task")
        .expect("the request in flight is answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["results"].as_array().expect("results").len(), 10_000);
    // New connections are refused once draining is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting connections 10 s after draining ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_missing_issuer_keys() {
    // Nothing listens on port 1: the issuer's keys never load.
    let app = TestApp::spawn_with(&[("BROKER_OIDC_JWKS_URL", "http://127.0.0.1:1/certs")]).await;
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request");
    let problem = expect_problem(ready, 503, "unavailable").await;
    assert_eq!(problem["keys"], "failing", "{problem}");
    assert_eq!(problem["database"], "ok", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("keys") && !d.contains("database")),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_audit_row() {
    let app = TestApp::spawn_with(&[("BROKER_RATE_LIMIT_PER_SECOND", "0")]).await;
    let bucket = app.personal_bucket("alice").await;
    let (child, address) = app
        .serve_process(&[("BROKER_SHUTDOWN_TIMEOUT_SECONDS", "30")])
        .await;
    let token = app.idp.token("alice");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Eight clients signing as fast as they can, each keeping the request ids it got a URL for.
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (client, address, token, bucket, stop) = (
                reqwest::Client::new(),
                address.clone(),
                token.clone(),
                bucket.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut answered = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let sent = client
                        .post(format!("{address}/v1/sign"))
                        .bearer_auth(&token)
                        .json(&json!({ "bucket": bucket, "object": format!("c{c}/{i}"), "method": "GET" }))
                        .send()
                        .await;
                    let Ok(response) = sent else { break }; // the server is gone
                    if response.status() == 200 {
                        let id = response.headers()["x-request-id"]
                            .to_str()
                            .expect("request id")
                            .to_owned();
                        if response.json::<Value>().await.is_ok_and(|b| b["url"].is_string()) {
                            answered.push(id);
                        }
                    }
                }
                answered
            })
        })
        .collect();
    // Under load for a moment, then SIGTERM.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.audit_count("allow").await < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load reached the broker"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let exit = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = Vec::new();
    for client in clients {
        answered.extend(client.await.expect("client"));
    }
    let log = String::from_utf8_lossy(&exit.stderr);
    assert!(exit.status.success(), "serve exits 0 on SIGTERM: {log}");
    assert!(
        log.contains("audit log drained"),
        "the writers drained: {log}"
    );
    // Every URL a client received has its row.
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM audit_events WHERE request_id = ANY($1)")
            .bind(&answered)
            .fetch_all(&app.pool)
            .await
            .expect("audit");
    let recorded: std::collections::HashSet<String> = recorded.into_iter().collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(answered.len() >= 200, "{} URLs received", answered.len());
    assert!(
        missing.is_empty(),
        "{} URLs without an audit row: {missing:?}",
        missing.len()
    );
}

/// Every metric the Grafana dashboard and the alerts query is one `/metrics` exports
/// (kustomize/components/monitoring).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let app = TestApp::spawn().await;
    let metrics = metrics_after_a_signature_and_a_refusal(&app).await;
    let exported: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    let monitoring = crate::helpers::repo().join("kustomize/components/monitoring");
    let mut queried = std::collections::BTreeSet::new();
    for file in [
        "storage-broker.json",
        "prometheusrule.yaml",
        "alerts.test.yaml",
    ] {
        let text = std::fs::read_to_string(monitoring.join(file)).expect("read");
        for (at, _) in text.match_indices("storage_broker_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            queried.insert(name);
        }
    }
    assert!(queried.len() >= 12, "{queried:?}");
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !exported.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n{metrics}"
    );
}

/// `/metrics` after alice signs a GET in her bucket and bob is refused it: families with labels
/// appear once used.
async fn metrics_after_a_signature_and_a_refusal(app: &TestApp) -> String {
    let bucket = app.personal_bucket("alice").await;
    let signed = app
        .sign(
            "alice",
            json!({ "bucket": bucket, "object": "x", "method": "GET" }),
        )
        .await;
    assert_eq!(signed.status(), 200);
    expect_problem(
        app.sign(
            "bob",
            json!({ "bucket": bucket, "object": "x", "method": "GET" }),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text")
}
