//! Audit reads with 10 million rows seeded: the pages the console asks for, timed through the
//! HTTP API (a broker in this process, release build, on PostgreSQL on the same machine). Run by
//! `bench/audit.sh`; writes the "Audit reads" section of BENCHMARKS.md. `AUDIT_ROWS` changes the
//! size (default 10,000,000).
//!
//! The rows: 1,000 buckets, one of them (alice's, the one read) holding a tenth of all rows;
//! 10,000 subjects; 98% allowed, 1.5% denied, 0.5% not found; objects under 100 prefixes
//! `data/N/` (each 1% of every bucket); a row every few milliseconds over the last days, newest with the highest id.

#[allow(dead_code)]
#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[path = "support/report.rs"]
mod report;

use helpers::{TestApp, repo};
use serde_json::Value;
use std::time::{Duration, Instant};

const SAMPLES: usize = 400;

fn main() {
    harness::bench_main("audit", run);
}

async fn run() -> Result<(), String> {
    let rows: i64 = std::env::var("AUDIT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    // No rate limit: the requests are sequential and the figure is the query's.
    let app = TestApp::spawn_with(&[("BROKER_RATE_LIMIT_PER_SECOND", "0")]).await;
    let bucket = app.personal_bucket("alice").await;
    let seeding = Instant::now();
    // The seeded rows reach back rows × 25 ms: their days need partitions.
    let first_day =
        (time::OffsetDateTime::now_utc() - time::Duration::milliseconds(25 * rows + 60_000)).date();
    app.state
        .store
        .ensure_audit_partitions(first_day, time::OffsetDateTime::now_utc().date())
        .await
        .map_err(|e| e.to_string())?;
    // In slices, so that no one transaction holds ten million rows' worth of WAL.
    let slice = 1_000_000i64;
    let mut start = 0i64;
    while start < rows {
        let end = (start + slice).min(rows);
        sqlx::query(
            "INSERT INTO audit_events (at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason)
             SELECT now() - ($2 - i) * interval '25 ms',
                    'seed-' || i,
                    'user-' || ((i / 10) * 7919 % 10000),
                    'app',
                    'read',
                    CASE WHEN i % 10 = 0 THEN $3 ELSE 'u-user-' || (i * 104729 % 999) END,
                    'data/' || ((i / 10) % 100) || '/file-' || i || '.bin',
                    'GET',
                    now() + interval '15 minutes',
                    CASE WHEN i % 200 = 7 THEN 'not_found' WHEN i % 200 IN (3, 50, 99) THEN 'deny' ELSE 'allow' END,
                    'seeded'
             FROM generate_series($1::bigint, $4::bigint - 1) AS i",
        )
        .bind(start)
        .bind(rows)
        .bind(&bucket)
        .bind(end)
        .execute(&app.pool)
        .await
        .map_err(|e| e.to_string())?;
        start = end;
        eprintln!(
            "seeded {start} rows ({:.0} s)",
            seeding.elapsed().as_secs_f64()
        );
    }
    sqlx::query("ANALYZE audit_events")
        .execute(&app.pool)
        .await
        .map_err(|e| e.to_string())?;
    let seeded = seeding.elapsed();
    let admin = "storage-admin";
    let base = format!("/v1/buckets/{bucket}/audit");
    let cases: Vec<(&str, String, bool)> = vec![
        ("a bucket's newest page (100 rows)", base.clone(), false),
        (
            "the same, 10 pages deep through page tokens",
            base.clone(),
            true,
        ),
        (
            "one subject in the bucket",
            format!("{base}?subject=user-4242"),
            false,
        ),
        (
            "refusals in the bucket (decision=deny)",
            format!("{base}?decision=deny"),
            false,
        ),
        (
            "an object prefix (1% of the bucket)",
            format!("{base}?object_prefix=data/7/"),
            false,
        ),
        (
            "an object prefix no row has",
            format!("{base}?object_prefix=nothing/"),
            false,
        ),
        (
            "an hour, a day ago (since, until)",
            format!("{base}?since={}&until={}", ago(25 * 3600), ago(24 * 3600)),
            false,
        ),
        (
            "every bucket: the newest page (/v1/audit)",
            "/v1/audit".into(),
            false,
        ),
        (
            "every bucket: one subject",
            "/v1/audit?subject=user-4242".into(),
            false,
        ),
        (
            "every bucket: refusals",
            "/v1/audit?decision=deny".into(),
            false,
        ),
    ];
    let mut table = Vec::new();
    for (what, path, deep) in &cases {
        // A fresh token per request: the test issuer's live five minutes.
        let token = || {
            if path.starts_with("/v1/audit") {
                app.idp.token_with(
                    "root",
                    serde_json::json!({ "realm_access": { "roles": [admin] } }),
                )
            } else {
                app.idp.token("alice")
            }
        };
        let mut times = Vec::with_capacity(SAMPLES);
        let mut returned = 0usize;
        for i in 0..SAMPLES + 20 {
            let token = token();
            let mut target = path.clone();
            if *deep {
                // Walk ten pages; time the tenth.
                let mut next: Option<String> = None;
                for _ in 0..9 {
                    let page = get(&app, &with_token(path, next.as_deref()), &token).await?;
                    next = page["next_page_token"].as_str().map(str::to_owned);
                }
                target = with_token(path, next.as_deref());
            }
            let started = Instant::now();
            let page = get(&app, &target, &token).await?;
            let took = started.elapsed();
            returned = page["events"].as_array().map_or(0, Vec::len);
            if i >= 20 {
                times.push(took);
            }
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let (p50, p99) = (pct(0.50), pct(0.99));
        eprintln!("{what}: p50 {} p99 {} ({returned} rows)", ms(p50), ms(p99));
        table.push(format!(
            "| {what} | {returned} | {} | {} | {} |",
            ms(p50),
            ms(p99),
            if p99 <= Duration::from_millis(50) {
                "yes"
            } else {
                "**no**"
            }
        ));
    }
    let body = format!(
        "## Audit reads (issue 18)\n\nRun `bench/audit.sh` on {}: 2 cores, PostgreSQL 15 on the same machine (fsync on), the broker in \
         this process (release build). {rows} audit rows seeded in {:.0} s (1,000 buckets, the one read holding a tenth; 10,000 subjects; \
         1.5% denied, 0.5% not found). Each figure: {SAMPLES} sequential requests through the HTTP API after 20 warm-up requests, \
         timed at the client, authorization and the audit row of each read included.\n\n\
         | query | rows answered | p50 | p99 | p99 ≤ 50 ms |\n|---|---|---|---|---|\n{}",
        time::OffsetDateTime::now_utc().date(),
        seeded.as_secs_f64(),
        table.join("\n")
    );
    report::write_section(&repo(), "audit-reads", &body)?;
    println!("{body}");
    Ok(())
}

fn ago(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(seconds);
    storage_broker::signing::rfc3339_seconds(at)
}

fn with_token(path: &str, token: Option<&str>) -> String {
    match token {
        Some(t) if path.contains('?') => format!("{path}&page_token={t}"),
        Some(t) => format!("{path}?page_token={t}"),
        None => path.to_owned(),
    }
}

async fn get(app: &TestApp, path: &str, token: &str) -> Result<Value, String> {
    let response = app.get(path, token).await;
    if response.status() != 200 {
        return Err(format!("{path}: {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
