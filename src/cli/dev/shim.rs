//! A pass-through proxy in front of fake-gcs-server for the two requests it does not take as
//! GCS does, so that every upload flow the broker signs works under `dev`:
//!
//! 1. the XML API's resumable start (a POST to a signed object URL with
//!    `x-goog-resumable: start`), which the emulator answers 400 (its issue #2254): the proxy
//!    starts a JSON-API resumable session instead and answers 201 with its `Location`, as GCS does;
//! 2. a form POST to `/BUCKET/` (the URL of Google's POST-policy conformance vectors, which GCS
//!    accepts), which the emulator routes only without the slash;
//! 3. a resumable session's status query (`PUT` with `Content-Range: bytes */SIZE` and no body),
//!    which the emulator takes for a last, empty chunk and answers by finishing the object with
//!    what it has. Sessions started here get a `Location` through the proxy, which keeps each
//!    session's committed offset from the emulator's answers and answers a status query as GCS
//!    does: 308 with `Range: bytes=0-N`, or 200 once the object is complete.
//!
//! Every other request, and every body, is streamed through unchanged. The emulator checks no
//! signature either way. It lives only inside `dev`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Headers of one hop that are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "host",
    "content-length",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
];

struct Shim {
    emulator: String,
    /// This proxy's own `http://127.0.0.1:PORT`, where session URLs point.
    url: String,
    client: reqwest::Client,
    /// Resumable sessions by `upload_id`.
    sessions: Mutex<HashMap<String, Session>>,
}

/// What a resumable session has stored, as the emulator's answers said.
#[derive(Default)]
struct Session {
    /// Bytes committed (the end of the last `Range: bytes=0-N` + 1).
    committed: u64,
    /// The emulator's answer that completed the object: its status, content type and body.
    complete: Option<(StatusCode, Option<HeaderValue>, bytes::Bytes)>,
}

/// Serves the proxy for `emulator` on a free loopback port until the process ends; returns its
/// `http://127.0.0.1:PORT`.
pub async fn start(emulator: &str) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("no free port for the emulator's proxy: {e}"))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("the emulator's proxy has no address: {e}"))?
    );
    let shim = Arc::new(Shim {
        emulator: emulator.trim_end_matches('/').to_owned(),
        url: url.clone(),
        client: reqwest::Client::new(),
        sessions: Mutex::default(),
    });
    let app = axum::Router::new().fallback(forward).with_state(shim);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the emulator's proxy stopped");
        }
    });
    Ok(url)
}

async fn forward(State(shim): State<Arc<Shim>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if parts.method == Method::POST
        && parts
            .headers
            .get("x-goog-resumable")
            .is_some_and(|v| v == "start")
    {
        return start_resumable(&shim, path, &parts.headers).await;
    }
    let session = (parts.method == Method::PUT)
        .then(|| upload_id(parts.uri.query().unwrap_or_default()))
        .flatten();
    let range = parts
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let (Some(id), Some(range)) = (&session, &range)
        && range.starts_with("bytes */")
        && range != "bytes */0"
    {
        return session_status(&shim, id);
    }
    // `/BUCKET/` → `/BUCKET` for a form POST.
    let target = if parts.method == Method::POST
        && path.len() > 1
        && path.ends_with('/')
        && path.matches('/').count() == 2
    {
        format!("{}{}{query}", shim.emulator, path.trim_end_matches('/'))
    } else {
        format!("{}{path}{query}", shim.emulator)
    };
    let mut outgoing = shim.client.request(parts.method.clone(), target);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let outgoing = outgoing.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    match outgoing.send().await {
        Ok(answer) if session.is_some() => {
            record(&shim, session.as_deref().unwrap_or_default(), answer).await
        }
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            format!("the GCS emulator did not answer: {err}"),
        )
            .into_response(),
    }
}

/// Starts a JSON-API resumable session for the object at `path` (`/BUCKET/OBJECT`) and answers
/// as GCS answers an XML-API resumable start.
async fn start_resumable(shim: &Shim, path: &str, headers: &HeaderMap) -> Response {
    let Some((bucket, object)) = path.trim_start_matches('/').split_once('/') else {
        return (StatusCode::BAD_REQUEST, "a resumable start names an object").into_response();
    };
    let object = percent_encoding::percent_decode_str(object).decode_utf8_lossy();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let started = shim
        .client
        .post(format!("{}/upload/storage/v1/b/{bucket}/o", shim.emulator))
        .query(&[("uploadType", "resumable"), ("name", object.as_ref())])
        .json(&serde_json::json!({ "contentType": content_type }))
        .send()
        .await;
    let location = match started {
        Ok(answer) if answer.status().is_success() => {
            answer.headers().get(header::LOCATION).cloned()
        }
        _ => None,
    };
    let Some(location) = location else {
        return (
            StatusCode::BAD_GATEWAY,
            "the GCS emulator started no resumable session",
        )
            .into_response();
    };
    // Through this proxy, which answers the session's status queries (see the module's notes).
    let location = location
        .to_str()
        .ok()
        .and_then(|l| l.strip_prefix(shim.emulator.as_str()))
        .and_then(|rest| HeaderValue::from_str(&format!("{}{rest}", shim.url)).ok())
        .unwrap_or(location);
    let mut response = StatusCode::CREATED.into_response();
    let out = response.headers_mut();
    out.insert(header::LOCATION, location);
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    out.insert(
        HeaderName::from_static("access-control-expose-headers"),
        HeaderValue::from_static("Location"),
    );
    response
}

/// The `upload_id` of a session URL's query.
fn upload_id(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("upload_id="))
        .map(str::to_owned)
}

/// The answer GCS gives a status query: 200 with the object once complete, else 308 with the
/// committed range (none when nothing is stored).
fn session_status(shim: &Shim, id: &str) -> Response {
    let sessions = shim.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let session = sessions.get(id);
    let mut response = match session.and_then(|s| s.complete.clone()) {
        Some((status, content_type, body)) => {
            let mut response = (status, body).into_response();
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        None => {
            let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
            let committed = session.map_or(0, |s| s.committed);
            if committed > 0
                && let Ok(range) = HeaderValue::from_str(&format!("bytes=0-{}", committed - 1))
            {
                response.headers_mut().insert(header::RANGE, range);
            }
            response
        }
    };
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    out.insert(
        HeaderName::from_static("access-control-expose-headers"),
        HeaderValue::from_static("Range"),
    );
    response
}

/// Passes a chunk's answer on, noting what it says the session has committed.
async fn record(shim: &Shim, id: &str, answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    {
        let mut sessions = shim.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions.entry(id.to_owned()).or_default();
        if status == StatusCode::PERMANENT_REDIRECT {
            if let Some(end) = headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes=0-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                session.committed = end + 1;
            }
        } else if status.is_success() {
            session.complete = Some((
                status,
                headers.get(header::CONTENT_TYPE).cloned(),
                body.clone(),
            ));
        }
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
