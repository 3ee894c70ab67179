//! `/console/`: static assets built into the binary, under a strict Content-Security-Policy.

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_under_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let page = app
        .client
        .get(app.url("/console/"))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self';") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains("*;"),
        "{csp}"
    );
    // The test broker signs for Google: the console may reach storage there and nowhere else.
    assert!(
        csp.contains(
            "connect-src 'self' https://*.storage.googleapis.com https://storage.googleapis.com;"
        ),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("body");
    // No inline script: every <script> loads a file of this origin.
    for script in html.split("<script").skip(1) {
        assert!(
            script.split('>').next().expect("tag").contains("src="),
            "inline script in {script}"
        );
    }
    assert!(!html.contains("style=") && !html.contains("onclick"));
    for (path, kind) in [
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/client/index.js", "text/javascript"),
    ] {
        let asset = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with(kind)
        );
        assert!(asset.headers().contains_key("content-security-policy"));
    }
    for path in [
        "/console/nothing.js",
        "/console/../Cargo.toml",
        "/console/client/../../src/main.rs",
    ] {
        let missing = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(missing.status(), 404, "{path}");
    }
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/console"))
        .send()
        .await
        .expect("request");
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/console/");
}
