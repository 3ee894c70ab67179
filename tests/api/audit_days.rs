//! The audit's daily partitions (migrations/0006) and `storage-broker audit maintain`: an
//! existing table converted with its rows, partitions made ahead and on demand, closed days
//! exported as gzip NDJSON to SeaweedFS through the broker's own S3 signer, days past their
//! retention dropped only once exported in full.

use crate::helpers::{SeaweedFs, TestApp, TestDb, repo};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::io::Read;
use std::path::{Path, PathBuf};
use time::{Date, Duration, OffsetDateTime};

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("partitions")
}

/// Inserts `n` rows at noon of `day`, objects `name-0`…; their ids.
async fn rows_on(pool: &PgPool, day: Date, n: i64, name: &str) -> Vec<i64> {
    let noon = day.with_hms(12, 0, 0).expect("noon").assume_utc();
    sqlx::query_scalar(
        "INSERT INTO audit_events (at, request_id, subject, action, bucket, object, method, decision, reason)
         SELECT $1 + i * interval '1 second', 'req-' || i, 'alice', 'SIGN', 'u-alice', $3 || '-' || i, 'GET', 'allow', 'owner'
         FROM generate_series(0, $2 - 1) AS i RETURNING id",
    )
    .bind(noon)
    .bind(n)
    .bind(name)
    .fetch_all(pool)
    .await
    .expect("insert audit rows")
}

#[tokio::test]
async fn an_existing_audit_table_is_converted_to_daily_partitions_with_every_row() {
    let db = TestDb::create().await;
    let pool = PgPool::connect(&db.url).await.expect("connect");
    // The schema as it was before partitions: migrations 1 to 5.
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = std::borrow::Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 6)
            .cloned()
            .collect(),
    );
    before.run(&pool).await.expect("migrations 1-5");
    let days = [
        today() - Duration::days(20),
        today() - Duration::days(1),
        today(),
    ];
    for (i, day) in days.iter().enumerate() {
        let noon = day.with_hms(12, 0, 0).expect("noon").assume_utc();
        sqlx::query(
            "INSERT INTO audit_events (at, request_id, subject, action, bucket, object, method, decision, reason)
             SELECT $1 + i * interval '1 ms', 'old-' || i, 'bob', 'SIGN', 'u-bob', 'o\n\"' || i, 'PUT',
                    CASE WHEN i % 3 = 0 THEN 'deny' ELSE 'allow' END, 'r'
             FROM generate_series(1, $2) AS i",
        )
        .bind(noon)
        .bind(1000 * (i as i64 + 1))
        .execute(&pool)
        .await
        .expect("old rows");
    }
    let digest = "SELECT count(*)::text || ':' || md5(string_agg(concat_ws('|', id, at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason), ',' ORDER BY id)) FROM audit_events";
    let old: String = sqlx::query_scalar(digest)
        .fetch_one(&pool)
        .await
        .expect("digest");
    let max_id: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("max id");

    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .expect("migration 6");

    let new: String = sqlx::query_scalar(digest)
        .fetch_one(&pool)
        .await
        .expect("digest");
    assert_eq!(new, old, "every row, ids and values kept");
    assert!(old.starts_with("6000:"), "{old}");
    let names = partitions(&pool).await;
    for day in days
        .iter()
        .copied()
        .chain((1..=7).map(|d| today() + Duration::days(d)))
    {
        let name = storage_broker::store::partition_name(day);
        assert!(names.contains(&name), "{name} in {names:?}");
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ONLY {name}"
        )))
        .fetch_one(&pool)
        .await
        .expect("rows of a partition");
        let expected = days
            .iter()
            .position(|d| *d == day)
            .map_or(0, |i| 1000 * (i as i64 + 1));
        assert_eq!(rows, expected, "{name}");
    }
    let next = rows_on(&pool, today(), 1, "new").await;
    assert!(
        next[0] > max_id,
        "ids go on after the largest ({} > {max_id})",
        next[0]
    );
    let indexes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_events'")
            .fetch_one(&pool)
            .await
            .expect("indexes");
    assert_eq!(indexes, 6, "the key and the five read indexes");
}

#[tokio::test]
async fn the_service_makes_partitions_ahead_and_a_missing_day_on_demand() {
    let app = TestApp::spawn().await;
    // Yesterday's is made by the service's task at start (the migration made today on).
    let wanted: Vec<String> = (-1..=7)
        .map(|d| storage_broker::store::partition_name(today() + Duration::days(d)))
        .collect();
    let mut names = Vec::new();
    for _ in 0..100 {
        names = partitions(&app.pool).await;
        if wanted.iter().all(|w| names.contains(w)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in &wanted {
        assert!(names.contains(name), "{name} in {names:?}");
    }
    // Today's partition gone (an operator's mistake, a restore of old days): the first audit
    // row makes it again, and the URL is answered once its row is committed.
    let today_name = storage_broker::store::partition_name(today());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {today_name}")))
        .execute(&app.pool)
        .await
        .expect("drop today's partition");
    let bucket = app.personal_bucket("alice").await;
    let token = app.idp.token("alice");
    let signed = app
        .post(
            "/v1/sign",
            &token,
            &json!({ "bucket": bucket, "object": "after-drop.txt", "method": "GET" }),
        )
        .await;
    assert_eq!(
        signed.status(),
        200,
        "{}",
        signed.text().await.unwrap_or_default()
    );
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE object = 'after-drop.txt' AND decision = 'allow'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit row");
    assert_eq!(rows, 1);
    assert!(partitions(&app.pool).await.contains(&today_name));
}

/// A policies directory with the shipped classes and a SeaweedFS backend named `archive`, whose
/// key has `secret`.
fn policies_with_archive(s3: &SeaweedFs, secret: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("policies-audit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("policies dir");
    std::fs::copy(repo().join("policies/roles.toml"), dir.join("roles.toml")).expect("roles");
    let key = dir.join("s3-key.json");
    std::fs::write(
        &key,
        json!({ "access_key_id": s3.access_key_id, "secret_access_key": secret }).to_string(),
    )
    .expect("key");
    let shipped = std::fs::read_to_string(repo().join("policies/classes.toml")).expect("classes");
    std::fs::write(
        dir.join("classes.toml"),
        format!(
            "{shipped}\n[backends.archive]\nkind = \"s3\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\ncredentials = \"file:{}\"\n",
            s3.endpoint,
            key.display()
        ),
    )
    .expect("classes");
    dir
}

/// `storage-broker audit maintain ARGS` with the settings of a deployment on `db_url`.
async fn maintain(
    db_url: &str,
    policies: &Path,
    extra: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_storage-broker"));
    command
        .args(["audit", "maintain"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("BROKER_OIDC_ISSUER", "https://id.example.com/realms/r")
        .env("BROKER_OIDC_AUDIENCE", "storage-broker")
        .env(
            "BROKER_SIGNING_CREDENTIALS",
            repo().join("tests/fixtures/test-service-account.json"),
        )
        .env("BROKER_POLICIES_DIR", policies)
        .env("BROKER_LOG", "warn");
    for (k, v) in extra {
        command.env(k, v);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run audit maintain"))
        .await
        .expect("join")
}

/// The NDJSON lines of the gzip object `name` in `bucket`.
async fn exported_lines(s3: &SeaweedFs, bucket: &str, name: &str) -> Vec<Value> {
    use storage_broker::signing::{BucketName, Expiry, Method, ObjectName, UrlRequest};
    let request = UrlRequest::new(
        Method::Get,
        BucketName::parse(bucket).expect("bucket"),
        Some(ObjectName::parse(name).expect("name")),
        Expiry::from_secs(600).expect("expiry"),
    );
    let url = s3
        .signer()
        .sign(&request, OffsetDateTime::now_utc())
        .expect("sign")
        .url;
    let response = reqwest::get(url).await.expect("get export");
    assert_eq!(response.status(), 200, "{name}");
    let body = response.bytes().await.expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[tokio::test]
async fn maintain_exports_closed_days_and_drops_them_after_retention_only_once_exported() {
    let s3 = SeaweedFs::start().await;
    s3.create_bucket("audit-archive").await;
    let policies = policies_with_archive(&s3, s3.secret_access_key);
    let db = TestDb::create().await;
    let pool = PgPool::connect(&db.url).await.expect("connect");
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .expect("migrate");
    let (old, older, recent) = (
        today() - Duration::days(35),
        today() - Duration::days(40),
        today() - Duration::days(2),
    );
    let store = storage_broker::store::Store::from_pool(pool.clone());
    store
        .ensure_audit_partitions(older, recent)
        .await
        .expect("partitions");
    let older_ids = rows_on(&pool, older, 3, "older").await;
    // A hostile object name travels as JSON, escaped, not as lines or columns.
    sqlx::query("UPDATE audit_events SET object = E'evil\\n{\"id\": 1}\\t\u{202e}' WHERE id = $1")
        .bind(older_ids[1])
        .execute(&pool)
        .await
        .expect("hostile name");
    rows_on(&pool, old, 2, "old").await;
    rows_on(&pool, recent, 5, "recent").await;
    rows_on(&pool, today(), 4, "today").await;
    let export = [
        ("BROKER_AUDIT_EXPORT_BACKEND", "archive"),
        ("BROKER_AUDIT_EXPORT_BUCKET", "audit-archive"),
        ("BROKER_AUDIT_EXPORT_PREFIX", "exports/audit"),
        ("BROKER_AUDIT_RETENTION_DAYS", "30"),
    ];
    let run = maintain(&db.url, &policies, &export, &["--rows-per-object", "2"]).await;
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Older than 30 days: exported, then dropped; the recent day exported and kept; today open.
    let names = partitions(&pool).await;
    for gone in [older, old] {
        assert!(
            !names.contains(&storage_broker::store::partition_name(gone)),
            "{gone} dropped"
        );
    }
    assert!(names.contains(&storage_broker::store::partition_name(recent)));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 9, "the recent day's 5 and today's 4");
    let exports: Vec<(Date, i64, Vec<String>)> =
        sqlx::query_as("SELECT day, rows, objects FROM audit_exports ORDER BY day")
            .fetch_all(&pool)
            .await
            .expect("exports");
    let of = |day: Date| exports.iter().find(|e| e.0 == day).cloned();
    let path = |day: Date, part: u32| {
        format!(
            "exports/audit/{:04}/{:02}/{:02}/part-{part:04}.ndjson.gz",
            day.year(),
            u8::from(day.month()),
            day.day()
        )
    };
    assert_eq!(
        of(older).map(|e| (e.1, e.2)),
        Some((3, vec![path(older, 0), path(older, 1)]))
    );
    assert_eq!(of(old).map(|e| (e.1, e.2)), Some((2, vec![path(old, 0)])));
    assert_eq!(of(recent).map(|e| e.1), Some(5));
    assert_eq!(of(today()), None, "today is not closed");
    assert_eq!(
        of(today() - Duration::days(10)).map(|e| (e.1, e.2)),
        Some((0, Vec::new())),
        "an empty closed day is recorded, with no object"
    );

    // The exported rows are the rows, in (at, id) order, the hostile name intact.
    let mut lines = exported_lines(&s3, "audit-archive", &path(older, 0)).await;
    lines.extend(exported_lines(&s3, "audit-archive", &path(older, 1)).await);
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, older_ids);
    assert_eq!(lines[1]["object"], "evil\n{\"id\": 1}\t\u{202e}");
    assert_eq!(lines[0]["decision"], "allow");
    assert!(
        lines[0]["at"]
            .as_str()
            .is_some_and(|at| at.starts_with(&older.to_string()))
    );

    // Again: nothing to export or drop.
    let again = maintain(&db.url, &policies, &export, &[]).await;
    assert!(again.status.success());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        !stdout.contains("exported") && !stdout.contains("dropped"),
        "{stdout}"
    );

    // A late row on an exported day: exported again, in full.
    rows_on(&pool, recent, 1, "late").await;
    let late = maintain(&db.url, &policies, &export, &[]).await;
    assert!(late.status.success());
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT rows FROM audit_exports WHERE day = $1")
            .bind(recent)
            .fetch_one(&pool)
            .await
            .expect("export"),
        6
    );
    assert_eq!(
        exported_lines(&s3, "audit-archive", &path(recent, 0))
            .await
            .len(),
        6
    );

    // A kept day closed long ago is not counted again every night (at 100 million rows a day
    // that would read them all): a row added to it by hand stays unexported until its drop.
    let quiet = today() - Duration::days(10);
    rows_on(&pool, quiet, 1, "by-hand").await;
    assert!(
        maintain(&db.url, &policies, &export, &[])
            .await
            .status
            .success()
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT rows FROM audit_exports WHERE day = $1")
            .bind(quiet)
            .fetch_one(&pool)
            .await
            .expect("export"),
        0
    );
}

#[tokio::test]
async fn a_day_whose_export_fails_is_kept_and_the_run_fails() {
    let s3 = SeaweedFs::start().await;
    s3.create_bucket("audit-archive").await;
    // A key storage refuses: every upload fails.
    let policies = policies_with_archive(&s3, "not-the-secret");
    let db = TestDb::create().await;
    let pool = PgPool::connect(&db.url).await.expect("connect");
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .expect("migrate");
    let old = today() - Duration::days(40);
    storage_broker::store::Store::from_pool(pool.clone())
        .ensure_audit_partitions(old, old)
        .await
        .expect("partition");
    rows_on(&pool, old, 3, "old").await;
    let export = [
        ("BROKER_AUDIT_EXPORT_BACKEND", "archive"),
        ("BROKER_AUDIT_EXPORT_BUCKET", "audit-archive"),
        ("BROKER_AUDIT_RETENTION_DAYS", "30"),
    ];
    let run = maintain(&db.url, &policies, &export, &[]).await;
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("kept for the next run") && stderr.contains("upload of"),
        "{stderr}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 3, "nothing dropped");

    // No export configured: the operator chose to keep nothing past retention.
    let run = maintain(
        &db.url,
        &policies,
        &[("BROKER_AUDIT_RETENTION_DAYS", "30")],
        &[],
    )
    .await;
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        !partitions(&pool)
            .await
            .contains(&storage_broker::store::partition_name(old))
    );

    // Bad settings are named.
    let run = maintain(
        &db.url,
        &policies,
        &[("BROKER_AUDIT_EXPORT_PREFIX", "x/")],
        &[],
    )
    .await;
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("BROKER_AUDIT_EXPORT_BUCKET"));
    let run = maintain(
        &db.url,
        &policies,
        &[
            ("BROKER_AUDIT_EXPORT_BUCKET", "audit-archive"),
            ("BROKER_AUDIT_EXPORT_PREFIX", "a/../b"),
        ],
        &[],
    )
    .await;
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("BROKER_AUDIT_EXPORT_PREFIX"));
    let run = maintain(
        &db.url,
        &policies,
        &[("BROKER_AUDIT_RETENTION_DAYS", "0")],
        &[],
    )
    .await;
    assert!(String::from_utf8_lossy(&run.stderr).contains("BROKER_AUDIT_RETENTION_DAYS"));
}
