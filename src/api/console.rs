//! `/console/`: the console for people, static assets built into the binary (from `console/`),
//! served under a strict Content-Security-Policy: scripts and styles from this origin only, no
//! inline script, no third-party origin; the API is same-origin, and the only other origins are
//! the storage endpoints the console moves bytes to and shows images from (each configured
//! backend's). No server-side session: the console holds its token in memory (under `dev`, from
//! the dev issuer; behind a gatekeeper, the proxy adds it to every request).

use super::AppState;
use crate::policy::{BackendSettings, Policies};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The console's files: path under `/console/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/console.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/pages.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/ui.js"),
    ),
    // clients/js, compiled (scripts/test-clients checks that it is the current build).
    (
        "client/index.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/client/index.js"),
    ),
    (
        "client/client.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/client/client.js"),
    ),
    (
        "client/errors.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/client/errors.js"),
    ),
    (
        "client/transport.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/client/transport.js"),
    ),
    (
        "client/upload.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/client/upload.js"),
    ),
    (
        "client/openapi.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/client/openapi.js"),
    ),
];

/// The Content-Security-Policy for the console, with `storage` the storage origins.
pub fn content_security_policy(storage: &[String]) -> String {
    let storage = storage.join(" ");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' {storage}; \
         connect-src 'self' {storage}; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The origins of the storage every configured backend signs for: where the console's uploads,
/// downloads and previews go. `gcs_endpoint`: `BROKER_STORAGE_ENDPOINT`, if set.
pub fn storage_origins(policies: &Policies, gcs_endpoint: Option<&str>) -> Vec<String> {
    let mut origins = Vec::new();
    for backend in policies.classes.backends_in_use() {
        match &backend.settings {
            BackendSettings::Gcs => match gcs_endpoint {
                Some(endpoint) => origins.push(origin(endpoint)),
                None => {
                    origins.push("https://storage.googleapis.com".into());
                    origins.push("https://*.storage.googleapis.com".into());
                }
            },
            BackendSettings::S3 { endpoint, .. } => {
                let base = endpoint.url();
                // Virtual-hosted URLs put the bucket in front of the host.
                if let Some((scheme, host)) = base.split_once("://") {
                    origins.push(format!("{scheme}://*.{host}"));
                }
                origins.push(base);
            }
            BackendSettings::Azure { endpoint, .. } => origins.push(origin(endpoint.base())),
        }
    }
    origins.sort();
    origins.dedup();
    origins
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.trim_end_matches('/').to_owned(),
    }
}

async fn asset(State(state): State<AppState>, path: Option<Path<String>>) -> Response {
    let name = path.map_or_else(|| "index.html".to_owned(), |Path(p)| p);
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (*bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(csp) = HeaderValue::from_str(&state.console_csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(asset))
        .route("/console/{*path}", get(asset))
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            super::origin("http://127.0.0.1:4443/x/y"),
            "http://127.0.0.1:4443"
        );
        assert_eq!(
            super::origin("https://a.blob.core.windows.net"),
            "https://a.blob.core.windows.net"
        );
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_other_origin() {
        let csp = super::content_security_policy(&["https://storage.googleapis.com".into()]);
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("connect-src 'self' https://storage.googleapis.com;"));
    }
}
