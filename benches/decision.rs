//! Decision latency on a cache miss — the store's one-round-trip query for a bucket, the caller's
//! grants and memberships, then `decide` — with 1,000 grants and with 1,000,000 grants over
//! 100,000 users and 10,000 projects (seeded by `bench/seed.sql`). Run by `bench/decision.sh`,
//! which provides a durable throwaway PostgreSQL; writes the "Decisions" section of BENCHMARKS.md.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[path = "support/report.rs"]
mod report;

use helpers::{TestDb, repo};
use std::process::Command;
use std::time::Instant;
use storage_broker::policy::{
    Action, BucketFacts, Caller, GrantPrincipal, Policies, Scope, decide,
};
use storage_broker::store::Store;

const SAMPLES: usize = 5_000;

struct Size {
    users: u64,
    projects: u64,
    grants: u64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sizes = [
        Size {
            users: 1_000,
            projects: 100,
            grants: 1_000,
        },
        Size {
            users: 100_000,
            projects: 10_000,
            grants: 1_000_000,
        },
    ];
    let mut rows = Vec::new();
    for size in &sizes {
        match rt.block_on(measure(size)) {
            Ok(row) => rows.push(row),
            Err(err) => {
                eprintln!("decision bench failed: {err}");
                std::process::exit(1);
            }
        }
    }
    let body = format!(
        "## Decisions on a cache miss (issue 4)\n\nRun `bench/decision.sh` on {}: 2 cores, PostgreSQL 15 on the same machine (fsync on), one \
         connection; {SAMPLES} decisions per size for random users (two groups each) on random buckets, each timed from the query to the decision.\n\n\
         | data | p50 | p99 | max | goal p99 ≤ 2 ms |\n|---|---|---|---|---|\n{}",
        time::OffsetDateTime::now_utc().date(),
        rows.join("\n")
    );
    if let Err(err) = report::write_section(&repo(), "decisions", &body) {
        eprintln!("{err}");
        std::process::exit(1);
    }
}

async fn measure(size: &Size) -> Result<String, String> {
    let db = TestDb::create().await;
    let store = Store::connect_lazy(&db.url, None, 1).map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let seeding = Instant::now();
    let status = Command::new("psql")
        .arg(&db.url)
        .args([
            "-q",
            "-v",
            &format!("users={}", size.users),
            "-v",
            &format!("projects={}", size.projects),
        ])
        .args(["-v", &format!("grants={}", size.grants), "-f"])
        .arg(repo().join("bench/seed.sql"))
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if !status.success() {
        return Err("seeding failed".into());
    }
    eprintln!(
        "seeded {} grants in {:.1} s",
        size.grants,
        seeding.elapsed().as_secs_f64()
    );
    let policies = Policies::load(&repo().join("policies")).map_err(|e| e.to_string())?;

    let mut latencies = Vec::with_capacity(SAMPLES);
    let mut allowed = 0;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % n
    };
    for _ in 0..SAMPLES {
        let user = format!("user-{}", next(size.users));
        let bucket = if next(10) == 1 {
            format!("p-proj-{}", next(size.projects))
        } else {
            format!("u-user-{}", next(size.users))
        };
        let object = format!("shared/{}/file.bin", next(100) - 1);
        let groups = [
            format!("/g-{}", next(1000) - 1),
            format!("/g-{}", next(1000) - 1),
        ];
        let principals: Vec<String> = [
            format!("user:{user}"),
            format!("group:{}", groups[0]),
            format!("group:{}", groups[1]),
            "authenticated".into(),
        ]
        .into();
        let member_keys: Vec<String> = [
            format!("user:{user}"),
            format!("group:{}", groups[0]),
            format!("group:{}", groups[1]),
        ]
        .into();
        let typed: Vec<GrantPrincipal> = principals
            .iter()
            .cloned()
            .map(GrantPrincipal::from)
            .collect();
        let started = Instant::now();
        let context = store
            .access_context(&bucket, &principals, &member_keys)
            .await
            .map_err(|e| e.to_string())?;
        let bucket = context.bucket.as_ref().ok_or("seeded bucket missing")?;
        let facts = BucketFacts {
            owner: bucket.owner.as_deref(),
            project: bucket.project.as_deref(),
            classification: 0,
            read_only: false,
        };
        let caller = Caller {
            subject: &user,
            principals: &typed,
            memberships: &context.memberships,
            clearance: 0,
            admin: false,
        };
        let decision = decide(
            &caller,
            &facts,
            &context.grants,
            &policies.roles,
            Action::Read,
            Scope::Object(&object),
            time::OffsetDateTime::now_utc(),
        );
        latencies.push(started.elapsed());
        allowed += usize::from(decision.outcome() == "allow");
    }
    latencies.sort();
    let pick =
        |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    let (p50, p99, max) = (pick(0.5), pick(0.99), pick(1.0));
    Ok(format!(
        "| {} grants, {} users, {} projects ({allowed} of {SAMPLES} allowed) | {p50:.3} ms | {p99:.3} ms | {max:.3} ms | {} |",
        size.grants,
        size.users,
        size.projects,
        if p99 <= 2.0 { "met" } else { "**missed**" }
    ))
}
