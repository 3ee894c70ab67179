//! `POST /v1/sign`: the owner signs in her bucket; everyone else is refused the right way.

use crate::helpers::{TestApp, expect_problem, fixture, signed_at};
use serde_json::{Value, json};
use storage_broker::signing::{
    BucketName, Expiry, Method, ObjectName, UrlRequest, UrlSigner, load_signer,
};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

/// The URL the offline signer makes for the same backend request at the URL's own time.
fn offline(url: &str, method: Method, object: &str, ttl: i64, headers: &[(&str, &str)]) -> String {
    let date = url
        .split("X-Goog-Date=")
        .nth(1)
        .expect("date")
        .split('&')
        .next()
        .expect("date");
    let at = OffsetDateTime::parse(
        &format!(
            "{}-{}-{}T{}:{}:{}Z",
            &date[0..4],
            &date[4..6],
            &date[6..8],
            &date[9..11],
            &date[11..13],
            &date[13..15]
        ),
        &Iso8601::DEFAULT,
    )
    .expect("time");
    let signer = UrlSigner::new(
        load_signer(&fixture("test-service-account.json")).expect("key"),
        Default::default(),
        Default::default(),
    );
    let mut request = UrlRequest::new(
        method,
        BucketName::parse("storage-broker-data").expect("bucket"),
        Some(ObjectName::parse(object).expect("object")),
        Expiry::from_secs(ttl).expect("ttl"),
    );
    for (n, v) in headers {
        request = request.header(*n, *v);
    }
    signer.sign(&request, at).expect("sign").url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_signs_in_her_bucket() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    assert_eq!(bucket, "u-alice");

    let response = app
        .sign(
            "alice",
            json!({ "bucket": bucket, "object": "photos/cat 1.png", "method": "GET" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let url = body["url"].as_str().expect("url");
    // Her objects live under users/<sub>/ of the class's GCS bucket, and the URL is exactly the
    // one the offline signer makes.
    assert!(
        url.starts_with(
            "https://storage.googleapis.com/storage-broker-data/users/alice/photos/cat%201.png?"
        ),
        "{url}"
    );
    assert_eq!(
        url,
        offline(url, Method::Get, "users/alice/photos/cat 1.png", 900, &[])
    );
    assert_eq!(body["method"], "GET");
    assert_eq!(body["headers"], json!({}));
    let expires = OffsetDateTime::parse(
        body["expires_at"].as_str().expect("expires"),
        &Iso8601::DEFAULT,
    )
    .expect("time");
    // A read is signed at the start of its reuse window (60 s by default): valid for its
    // 900 s from then, so for 840 to 900 s from now, and `expires_at` says exactly when.
    let left = expires - OffsetDateTime::now_utc();
    assert!(
        left.whole_seconds() >= 838 && left.whole_seconds() <= 900,
        "{left}"
    );
    assert_eq!(expires - signed_at(url), time::Duration::seconds(900));
    assert_eq!(signed_at(url).unix_timestamp() % 60, 0);

    // An upload binds the content type and the size limit; the client is told what to send.
    let put = app
        .sign("alice", json!({ "bucket": bucket, "object": "up.png", "method": "PUT", "expires_in": 60,
                               "content_type": "image/png", "max_size": 1048576, "metadata": { "source": "app-1" } }))
        .await;
    assert_eq!(put.status(), 200);
    let put: Value = put.json().await.expect("json");
    assert_eq!(
        put["headers"],
        json!({ "content-type": "image/png", "x-goog-content-length-range": "0,1048576", "x-goog-meta-source": "app-1" })
    );
    let put_url = put["url"].as_str().expect("url");
    let headers = [
        ("content-type", "image/png"),
        ("x-goog-content-length-range", "0,1048576"),
        ("x-goog-meta-source", "app-1"),
    ];
    assert_eq!(
        put_url,
        offline(put_url, Method::Put, "users/alice/up.png", 60, &headers)
    );

    // Without max_size, the class's limit is bound.
    let put: Value = app
        .sign("alice", json!({ "bucket": bucket, "object": "big.bin", "method": "PUT", "content_type": "application/octet-stream" }))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        put["headers"]["x-goog-content-length-range"],
        "0,5368709120"
    );

    let resumable: Value = app
        .sign("alice", json!({ "bucket": bucket, "object": "big.iso", "method": "RESUMABLE", "content_type": "application/x-iso9660-image" }))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(resumable["method"], "RESUMABLE");
    assert_eq!(resumable["headers"]["x-goog-resumable"], "start");

    let download: Value = app
        .sign("alice", json!({ "bucket": bucket, "object": "r.pdf", "method": "GET", "response_content_disposition": "attachment" }))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        download["url"]
            .as_str()
            .expect("url")
            .contains("response-content-disposition=attachment")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_gets_404_for_alices_bucket() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    for method in ["GET", "PUT", "DELETE"] {
        let response = app
            .sign(
                "bob",
                json!({ "bucket": bucket, "object": "x", "method": method }),
            )
            .await;
        expect_problem(response, 404, "not_found").await;
    }
    // Same answer as for a bucket that does not exist: no existence leak.
    let response = app
        .sign(
            "bob",
            json!({ "bucket": "u-nobody", "object": "x", "method": "GET" }),
        )
        .await;
    let body = expect_problem(response, 404, "not_found").await;
    assert_eq!(body["detail"], "no such bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_problems() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let sign = |body: Value| app.sign("alice", body);

    // The personal class allows 3600 s.
    let body = expect_problem(
        sign(json!({ "bucket": bucket, "object": "x", "method": "GET", "expires_in": 3601 })).await,
        400,
        "ttl_exceeds_limit",
    )
    .await;
    assert!(body["detail"].as_str().expect("detail").contains("3600"));
    expect_problem(
        sign(json!({ "bucket": bucket, "object": "x", "method": "GET", "expires_in": 604801 }))
            .await,
        400,
        "invalid_expiry",
    )
    .await;
    expect_problem(
        sign(json!({ "bucket": bucket, "object": "x", "method": "GET", "expires_in": 0 })).await,
        400,
        "invalid_expiry",
    )
    .await;

    let long = "x".repeat(1025);
    let near_limit = "y".repeat(1020); // fits alone, not with the users/alice/ prefix
    for object in [
        "",
        ".",
        "..",
        "a\nb",
        "a\rb",
        long.as_str(),
        near_limit.as_str(),
    ] {
        let response = sign(json!({ "bucket": bucket, "object": object, "method": "GET" })).await;
        expect_problem(response, 400, "invalid_object_name").await;
    }
    expect_problem(
        sign(json!({ "bucket": "Bad Bucket", "object": "x", "method": "GET" })).await,
        400,
        "invalid_bucket_name",
    )
    .await;
    expect_problem(
        sign(json!({ "bucket": bucket, "object": "x", "method": "PATCH" })).await,
        400,
        "invalid_method",
    )
    .await;
    expect_problem(
        sign(json!({ "bucket": bucket, "object": "x", "method": "GET", "content_type": "a/b" }))
            .await,
        400,
        "invalid_request",
    )
    .await;
    expect_problem(sign(json!({ "bucket": bucket, "object": "x", "method": "PUT", "metadata": { "Bad Key": "v" } })).await, 400, "invalid_metadata").await;
    // Content-MD5 is the base64 of 16 bytes, nothing else.
    for md5 in [
        "",
        "not base64!",
        "AAAA",
        "1B2M2Y8AsgTpgAmY7PhCfg",
        "1B2M2Y8AsgTpgAmY7PhCfgAA",
    ] {
        expect_problem(
            sign(json!({ "bucket": bucket, "object": "x", "method": "PUT", "content_md5": md5 }))
                .await,
            400,
            "invalid_content_md5",
        )
        .await;
    }
    assert_eq!(
        sign(json!({ "bucket": bucket, "object": "x", "method": "PUT", "content_md5": "1B2M2Y8AsgTpgAmY7PhCfg==" }))
            .await
            .status(),
        200
    );
    expect_problem(
        sign(
            json!({ "bucket": bucket, "object": "x", "method": "PUT", "max_size": 5368709121u64 }),
        )
        .await,
        400,
        "max_size_exceeds_limit",
    )
    .await;
    expect_problem(
        sign(json!({ "bucket": bucket, "object": "x", "method": "GET", "surprise": 1 })).await,
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        sign(json!({ "bucket": bucket, "method": "GET" })).await,
        400,
        "invalid_request",
    )
    .await;

    let token = app.idp.token("alice");
    let malformed = app
        .client
        .post(app.url("/v1/sign"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"bucket\": ")
        .send()
        .await
        .expect("request");
    expect_problem(malformed, 400, "invalid_json").await;
    let not_json = app
        .client
        .post(app.url("/v1/sign"))
        .bearer_auth(&token)
        .body("bucket=x")
        .send()
        .await
        .expect("request");
    expect_problem(not_json, 415, "unsupported_media_type").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_match_urls_issued() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let mut issued = 0;
    for i in 0..12 {
        let response = app
            .sign(
                "alice",
                json!({ "bucket": bucket, "object": format!("o{i}"), "method": "GET" }),
            )
            .await;
        assert_eq!(response.status(), 200);
        issued += 1;
    }
    for _ in 0..3 {
        expect_problem(
            app.sign(
                "bob",
                json!({ "bucket": bucket, "object": "o", "method": "GET" }),
            )
            .await,
            404,
            "not_found",
        )
        .await;
    }
    assert_eq!(app.audit_count("allow").await, issued);
    assert_eq!(
        app.audit_count("not_found").await,
        3,
        "denials are audited too"
    );
    let row: (String, String, String, String, Option<String>) = sqlx::query_as(
        "SELECT subject, action, bucket, object, client FROM audit_events WHERE decision = 'allow' ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("row");
    assert_eq!(
        row,
        (
            "alice".into(),
            "read".into(),
            bucket,
            "o0".into(),
            Some("test-app".into())
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_make_one_personal_bucket() {
    let app = TestApp::spawn().await;
    let token = app.idp.token("carol");
    let requests = (0..16).map(|_| app.get("/v1/me", &token));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM buckets WHERE owner = 'carol'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_that_slug_alike_get_distinct_buckets() {
    let app = TestApp::spawn().await;
    let first = app
        .idp
        .token_with("sub-1", json!({ "preferred_username": "dana.x" }));
    let second = app
        .idp
        .token_with("sub-2", json!({ "preferred_username": "dana-x" }));
    let a: Value = app.get("/v1/me", &first).await.json().await.expect("json");
    let b: Value = app.get("/v1/me", &second).await.json().await.expect("json");
    assert_eq!(a["personal_bucket"], "u-dana-x");
    assert_ne!(a["personal_bucket"], b["personal_bucket"]);
    assert!(
        b["personal_bucket"]
            .as_str()
            .expect("name")
            .starts_with("u-dana-x-")
    );
}
