//! OpenTelemetry traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, `storage-broker serve` exports
//! the request's span and its decision, signing and audit-commit spans over OTLP, continuing the
//! caller's `traceparent`, with the request id of the logs, the answer and the audit row.

use crate::helpers::TestApp;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// One exported span: trace id, name, attributes as key → value.
type Span = (String, String, Vec<(String, String)>);

/// Every span an OTLP/HTTP JSON receiver got.
fn spans(received: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for body in received {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            let value = &a["value"];
                            let text = value["stringValue"]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| value.to_string());
                            (a["key"].as_str().unwrap_or("").to_owned(), text)
                        })
                        .collect();
                    out.push((
                        span["traceId"].as_str().unwrap_or("").to_ascii_lowercase(),
                        span["name"].as_str().unwrap_or("").to_owned(),
                        attributes,
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_traced_over_otlp_when_asked() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    // An OTLP/HTTP receiver (JSON encoding) on loopback.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                    sink.lock().expect("lock").push(value);
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let (mut child, address) = app
        .serve_process(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ])
        .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = reqwest::Client::new()
        .post(format!("{address}/v1/sign"))
        .bearer_auth(app.idp.token("alice"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({ "bucket": bucket, "object": "traced.txt", "method": "GET" }))
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 200);
    let request_id = answer.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let wanted = ["decision", "sign", "audit_commit"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let found = spans(&received.lock().expect("lock"));
        let ours: Vec<_> = found
            .iter()
            .filter(|(t, _, _)| t == trace_id)
            .cloned()
            .collect();
        let complete = wanted.iter().all(|w| ours.iter().any(|(_, n, _)| n == w))
            && ours.iter().any(|(_, n, _)| n == "POST");
        if complete || std::time::Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let everything: Vec<(String, String)> = spans(&received.lock().expect("lock"))
        .into_iter()
        .map(|(t, n, _)| (t, n))
        .collect();
    let received_bodies = received.lock().expect("lock").len();
    let names: Vec<&str> = found.iter().map(|(_, n, _)| n.as_str()).collect();
    for name in wanted.iter().chain(&["POST"]) {
        assert!(
            names.contains(name),
            "no {name} span in the caller's trace: {names:?}; {received_bodies} bodies, all spans {everything:?}; stderr {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let request = found
        .iter()
        .find(|(_, n, _)| n == "POST")
        .expect("request span");
    assert!(
        request
            .2
            .contains(&("request_id".into(), request_id.clone())),
        "the request span's attributes {:?} lack request_id {request_id}",
        request.2
    );
    let audited: String =
        sqlx::query_scalar("SELECT request_id FROM audit_events WHERE object = 'traced.txt'")
            .fetch_one(&app.pool)
            .await
            .expect("audit row");
    assert_eq!(
        audited, request_id,
        "the audit row and the trace name the same request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_no_traces() {
    // Without the variable the exporter is never built: nothing to connect to, nothing logged.
    assert!(
        !std::env::vars().any(|(k, _)| k.starts_with("OTEL_EXPORTER_OTLP")),
        "the test environment sets OTLP variables"
    );
    assert!(!storage_broker::telemetry::traces::wanted());
}
