//! Every token defect is a 401 problem+json with a generic message.

use crate::helpers::{AUDIENCE, TestApp, TestKey, b64, expect_problem};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn status_of(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/v1/me", token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_defects_are_401() {
    let app = TestApp::spawn().await;
    let idp = &app.idp;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let valid = idp.token("alice");
    let parts: Vec<&str> = valid.split('.').collect();

    let mut tampered_claims = idp.claims("alice");
    tampered_claims["sub"] = json!("mallory");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(tampered_claims.to_string().as_bytes()),
        parts[2]
    );

    let none_header = json!({ "alg": "none", "typ": "JWT", "kid": "test-key-1" });
    let alg_none = format!("{}.{}.", b64(none_header.to_string().as_bytes()), parts[1]);

    // The classic confusion attack: HS256 keyed with the issuer's public key.
    let mut hs_header = Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some("test-key-1".into());
    let public_key_bytes = serde_json::to_vec(&idp.key.jwk).expect("jwk");
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &idp.claims("alice"),
        &EncodingKey::from_secret(&public_key_bytes),
    )
    .expect("hs256");

    let stranger = TestKey::rs256("not-published").sign(&idp.claims("alice"));

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            idp.token_with("alice", json!({ "exp": now - 120 })),
        ),
        (
            "nbf in the future",
            idp.token_with("alice", json!({ "nbf": now + 600 })),
        ),
        (
            "wrong iss",
            idp.token_with(
                "alice",
                json!({ "iss": "https://evil.example.com/realms/test" }),
            ),
        ),
        (
            "wrong aud",
            idp.token_with(
                "alice",
                json!({ "aud": "someone-else", "azp": "someone-else" }),
            ),
        ),
        ("no exp", {
            let mut c = idp.claims("alice");
            c.as_object_mut().expect("object").remove("exp");
            idp.key.sign(&c)
        }),
        ("alg none", alg_none),
        ("HS256 signed with the public key", hs256),
        ("unknown kid", stranger),
        ("tampered payload", tampered),
        ("garbage", "not.a.jwt".into()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        let body = expect_problem(status_of(&app, &token).await, 401, "unauthorized").await;
        assert_eq!(
            body["detail"], "a valid bearer token is required",
            "{what}: the reason is not told"
        );
    }
    // No token at all, and a non-bearer scheme.
    expect_problem(
        app.client
            .get(app.url("/v1/me"))
            .send()
            .await
            .expect("request"),
        401,
        "unauthorized",
    )
    .await;
    let basic = app
        .client
        .get(app.url("/v1/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .expect("request");
    expect_problem(basic, 401, "unauthorized").await;

    // The valid one passes.
    assert_eq!(status_of(&app, &valid).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatekeeper_headers_and_claims() {
    let app = TestApp::spawn().await;
    let token = app.idp.token_with(
        "alice-sub",
        json!({
            "preferred_username": "alice",
            // Keycloak access tokens often carry the client only in azp.
            "aud": "account", "azp": AUDIENCE,
            "groups": ["/vision", "/vision/team-a"],
            "realm_access": { "roles": ["staff"] },
            "resource_access": { (AUDIENCE): { "roles": ["uploader"] }, "other-client": { "roles": ["ignored"] } },
        }),
    );
    for header in ["x-auth-token", "x-forwarded-access-token"] {
        let response = app
            .client
            .get(app.url("/v1/me"))
            .header(header, &token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{header}");
        let me: Value = response.json().await.expect("json");
        assert_eq!(me["subject"], "alice-sub");
        assert_eq!(me["username"], "alice");
        assert_eq!(me["personal_bucket"], "u-alice");
        assert_eq!(me["groups"], json!(["/vision", "/vision/team-a"]));
        assert_eq!(me["roles"], json!(["staff", "uploader"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_keys_and_rotation_without_restart() {
    let app = TestApp::spawn_with(&[("BROKER_JWKS_REFETCH_SECONDS", "0")]).await;
    let rotated = TestKey::es256("rotated-1");
    let token = rotated.sign(&app.idp.claims("alice"));
    expect_problem(app.get("/v1/me", &token).await, 401, "unauthorized").await;
    // The issuer rotates: the new kid is fetched on first sight.
    app.idp.publish(&[&app.idp.key, &rotated]);
    assert_eq!(app.get("/v1/me", &token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_are_refetched_at_most_once_per_interval() {
    let app = TestApp::spawn_with(&[("BROKER_JWKS_REFETCH_SECONDS", "3600")]).await;
    let before = app.idp.jwks_hits.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..20 {
        let token = TestKey::rs256(&format!("flood-{i}")).sign(&app.idp.claims("alice"));
        expect_problem(app.get("/v1/me", &token).await, 401, "unauthorized").await;
    }
    let after = app.idp.jwks_hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "{} JWKS fetches for 20 unknown kids",
        after - before
    );
    // Known keys keep working.
    assert_eq!(
        app.get("/v1/me", &app.idp.token("alice")).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_outage_keeps_the_cached_keys_working() {
    let app = TestApp::spawn_with(&[("BROKER_JWKS_REFRESH_SECONDS", "1")]).await;
    app.idp
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // Two periodic refreshes fail meanwhile.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.idp.refused.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker did not try to refresh the keys twice in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for sub in ["carol", "dave", "erin"] {
        // Tokens never seen before: verified with the cached keys, not a remembered answer.
        assert_eq!(
            app.get("/v1/me", &app.idp.token(sub)).await.status(),
            200,
            "{sub}"
        );
    }
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
}
