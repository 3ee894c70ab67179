//! OpenTelemetry traces over OTLP, on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, off otherwise. The exporter reads the standard
//! variables itself (`OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf`, the default, or
//! `http/json`; `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`). Spans: the
//! request (with its `request_id`, the one in the logs, the `x-request-id` answer header and
//! the audit rows), and inside it `decision`, `sign` and `audit_commit`. An incoming W3C
//! `traceparent` makes the request part of the caller's trace.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Flushes and stops the exporter when dropped (at the end of `serve`).
pub struct Traces(SdkTracerProvider);

impl Drop for Traces {
    fn drop(&mut self) {
        if let Err(err) = self.0.shutdown() {
            eprintln!("storage-broker: flushing traces failed: {err}");
        }
    }
}

/// Whether the environment asks for traces (read once: requests ask it).
pub fn wanted() -> bool {
    static WANTED: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
    });
    *WANTED
}

/// `make()`'s span when traces are on; none otherwise, so that the request's inner spans cost
/// nothing on the hot path when nobody collects them.
pub fn inner(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if wanted() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// The tracing layer that exports spans, and its guard; `None` when traces are off or the
/// exporter cannot be built (said once on stderr: logging is not up yet).
pub fn layer<S>() -> Option<(impl Layer<S>, Traces)>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    if !wanted() {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("storage-broker: no trace exporter ({err}); traces are off");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "storage-broker".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("storage-broker");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Some((layer, Traces(provider)))
}

/// The request's span: its method, route and request id, the parent from a `traceparent` header.
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = || {
        tracing::info_span!(
            "request",
            otel.name = %request.method(),
            http.request.method = %request.method(),
            url.path = request.uri().path(),
            request_id,
        )
    };
    if wanted() && request.headers().contains_key("traceparent") {
        // The caller's context, current while the span is made: the layer takes it as the
        // parent of a span that has no parent span (setting it afterwards is too late).
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
        });
        let _attached = parent.attach();
        return span();
    }
    span()
}
