//! CORS for browser apps that call the broker directly: preflights for the configured origins,
//! headers on answers (problems included, so a page can read them), nothing for other origins.

use crate::helpers::TestApp;
use serde_json::json;

const APP: &str = "https://app.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_origins_get_preflights_and_headers_others_do_not() {
    let app = TestApp::spawn_with(&[(
        "BROKER_CORS_ORIGINS",
        "https://app.example.com, http://localhost:5173",
    )])
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/sign"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], APP);
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("text")
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .expect("text")
            .contains("POST")
    );

    let token = app.idp.token("alice");
    let signed = app
        .client
        .post(app.url("/v1/sign"))
        .header("origin", APP)
        .bearer_auth(&token)
        .json(&json!({ "bucket": "u-alice", "object": "a.png", "method": "GET" }))
        .send()
        .await
        .expect("sign");
    assert_eq!(signed.status(), 200);
    assert_eq!(signed.headers()["access-control-allow-origin"], APP);

    // A problem answer carries the header too: the page can show why.
    let refused = app
        .client
        .post(app.url("/v1/sign"))
        .header("origin", APP)
        .json(&json!({ "bucket": "u-alice", "object": "a.png", "method": "GET" }))
        .send()
        .await
        .expect("sign");
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["access-control-allow-origin"], APP);

    let other = app
        .client
        .post(app.url("/v1/sign"))
        .header("origin", "https://evil.example.net")
        .bearer_auth(&token)
        .json(&json!({ "bucket": "u-alice", "object": "a.png", "method": "GET" }))
        .send()
        .await
        .expect("sign");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_origins_there_is_no_cors() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("origin", APP)
        .send()
        .await
        .expect("healthz");
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}
