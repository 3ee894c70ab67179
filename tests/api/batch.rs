//! `POST /v1/sign/batch`: per-item errors, NDJSON streaming, the size limit, and the audit.

use crate::helpers::{TestApp, expect_problem};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_allowed_and_denied_items() {
    let app = TestApp::spawn().await;
    let alice = app.personal_bucket("alice").await;
    let bob = app.personal_bucket("bob").await;
    let items = json!([
        { "bucket": alice, "object": "a.png", "method": "GET" },
        { "bucket": bob, "object": "b.png", "method": "GET" },
        { "bucket": alice, "object": "..", "method": "GET" },
        { "bucket": alice, "object": "c.png", "method": "PUT", "content_type": "image/png" },
        { "bucket": alice, "object": "d.png", "method": "GET", "expires_in": 7200 },
        { "nonsense": true },
    ]);
    let response = app
        .post(
            "/v1/sign/batch",
            &app.idp.token("alice"),
            &json!({ "items": items, "expires_in": 120 }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    let indexes: Vec<u64> = results
        .iter()
        .map(|r| r["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
    assert!(
        results[0]["url"]
            .as_str()
            .expect("url")
            .contains("X-Goog-Expires=120")
    );
    assert_eq!(results[1]["error"]["code"], "not_found");
    assert_eq!(results[2]["error"]["code"], "invalid_object_name");
    assert_eq!(results[3]["headers"]["content-type"], "image/png");
    assert_eq!(results[4]["error"]["code"], "ttl_exceeds_limit");
    assert_eq!(results[5]["error"]["code"], "invalid_request");

    assert_eq!(app.audit_count("allow").await, 2, "one row per URL issued");
    assert_eq!(app.audit_count("not_found").await, 1);
    assert_eq!(app.audit_count("deny").await, 1, "the class limit refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_streams_one_result_per_line() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let items: Vec<Value> = (0..1200)
        .map(|i| {
            if i % 100 == 7 {
                json!({ "bucket": "u-nobody", "object": format!("o{i}"), "method": "GET" })
            } else {
                json!({ "bucket": bucket, "object": format!("o{i}"), "method": "GET" })
            }
        })
        .collect();
    let response = app
        .client
        .post(app.url("/v1/sign/batch"))
        .bearer_auth(app.idp.token("alice"))
        .header("accept", "application/x-ndjson")
        .json(&json!({ "items": items }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1200);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        if i % 100 == 7 {
            assert_eq!(line["error"]["code"], "not_found");
        } else {
            assert!(
                line["url"]
                    .as_str()
                    .expect("url")
                    .contains(&format!("/o{i}?"))
            );
        }
    }
    let urls = lines.iter().filter(|l| l.get("url").is_some()).count() as i64;
    assert_eq!(urls, 1188);
    assert_eq!(
        app.audit_count("allow").await,
        urls,
        "audit rows == URLs issued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_at_most_10000_items() {
    let app = TestApp::spawn().await;
    let items: Vec<Value> = (0..10_001)
        .map(|i| json!({ "bucket": "u-alice", "object": format!("o{i}"), "method": "GET" }))
        .collect();
    let response = app
        .post(
            "/v1/sign/batch",
            &app.idp.token("alice"),
            &json!({ "items": items }),
        )
        .await;
    expect_problem(response, 400, "batch_too_large").await;
    let response = app
        .post(
            "/v1/sign/batch",
            &app.idp.token("alice"),
            &json!({ "items": [], "expires_in": 0 }),
        )
        .await;
    expect_problem(response, 400, "invalid_expiry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_of_10000() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({ "bucket": bucket, "object": format!("batch/{i}"), "method": "GET" }))
        .collect();
    let response = app
        .post(
            "/v1/sign/batch",
            &app.idp.token("alice"),
            &json!({ "items": items }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|r| r.get("url").is_some()));
    assert_eq!(app.audit_count("allow").await, 10_000);
}
