//! One authorize-and-audit path: every endpoint records its refusals the same way, a bucket
//! whose class left the policies is refused the same way everywhere, and each decision is
//! counted once, as what it finally was.

use crate::helpers::{TestApp, expect_problem};
use serde_json::json;

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Before: only `/v1/sign` recorded a bucket the caller may not see; grants, listings and
/// deletions answered 404 and left no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_audits_a_bucket_the_caller_may_not_see() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let bob = app.idp.token("bob");
    let sign = app
        .sign(
            "bob",
            json!({ "bucket": bucket, "object": "x", "method": "GET" }),
        )
        .await;
    expect_problem(sign, 404, "not_found").await;
    let attempts = [
        app.get(&format!("/v1/buckets/{bucket}/objects"), &bob)
            .await,
        app.get(&format!("/v1/buckets/{bucket}/grants"), &bob).await,
        app.post(
            &format!("/v1/buckets/{bucket}/grants"),
            &bob,
            &json!({ "prefix": "", "principal": "user:bob", "role": "viewer" }),
        )
        .await,
        app.delete(&format!("/v1/buckets/{bucket}"), &bob).await,
        app.post(
            "/v1/upload-policy",
            &bob,
            &json!({ "bucket": bucket, "object": "x" }),
        )
        .await,
    ];
    for response in attempts {
        expect_problem(response, 404, "not_found").await;
    }
    let mut rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT method, action, bucket FROM audit_events WHERE subject = 'bob' AND decision = 'not_found'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    rows.sort();
    let expected = [
        ("CREATE_GRANT", "share"),
        ("DELETE_BUCKET", "admin"),
        ("GET", "read"),
        ("LIST", "read"),
        ("LIST_GRANTS", "share"),
        ("POST_POLICY", "write"),
    ];
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|(method, action, b)| {
            assert_eq!(b, &bucket);
            (method.as_str(), action.as_str())
        })
        .collect();
    assert_eq!(got, expected);
    let counted = metrics(&app).await;
    assert!(
        counted.contains("storage_broker_decisions_total{outcome=\"not_found\"} 6"),
        "{counted}"
    );
}

/// Before: a request allowed by the grants and then refused by a class limit was counted as
/// allowed (and its denial not at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_a_class_limit_counts_once_as_a_denial() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let refused = app
        .sign(
            "alice",
            json!({ "bucket": bucket, "object": "x", "method": "GET", "expires_in": 7200 }),
        )
        .await;
    expect_problem(refused, 400, "ttl_exceeds_limit").await;
    let counted = metrics(&app).await;
    assert!(
        counted.contains("storage_broker_decisions_total{outcome=\"deny\"} 1"),
        "{counted}"
    );
    assert!(
        !counted.contains("storage_broker_decisions_total{outcome=\"allow\"}"),
        "{counted}"
    );
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT decision || ': ' || reason FROM audit_events")
            .fetch_all(&app.pool)
            .await
            .expect("audit");
    assert_eq!(
        reasons,
        ["deny: class limit: expires_in 7200 is above this bucket's limit of 3600 seconds"]
    );
}

/// Before: signing refused such a bucket with a logged 500, while `GET /v1/buckets/{bucket}`
/// said it did not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_whose_class_left_the_policies_is_refused_alike_everywhere() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO buckets (name, class, owner, backend_bucket, backend_prefix, classification, created_by)
         VALUES ('retired-one', 'retired', 'alice', 'storage-broker-data', 'retired/alice/', 'unclassified', 'psql')",
    )
    .execute(&app.pool)
    .await
    .expect("bucket of a class the policies lack");
    let alice = app.idp.token("alice");
    let sign = app
        .sign(
            "alice",
            json!({ "bucket": "retired-one", "object": "x", "method": "GET" }),
        )
        .await;
    expect_problem(sign, 500, "internal").await;
    expect_problem(
        app.get("/v1/buckets/retired-one", &alice).await,
        500,
        "internal",
    )
    .await;
    let grants = app.get("/v1/buckets/retired-one/grants", &alice).await;
    expect_problem(grants, 500, "internal").await;
    // The list of buckets still answers, without it.
    let list: serde_json::Value = app
        .get("/v1/buckets", &alice)
        .await
        .json()
        .await
        .expect("list");
    let names: Vec<&str> = list["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert!(!names.contains(&"retired-one"), "{names:?}");
    assert!(!names.is_empty(), "alice's personal bucket is listed");
    let denials: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE bucket = 'retired-one' AND decision = 'deny' AND reason = 'bucket class missing from the policies'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(denials, 2, "the signature and the grant listing");
}
