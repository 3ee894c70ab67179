//! The partitioned audit against the table it replaced, on a durable PostgreSQL on this machine
//! (`bench/audit-days.sh`; writes the "Audit by day" section of BENCHMARKS.md):
//!
//! - insert throughput through the broker's own group-committing writer (`AuditLog`), 64
//!   concurrent requests of one row each, into a database at migration 5 (one table) and one
//!   at migration 6 (daily partitions), alternated in rounds so that both see the same machine;
//!   with PostgreSQL's CPU time per row, read from /proc (every process named `postgres`);
//! - dropping a day of `DROP_ROWS` rows (default 10,000,000): `audit maintain`'s
//!   detach-concurrently-then-drop, timed.
//!
//! `BENCH_SECONDS` (default 10) per round, `BENCH_ROUNDS` (default 3) rounds.

#[allow(dead_code)]
#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[path = "support/report.rs"]
mod report;

use harness::{env_number, postgres_cpu_seconds};
use helpers::{TestDb, repo};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage_broker::store::{AuditEvent, AuditLog, Store};
use time::OffsetDateTime;

const CONCURRENCY: usize = 64;

fn main() {
    harness::bench_main("audit-days", run);
}

fn event(n: u64) -> AuditEvent {
    let now = OffsetDateTime::now_utc();
    AuditEvent {
        at: now,
        request_id: uuid::Uuid::new_v4().to_string(),
        subject: Some(format!("user-{}", n % 10_000)),
        client: Some("app".into()),
        action: "SIGN",
        bucket: Some(format!("u-user-{}", n % 10_000)),
        object: Some(format!("data/{}/file-{n}.bin", n % 100)),
        method: Some("GET"),
        expires_at: Some(now + time::Duration::minutes(15)),
        decision: "allow",
        reason: "owner".into(),
    }
}

/// Rows per second and PostgreSQL CPU µs per row for `seconds` of 64 concurrent writers.
async fn insert_round(pool: &PgPool, seconds: u64) -> (f64, f64) {
    let (audit, writers) = AuditLog::start(Store::from_pool(pool.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let rows = Arc::new(AtomicU64::new(0));
    let cpu = postgres_cpu_seconds();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let (audit, stop, rows) = (audit.clone(), stop.clone(), rows.clone());
            tokio::spawn(async move {
                let mut n = i as u64 * 1_000_000_000;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    audit
                        .record(vec![event(n)])
                        .await
                        .expect("audit row committed");
                    rows.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("writer task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = postgres_cpu_seconds() - cpu;
    drop(audit);
    writers.drained(Duration::from_secs(30)).await;
    let rows = rows.load(Ordering::Relaxed) as f64;
    (rows / elapsed, cpu * 1e6 / rows)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn run() -> Result<(), String> {
    let seconds = env_number("BENCH_SECONDS", 10);
    let rounds = env_number("BENCH_ROUNDS", 3);
    let drop_rows = env_number("DROP_ROWS", 10_000_000) as i64;

    // Migration 5 (one table, its seven indexes) and migration 6 (daily partitions).
    let (flat_db, daily_db) = (TestDb::create().await, TestDb::create().await);
    let flat = PgPool::connect(&flat_db.url)
        .await
        .map_err(|e| e.to_string())?;
    let daily = PgPool::connect(&daily_db.url)
        .await
        .map_err(|e| e.to_string())?;
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = std::borrow::Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 6)
            .cloned()
            .collect(),
    );
    before.run(&flat).await.map_err(|e| e.to_string())?;
    sqlx::migrate!("./migrations")
        .run(&daily)
        .await
        .map_err(|e| e.to_string())?;

    let mut results: Vec<(&str, Vec<(f64, f64)>)> = vec![("one table", vec![]), ("daily", vec![])];
    // Warm both (caches, the first pages of every index), then alternate.
    insert_round(&flat, 2).await;
    insert_round(&daily, 2).await;
    for round in 0..rounds {
        for (i, pool) in [&flat, &daily].into_iter().enumerate() {
            let measured = insert_round(pool, seconds).await;
            eprintln!(
                "round {round}: {}: {:.0} rows/s, {:.1} µs PostgreSQL CPU per row",
                results[i].0, measured.0, measured.1
            );
            results[i].1.push(measured);
        }
    }
    let rate = |i: usize| median(results[i].1.iter().map(|r| r.0).collect());
    let cpu = |i: usize| median(results[i].1.iter().map(|r| r.1).collect());
    let runs = |i: usize| {
        results[i]
            .1
            .iter()
            .map(|r| format!("{:.0}", r.0))
            .collect::<Vec<_>>()
            .join(", ")
    };

    // A day of `drop_rows` rows, three days back, then dropped as `audit maintain` does.
    let store = Store::from_pool(daily.clone());
    let day = OffsetDateTime::now_utc().date() - time::Duration::days(3);
    store
        .ensure_audit_partitions(day, day)
        .await
        .map_err(|e| e.to_string())?;
    let seeding = Instant::now();
    let slice = 1_000_000i64;
    let mut start = 0i64;
    while start < drop_rows {
        let end = (start + slice).min(drop_rows);
        sqlx::query(
            "INSERT INTO audit_events (at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason)
             SELECT $1::timestamptz + i * (interval '86399 seconds' / $2),
                    'seed-' || i, 'user-' || (i % 10000), 'app', 'SIGN', 'u-user-' || (i % 10000),
                    'data/' || (i % 100) || '/file-' || i || '.bin', 'GET', $1::timestamptz + interval '1 day',
                    CASE WHEN i % 200 = 7 THEN 'deny' ELSE 'allow' END, 'owner'
             FROM generate_series($3::bigint, $4::bigint - 1) AS i",
        )
        .bind(storage_broker::store::day_bounds(day).0)
        .bind(drop_rows as f64)
        .bind(start)
        .bind(end)
        .execute(&daily)
        .await
        .map_err(|e| e.to_string())?;
        start = end;
        eprintln!(
            "seeded {start} rows ({:.0} s)",
            seeding.elapsed().as_secs_f64()
        );
    }
    let seeded = seeding.elapsed().as_secs_f64();
    let in_day: i64 = store.audit_day_rows(day).await.map_err(|e| e.to_string())?;
    // A day is dropped months after it was written, long since checkpointed: not as the
    // seeding just left it, its pages dirty in the OS's cache.
    sqlx::query("CHECKPOINT")
        .execute(&daily)
        .await
        .map_err(|e| e.to_string())?;
    let size: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
        .bind(storage_broker::store::partition_name(day))
        .fetch_one(&daily)
        .await
        .map_err(|e| e.to_string())?;
    let dropped = store.drop_audit_day(day).await.map_err(|e| e.to_string())?;
    let (detach, dropped) = (dropped.detach.as_secs_f64(), dropped.drop.as_secs_f64());
    eprintln!("dropped {in_day} rows: detach {detach:.3} s, drop {dropped:.3} s");
    // What unlinking that much costs this file system by itself.
    let scratch = std::env::temp_dir().join(format!("audit-days-unlink-{}", std::process::id()));
    let gib = 1024 * 1024 * 1024;
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&scratch).map_err(|e| e.to_string())?;
        let chunk = vec![1u8; 1 << 20];
        for _ in 0..1024 {
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())?;
    }
    let unlinking = Instant::now();
    std::fs::remove_file(&scratch).map_err(|e| e.to_string())?;
    let unlink_gib = unlinking.elapsed().as_secs_f64();

    let cpu_name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let body = format!(
        "## Audit by day (issue 19)\n\n\
`bench/audit-days.sh`, {date}, {cpu_name}, {cores} cores; PostgreSQL 15 on the same machine with\n\
fsync on. Inserts go through the broker's own audit writer (group commit), {CONCURRENCY} requests\n\
of one row each in flight; {rounds} rounds of {seconds} s, alternating the two schemas.\n\n\
| | one table (migration 5) | daily partitions (migration 6) | |\n\
|---|---|---|---|\n\
| rows/s, median ({rounds} rounds) | {r0:.0} ({runs0}) | {r1:.0} ({runs1}) | {ratio:.1}% of one table (goal ≥ 95%) |\n\
| PostgreSQL CPU per row, median | {c0:.1} µs | {c1:.1} µs | |\n\
| drop a day of {in_day} rows ({size_gib:.2} GiB with its indexes), checkpointed | | {total:.3} s: detach concurrently {detach:.3} s (all the writers could notice), drop {dropped:.3} s | goal < 1 s |\n\n\
The drop's time is the file system's: unlinking one 1 GiB file, written and synced, took\n\
{unlink_gib:.3} s here by itself (the root file system is ext4 mounted with `discard`).\n\n\
Seeding that day took {seeded:.0} s ({seed_rate:.0} rows/s, one `INSERT … SELECT` per million rows).",
        date = OffsetDateTime::now_utc().date(),
        r0 = rate(0),
        r1 = rate(1),
        runs0 = runs(0),
        runs1 = runs(1),
        ratio = 100.0 * rate(1) / rate(0),
        c0 = cpu(0),
        c1 = cpu(1),
        seed_rate = in_day as f64 / seeded,
        size_gib = size as f64 / gib as f64,
        total = detach + dropped,
    );
    report::write_section(&repo(), "audit-days", &body)
}
