//! `POST /v1/upload-policy`: HTML form uploads.

use crate::helpers::{TestApp, expect_problem};
use base64::Engine;
use serde_json::{Value, json};

fn decoded_policy(fields: &Value) -> Value {
    let policy = base64::engine::general_purpose::STANDARD
        .decode(fields["policy"].as_str().expect("policy"))
        .expect("base64");
    serde_json::from_slice(&policy).expect("policy JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_uploads_for_one_object_or_a_prefix() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let token = app.idp.token("alice");
    let response = app
        .post("/v1/upload-policy", &token, &json!({ "bucket": bucket, "object": "form/cat.png", "content_type": "image/png", "max_size": 1000 }))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["url"],
        "https://storage.googleapis.com/storage-broker-data/"
    );
    assert_eq!(body["fields"]["key"], "users/alice/form/cat.png");
    assert_eq!(body["fields"]["content-type"], "image/png");
    let policy = decoded_policy(&body["fields"]);
    let conditions = policy["conditions"].as_array().expect("conditions");
    assert!(conditions.contains(&json!(["content-length-range", 0, 1000])));
    assert!(conditions.contains(&json!({ "key": "users/alice/form/cat.png" })));

    let prefix: Value = app
        .post(
            "/v1/upload-policy",
            &token,
            &json!({ "bucket": bucket, "object_prefix": "inbox/" }),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(prefix["fields"]["key"], "users/alice/inbox/${filename}");
    assert!(
        decoded_policy(&prefix["fields"])["conditions"]
            .as_array()
            .expect("c")
            .contains(&json!(["starts-with", "$key", "users/alice/inbox/"]))
    );

    let both = app
        .post(
            "/v1/upload-policy",
            &token,
            &json!({ "bucket": bucket, "object": "a", "object_prefix": "b/" }),
        )
        .await;
    expect_problem(both, 400, "invalid_request").await;
    let stranger = app
        .post(
            "/v1/upload-policy",
            &app.idp.token("bob"),
            &json!({ "bucket": bucket, "object": "a" }),
        )
        .await;
    expect_problem(stranger, 404, "not_found").await;
    assert_eq!(app.audit_count("allow").await, 2);
}
