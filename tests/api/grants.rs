//! Grants kept in PostgreSQL are checked on every request (the grants API arrives with sharing;
//! these tests write grants directly).

use crate::helpers::{TestApp, expect_problem, within_propagation_limit};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_grants_open_exactly_their_prefix() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    app.grant(&bucket, "shared/", "user:bob", "viewer", None)
        .await;

    let ok = app
        .sign(
            "bob",
            json!({ "bucket": bucket, "object": "shared/cat.png", "method": "GET" }),
        )
        .await;
    assert_eq!(ok.status(), 200);
    // Visible now, so missing rights are 403, not 404.
    for object in ["shared", "sharedx/a", "private.png"] {
        let response = app
            .sign(
                "bob",
                json!({ "bucket": bucket, "object": object, "method": "GET" }),
            )
            .await;
        expect_problem(response, 403, "forbidden").await;
    }
    let write = app
        .sign(
            "bob",
            json!({ "bucket": bucket, "object": "shared/new.png", "method": "PUT" }),
        )
        .await;
    expect_problem(write, 403, "forbidden").await;
    // Carol has nothing: still 404.
    let carol = app
        .sign(
            "carol",
            json!({ "bucket": bucket, "object": "shared/cat.png", "method": "GET" }),
        )
        .await;
    expect_problem(carol, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_expiring_grants() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    app.grant(&bucket, "team/", "group:/vision", "editor", None)
        .await;
    app.grant(
        &bucket,
        "old/",
        "user:dave",
        "viewer",
        Some(OffsetDateTime::now_utc() - Duration::seconds(1)),
    )
    .await;

    let member = app.idp.token_with("erin", json!({ "groups": ["/vision"] }));
    let put = app
        .post(
            "/v1/sign",
            &member,
            &json!({ "bucket": bucket, "object": "team/a.txt", "method": "PUT" }),
        )
        .await;
    assert_eq!(put.status(), 200);

    let expired = app
        .sign(
            "dave",
            json!({ "bucket": bucket, "object": "old/a.txt", "method": "GET" }),
        )
        .await;
    expect_problem(expired, 404, "not_found").await;

    let listed: Value = app
        .get("/v1/buckets", &member)
        .await
        .json()
        .await
        .expect("json");
    let view = listed["buckets"]
        .as_array()
        .expect("list")
        .iter()
        .find(|b| b["name"] == bucket.as_str())
        .expect("alice's bucket is visible to erin");
    assert_eq!(view["actions"], json!([]), "no whole-bucket right");
    assert_eq!(
        view["prefix_grants"],
        json!([{ "prefix": "team/", "exact": false, "role": "editor" }])
    );
    assert!(
        view.get("backend_bucket").is_none(),
        "the backend location is never shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_admins_may_do_everything() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let admin = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    );
    let response = app
        .post(
            "/v1/sign",
            &admin,
            &json!({ "bucket": bucket, "object": "any", "method": "DELETE" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM audit_events WHERE subject = 'root'")
            .fetch_one(&app.pool)
            .await
            .expect("audited");
    assert_eq!(reason, "storage admin");
    let listed: Value = app
        .get("/v1/buckets", &admin)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        listed["buckets"]
            .as_array()
            .expect("list")
            .iter()
            .any(|b| b["name"] == bucket.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_list_their_bucket_with_every_action() {
    let app = TestApp::spawn().await;
    let listed: Value = app
        .get("/v1/buckets", &app.idp.token("alice"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["buckets"].as_array().expect("list").len(), 1);
    let bucket = &listed["buckets"][0];
    assert_eq!(bucket["name"], "u-alice");
    assert_eq!(bucket["class"], "personal");
    assert_eq!(
        bucket["actions"],
        json!(["read", "write", "delete", "share", "admin"])
    );
}

/// Signs as `sub` on `base` and returns the status.
async fn status_on(app: &TestApp, base: &str, sub: &str, bucket: &str, object: &str) -> u16 {
    let body = json!({ "bucket": bucket, "object": object, "method": "GET" });
    let response = app
        .client
        .post(format!("{base}/v1/sign"))
        .bearer_auth(app.idp.token(sub))
        .json(&body)
        .send()
        .await
        .expect("request");
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_replica_within_a_second() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let bucket = app.personal_bucket("alice").await;
    app.grant(&bucket, "shared/", "user:bob", "viewer", None)
        .await;
    // Both change feeds listen (so both cache), then warm both caches.
    app.wait_for_change_feed(&app.address).await;
    app.wait_for_change_feed(&replica.address).await;
    for base in [app.address.as_str(), replica.address.as_str()] {
        for _ in 0..3 {
            assert_eq!(status_on(&app, base, "bob", &bucket, "shared/a").await, 200);
        }
    }
    sqlx::query("DELETE FROM grants WHERE principal = 'user:bob'")
        .execute(&app.pool)
        .await
        .expect("revoke");
    for base in [app.address.as_str(), replica.address.as_str()] {
        within_propagation_limit(&format!("{base} refuses bob after the revocation"), || {
            let (app, bucket) = (&app, &bucket);
            async move { status_on(app, base, "bob", bucket, "shared/a").await == 404 }
        })
        .await;
    }
    // A new grant is seen as quickly.
    app.grant(&bucket, "", "user:bob", "viewer", None).await;
    for base in [app.address.as_str(), replica.address.as_str()] {
        within_propagation_limit(&format!("{base} sees the new grant"), || {
            let (app, bucket) = (&app, &bucket);
            async move { status_on(app, base, "bob", bucket, "x").await == 200 }
        })
        .await;
    }
}
