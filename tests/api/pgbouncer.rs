//! Two replicas through Debian's PgBouncer in transaction mode, with a pool of two server
//! connections, so that every replica's connections are multiplexed onto the same two servers:
//! concurrent requests of every kind succeed (no prepared statement, `SET` or lock outlives a
//! transaction), the change feed LISTENs on its direct connection, and a revocation made on
//! one replica reaches the other within the propagation limit.

use crate::helpers::{TestApp, within_propagation_limit};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// PgBouncer on a free loopback port in front of the tests' PostgreSQL, stopped when dropped.
struct PgBouncer {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    fn start() -> Self {
        let binary = std::env::var("PGBOUNCER").unwrap_or_default();
        assert!(
            !binary.is_empty(),
            "PGBOUNCER is not set: run the tests with scripts/test, which installs Debian's pgbouncer"
        );
        let server = url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL"))
            .expect("DATABASE_URL");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        // Somewhere the `postgres` user can read (PgBouncer refuses to run as root).
        let dir = std::env::temp_dir().join(format!("pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("users");
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={pg_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {dir}/users.txt\nadmin_users = postgres\n\
                 pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 200\n\
                 logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
                host = server.host_str().expect("host"),
                pg_port = server.port().unwrap_or(5432),
                dir = dir.display(),
            ),
        )
        .expect("pgbouncer.ini");
        let config = dir.join("pgbouncer.ini");
        let mut command = if unsafe { libc::geteuid() } == 0 {
            Command::new("chmod")
                .args(["-R", "a+rwX"])
                .arg(&dir)
                .status()
                .expect("chmod");
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &binary]);
            c
        } else {
            Command::new(&binary)
        };
        let mut child = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { port, child, dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "pgbouncer did not listen on {port}; see {}/pgbouncer.log",
            dir.display()
        );
    }

    /// A URL to database `{db}` (see `TestApp::spawn_with`) through the pooler.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{{db}}", self.port)
    }

    /// `SHOW <what>` on the admin console, as text lines.
    fn show(&self, what: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-tA", "-F", " "])
            .arg(format!(
                "postgres://postgres@127.0.0.1:{}/pgbouncer",
                self.port
            ))
            .args(["-c", &format!("SHOW {what}")])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes the signal on to pgbouncer.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn two_replicas_work_through_pgbouncer_in_transaction_mode_and_revoke_across_it() {
    let bouncer = PgBouncer::start();
    let pooled = bouncer.url();
    let direct = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let direct = format!(
        "{}/{{db}}",
        direct
            .rsplit_once('/')
            .map_or(direct.as_str(), |(base, _)| base)
    );
    let app = TestApp::spawn_with(&[
        ("DATABASE_URL", pooled.as_str()),
        ("DATABASE_DIRECT_URL", direct.as_str()),
        ("BROKER_RATE_LIMIT_PER_SECOND", "0"),
    ])
    .await;
    let other = app.replica().await;
    app.wait_for_change_feed(&app.address).await;
    app.wait_for_change_feed(&other.address).await;

    // Every kind of query, concurrently from both replicas: buckets made on first use,
    // projects and members (transactions), grants, decisions on a cold cache, audit commits.
    let alice = app.idp.token("alice");
    let bob = app.idp.token("bob");
    let bucket = app.personal_bucket("alice").await;
    let made = app
        .post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "pool", "name": "Pool" }),
        )
        .await;
    assert_eq!(
        made.status(),
        201,
        "{}",
        made.text().await.unwrap_or_default()
    );
    let shared = app
        .post(
            &format!("/v1/buckets/{bucket}/grants"),
            &alice,
            &json!({ "prefix": "shared/", "principal": "user:bob", "role": "viewer" }),
        )
        .await;
    assert_eq!(shared.status(), 201);
    let grant: serde_json::Value = shared.json().await.expect("grant");
    let id = grant["id"].as_str().expect("grant id").to_owned();
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for i in 0..240 {
        let base = if i % 2 == 0 {
            app.address.clone()
        } else {
            other.address.clone()
        };
        let (client, token, bucket) = (
            client.clone(),
            if i % 3 == 0 {
                bob.clone()
            } else {
                alice.clone()
            },
            bucket.clone(),
        );
        let subject = format!("user-{}", i % 40);
        let own = app.idp.token(&subject);
        requests.push(tokio::spawn(async move {
            let sign = client
                .post(format!("{base}/v1/sign"))
                .bearer_auth(&token)
                .json(&json!({ "bucket": bucket, "object": format!("shared/{i}.txt"), "method": "GET" }))
                .send()
                .await
                .expect("sign");
            let me = client
                .get(format!("{base}/v1/buckets"))
                .bearer_auth(&own)
                .send()
                .await
                .expect("buckets");
            (sign.status().as_u16(), me.status().as_u16())
        }));
    }
    for request in requests {
        let (sign, buckets) = request.await.expect("request");
        assert_eq!((sign, buckets), (200, 200));
    }
    let stats = bouncer.show("STATS");
    let transactions: u64 = stats
        .lines()
        .filter(|l| l.contains("sb_test_"))
        .filter_map(|l| l.split(" ").nth(1)?.parse::<u64>().ok())
        .sum();
    assert!(
        transactions > 480,
        "the queries went through PgBouncer: {stats}"
    );

    // Revoked on one replica, refused by the other within the propagation limit.
    let status = |base: String| {
        let (client, bob, bucket) = (client.clone(), bob.clone(), bucket.clone());
        async move {
            client
                .post(format!("{base}/v1/sign"))
                .bearer_auth(&bob)
                .json(&json!({ "bucket": bucket, "object": "shared/after.txt", "method": "GET" }))
                .send()
                .await
                .expect("sign")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(other.address.clone()).await,
        200,
        "cached on the other replica"
    );
    let revoked = app
        .delete(&format!("/v1/buckets/{bucket}/grants/{id}"), &alice)
        .await;
    assert_eq!(revoked.status(), 204);
    within_propagation_limit("the other replica refuses bob", || {
        let check = status(other.address.clone());
        async move { check.await != 200 }
    })
    .await;
}
