//! `storage-broker dev` as a person runs it: the binary, its own throwaway PostgreSQL, the token
//! and `curl` it prints pasted into a shell, and the URL used against an emulator.

use crate::helpers::Emulator;
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
    fn start(storage: &str) -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_storage-broker"))
            .arg("dev")
            // Its own PostgreSQL, not the test suite's.
            .env_remove("DATABASE_URL")
            .env_remove("BROKER_POLICIES_DIR")
            .env_remove("BROKER_SIGNING_CREDENTIALS")
            .env("BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .env("BROKER_STORAGE_ENDPOINT", storage)
            .env("BROKER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start storage-broker dev");
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
    fn drop(&mut self) {
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
async fn dev_stack_prints_a_token_and_a_curl_that_work_end_to_end() {
    let emulator = Emulator::start().await;
    let mut dev = Dev::start(&emulator.endpoint);
    let token = dev
        .line("export TOKEN=")
        .trim_start_matches("export TOKEN=")
        .to_owned();
    assert!(dev.line("  database  ").contains("throwaway"));

    // The printed curl, pasted as it is, signs an upload in alice's bucket.
    let signed: Value =
        serde_json::from_str(&shell(dev.line("curl "), &token)).expect("the curl prints JSON");
    let url = signed["url"].as_str().expect("a signed URL");
    assert!(
        url.starts_with(&emulator.endpoint),
        "signed for the emulator: {url}"
    );
    let client = reqwest::Client::new();
    let mut put = client.put(url).body("hello from dev");
    for (name, value) in signed["headers"].as_object().expect("headers") {
        put = put.header(name.as_str(), value.as_str().expect("value"));
    }
    assert!(put.send().await.expect("upload").status().is_success());
    let get: Value = client
        .post(format!("{}/v1/sign", dev.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "bucket": "u-alice", "object": "hello.txt", "method": "GET" }))
        .send()
        .await
        .expect("sign")
        .json()
        .await
        .expect("json");
    let body = client
        .get(get["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download")
        .text()
        .await
        .expect("text");
    assert_eq!(body, "hello from dev");

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
            "--broker",
            &dev.base,
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
