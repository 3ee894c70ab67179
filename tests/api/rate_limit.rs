//! Rate limiting per verified subject: 429 problem+json with Retry-After past the quota, other
//! callers unaffected, and tokens that fail verification spend nobody's quota.

use crate::helpers::{TestApp, expect_problem};
use serde_json::json;

async fn sign(app: &TestApp, token: &str) -> reqwest::Response {
    app.post(
        "/v1/sign",
        token,
        &json!({ "bucket": "u-alice", "object": "a.txt", "method": "GET" }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_quota_a_subject_gets_429_and_others_do_not() {
    let app = TestApp::spawn_with(&[
        ("BROKER_RATE_LIMIT_PER_SECOND", "1"),
        ("BROKER_RATE_LIMIT_BURST", "5"),
    ])
    .await;
    let (alice, bob) = (app.idp.token("alice"), app.idp.token("bob"));
    // Tokens naming alice but signed by someone else are refused before they count.
    let forged = crate::helpers::TestKey::es256("rogue").sign(&app.idp.claims("alice"));
    for _ in 0..20 {
        expect_problem(sign(&app, &forged).await, 401, "unauthorized").await;
    }
    for i in 0..5 {
        assert_eq!(
            sign(&app, &alice).await.status(),
            200,
            "request {i} is within the burst"
        );
    }
    let refused = sign(&app, &alice).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    expect_problem(refused, 429, "rate_limited").await;
    assert_eq!(
        app.get("/v1/me", &bob).await.status(),
        200,
        "bob has a quota of his own"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(sign(&app, &alice).await.status(), 200, "the quota refills");
}
