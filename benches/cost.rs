//! What one `/v1/sign` costs, in CPU time read from /proc (robust on a noisy machine, where
//! latencies are not): the broker's own CPU per request and PostgreSQL's per audit row, under a
//! closed loop of 64 connections (oha), with an RSA key and with an HMAC key, beside one
//! `openssl speed rsa2048` signature measured in the same run. Every request signs afresh (the
//! read reuse window is off). With `COST_PERF=1`, `perf record -g` samples the broker during a
//! further run of each, and the hottest symbols go in the report. Run by `bench/cost.sh`, which
//! provides a durable throwaway PostgreSQL and oha; it writes the "Cost per request" section
//! of BENCHMARKS.md.

#[allow(dead_code)]
#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[path = "support/report.rs"]
mod report;

use harness::{BrokerProcess, OhaRun, cpu_seconds, env_number, postgres_cpu_seconds};
use helpers::{TestDb, TestIdp, repo};
use serde_json::json;
use sqlx::PgPool;
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    harness::bench_main("cost", run);
}

/// One measured run.
struct Cost {
    rps: f64,
    broker_us: f64,
    pg_us_per_row: f64,
    p99_ms: f64,
}

async fn allowed_rows(pool: &PgPool) -> Result<i64, String> {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE decision = 'allow'")
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())
}

fn load<'a>(base: &str, token: &'a str, seconds: u32) -> OhaRun<'a> {
    OhaRun {
        url: format!("{base}/v1/sign"),
        method: "POST",
        token,
        body: Some(
            json!({ "bucket": "u-bench", "object": "photos/2026/IMG_0001.jpg", "method": "GET" })
                .to_string(),
        ),
        rate: None,
        seconds,
        connections: 64,
    }
}

async fn measure(pool: &PgPool, broker_pid: u32, run: &OhaRun<'_>) -> Result<Cost, String> {
    let rows = allowed_rows(pool).await?;
    let (broker, pg) = (cpu_seconds(broker_pid), postgres_cpu_seconds());
    let loaded = run.run()?;
    let (broker, pg) = (
        cpu_seconds(broker_pid) - broker,
        postgres_cpu_seconds() - pg,
    );
    let rows = allowed_rows(pool).await? - rows;
    if loaded.non_200 > 0 {
        return Err(format!("failed requests: {}", loaded.detail));
    }
    Ok(Cost {
        rps: loaded.rps,
        broker_us: broker * 1e6 / loaded.ok.max(1) as f64,
        pg_us_per_row: pg * 1e6 / rows.max(1) as f64,
        p99_ms: loaded.p99_ms,
    })
}

/// The hottest symbols of the broker, `perf record -g` during `seconds` of load, self time.
fn profile(broker_pid: u32, run: &OhaRun<'_>, label: &str) -> Result<String, String> {
    let data = std::env::temp_dir().join(format!("cost-{label}-{}.perf", std::process::id()));
    let mut perf = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-o"])
        .arg(&data)
        .args(["-p", &broker_pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("perf: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let loaded = run.run();
    // SIGINT: perf writes its data and exits.
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
    loaded?;
    let report = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--sort",
            "symbol",
            "-g",
            "none",
            "--percent-limit",
            "1.5",
            "-i",
        ])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("perf report: {e}"))?;
    let _ = std::fs::remove_file(&data);
    let top: Vec<String> = String::from_utf8_lossy(&report.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .take(12)
        .map(|l| {
            let mut parts = l.split_whitespace();
            let share = parts.next().unwrap_or_default();
            // "[.] symbol" in the shared object; perf's trailing "- -" is no part of it.
            let symbol: Vec<&str> = parts.skip(1).filter(|p| *p != "-").collect();
            format!("| {share} | `{}` |", symbol.join(" ").replace('|', "\\|"))
        })
        .collect();
    Ok(format!(
        "Hottest symbols of the broker, {label} key (`perf record -g`, self time, ≥ 1.5%):\n\n| share | symbol |\n|---|---|\n{}\n",
        top.join("\n")
    ))
}

fn median_by(costs: &mut [Cost], key: fn(&Cost) -> f64) -> f64 {
    costs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    key(&costs[costs.len() / 2])
}

async fn run() -> Result<(), String> {
    let with_perf = std::env::var("COST_PERF").is_ok_and(|v| v == "1");
    let seconds = env_number("COST_SECONDS", 15) as u32;
    let rounds = env_number("COST_ROUNDS", 3) as usize;
    let idp = TestIdp::start().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = idp.token_with(
        "bench",
        json!({ "preferred_username": "bench", "exp": now + 7200 }),
    );
    let hmac_key = repo().join("tests/fixtures/test-hmac-key.json");
    let mut sections = Vec::new();
    let mut rows = Vec::new();
    let openssl_us = 1e6 / harness::openssl_rsa2048_per_second(5, 1);
    for (label, key) in [
        ("RSA", None),
        ("HMAC", Some(hmac_key.display().to_string())),
    ] {
        let db = TestDb::create().await;
        let mut extra = vec![
            ("BROKER_LOG", "warn"),
            ("BROKER_RATE_LIMIT_PER_SECOND", "0"),
            ("BROKER_READ_REUSE_SECONDS", "0"),
        ];
        if let Some(key) = &key {
            extra.push(("BROKER_SIGNING_CREDENTIALS", key.as_str()));
        }
        let broker =
            BrokerProcess::start(&harness::broker_env(&db.url, &idp.issuer, &extra), None).await?;
        let pool = PgPool::connect(&db.url).await.map_err(|e| e.to_string())?;
        let me = reqwest::Client::new()
            .get(format!("{}/v1/me", broker.base))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !me.status().is_success() {
            return Err(format!("/v1/me: {}", me.status()));
        }
        // Warm: caches, connections, the first pages of every index.
        load(&broker.base, &token, 3).run()?;
        let mut costs = Vec::new();
        for round in 0..rounds {
            let cost = measure(&pool, broker.pid(), &load(&broker.base, &token, seconds)).await?;
            eprintln!(
                "{label} round {round}: {:.0} req/s, broker {:.1} µs/request, PostgreSQL {:.1} µs/row, p99 {:.2} ms",
                cost.rps, cost.broker_us, cost.pg_us_per_row, cost.p99_ms
            );
            costs.push(cost);
        }
        let broker_us = median_by(&mut costs, |c| c.broker_us);
        let pg = median_by(&mut costs, |c| c.pg_us_per_row);
        let rps = median_by(&mut costs, |c| c.rps);
        rows.push((label, rps, broker_us, pg));
        if with_perf {
            sections.push(profile(
                broker.pid(),
                &load(&broker.base, &token, 10),
                label,
            )?);
        }
    }
    let (rsa, hmac) = (&rows[0], &rows[1]);
    let body = format!(
        "## Cost per request (issue 19)\n\n\
`bench/cost.sh`, {date}, {machine}; the release broker, PostgreSQL 15 (fsync on) and oha (64\n\
connections, closed loop) on the same machine; `POST /v1/sign` of a GET with the read reuse\n\
window off (every request signs), RS256 tokens, the audit row committed before each answer. CPU\n\
time from /proc: the broker's process, and every `postgres` process per audit row. Medians of\n\
{rounds} runs of {seconds} s.\n\n\
| key | req/s | broker CPU per request | PostgreSQL CPU per audit row | goal |\n\
|---|---|---|---|---|\n\
| RSA-2048 | {rsa_rps:.0} | {rsa_us:.0} µs = {ratio:.2}× one `openssl speed rsa2048` signature ({openssl_us:.0} µs, same run) | {rsa_pg:.1} µs | ≤ 1.15× openssl; PostgreSQL ≤ 15 µs |\n\
| HMAC-SHA256 | {hmac_rps:.0} | {hmac_us:.1} µs | {hmac_pg:.1} µs | ≤ 30 µs; PostgreSQL ≤ 15 µs |\n\n\
{profiles}",
        date = time::OffsetDateTime::now_utc().date(),
        machine = harness::machine(),
        rsa_rps = rsa.1,
        rsa_us = rsa.2,
        ratio = rsa.2 / openssl_us,
        rsa_pg = rsa.3,
        hmac_rps = hmac.1,
        hmac_us = hmac.2,
        hmac_pg = hmac.3,
        profiles = sections.join("\n"),
    );
    report::write_section(&repo(), "cost", &body)
}
