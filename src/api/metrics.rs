//! Prometheus metrics: requests, latency, URLs signed, decisions.

use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Instant;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignedLabels {
    protocol: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The broker's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    in_flight: Family<RouteLabels, Gauge>,
    latency: Family<RouteLabels, Histogram>,
    urls_signed: Family<SignedLabels, Counter>,
    decisions: Family<OutcomeLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("storage_broker");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let in_flight = Family::<RouteLabels, Gauge>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let urls_signed = Family::<SignedLabels, Counter>::default();
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Problem answers (problem+json) by route and stable code",
            errors.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled, by route (until their answer's headers leave)",
            in_flight.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "urls_signed",
            "Signed URLs, POST policies and vended credentials issued, by protocol (gcs-v4, s3-sigv4, azure-sas) and method",
            urls_signed.clone(),
        );
        registry.register(
            "decisions",
            "Authorization decisions by outcome",
            decisions.clone(),
        );
        // The parts outside the request path (crate::telemetry).
        let parts = &crate::telemetry::COMPONENTS;
        registry.register(
            "audit_commit_seconds",
            "Seconds one audit commit (a shared INSERT and its commit) takes",
            parts.audit_commit_seconds.clone(),
        );
        registry.register(
            "audit_commit_rows",
            "Audit rows per commit",
            parts.audit_commit_rows.clone(),
        );
        registry.register(
            "audit_commit_failures",
            "Audit commits that failed",
            parts.audit_commit_failures.clone(),
        );
        registry.register(
            "jwks_refreshed_timestamp_seconds",
            "Unix time of the last successful JWKS fetch",
            parts.jwks_refreshed.clone(),
        );
        registry.register(
            "jwks_refresh_failures",
            "JWKS fetches that failed (the cached keys stay in use)",
            parts.jwks_refresh_failures.clone(),
        );
        registry.register(
            "signing_key_checked_timestamp_seconds",
            "Unix time the signing key files were last checked",
            parts.signing_key_checked.clone(),
        );
        registry.register(
            "signing_key_unreadable",
            "1 when no signing key file could be read at the last check",
            parts.signing_key_unreadable.clone(),
        );
        registry.register(
            "keyless_call_seconds",
            "Seconds one IAM signBlob call takes",
            parts.keyless_call_seconds.clone(),
        );
        registry.register(
            "keyless_call_failures",
            "IAM signBlob calls that failed or were throttled (then retried)",
            parts.keyless_call_failures.clone(),
        );
        registry.register(
            "change_feed_connected",
            "1 while this replica's change feed (LISTEN) is connected",
            parts.change_feed_connected.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            in_flight,
            latency,
            urls_signed,
            decisions,
        }
    }
}

impl Metrics {
    /// Counts a URL signed for `method` (`GET`, …, `RESUMABLE`, `POST_POLICY`).
    pub fn url_signed(&self, protocol: &str, method: &str) {
        self.urls_signed
            .get_or_create(&SignedLabels {
                protocol: protocol.to_owned(),
                method: method.to_owned(),
            })
            .inc();
    }

    /// Counts a decision.
    pub fn decision(&self, outcome: &str) {
        self.decisions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        out
    }
}

/// Records every request's route, status and latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let in_flight = state
        .metrics
        .in_flight
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .clone();
    // Dropped when the handler ends, also when the client leaves and the handler is cancelled.
    let _in_flight = InFlight::enter(in_flight);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if let Some(super::error::ProblemCode(code)) = response.extensions().get() {
        state
            .metrics
            .errors
            .get_or_create(&ErrorLabels {
                route: route.clone(),
                code: (*code).to_owned(),
            })
            .inc();
    }
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    response
}

/// One request counted in a gauge while it lives.
struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// `/metrics`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}
