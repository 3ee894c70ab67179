//! Metrics of the broker's parts outside the request path: the audit writers, the JWKS refresh,
//! the signing-key reloader, keyless IAM calls and the change feed. Process-wide handles (each
//! part updates them where it works, with no state to thread through); `api::metrics` registers
//! them beside the request metrics, so `/metrics` serves both. The dashboard and the alerts in
//! `kustomize/monitoring/` query them.

pub mod traces;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Components {
    /// Seconds one audit commit (a shared INSERT and its commit) takes.
    pub audit_commit_seconds: Histogram,
    /// Rows one audit commit carries.
    pub audit_commit_rows: Histogram,
    /// Audit commits that failed (their requests got 503 or an error).
    pub audit_commit_failures: Counter,
    /// Unix time of the last successful JWKS fetch.
    pub jwks_refreshed: Gauge,
    /// JWKS fetches that failed (the cached keys stay in use).
    pub jwks_refresh_failures: Counter,
    /// Unix time the signing key files were last checked.
    pub signing_key_checked: Gauge,
    /// 1 when, at the last check, no signing key file could be read (signing goes on with the
    /// key loaded before).
    pub signing_key_unreadable: Gauge,
    /// Seconds one IAM signBlob call takes (keyless signing).
    pub keyless_call_seconds: Histogram,
    /// signBlob calls that failed or were throttled (then retried).
    pub keyless_call_failures: Counter,
    /// 1 while this replica's change feed (LISTEN) is connected.
    pub change_feed_connected: Gauge,
}

pub static COMPONENTS: LazyLock<Components> = LazyLock::new(|| Components {
    audit_commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
    audit_commit_rows: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
    audit_commit_failures: Counter::default(),
    jwks_refreshed: Gauge::default(),
    jwks_refresh_failures: Counter::default(),
    signing_key_checked: Gauge::default(),
    signing_key_unreadable: Gauge::default(),
    keyless_call_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
    keyless_call_failures: Counter::default(),
    change_feed_connected: Gauge::default(),
});

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
