//! What the end-to-end benches share: the release broker as its own process, its RSS, and oha
//! runs with their figures.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Resident memory of process `pid`, in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) process `pid` has used so far (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_cpu_ticks(&stat) as f64 / clock_ticks()
}

/// CPU seconds used so far by every process named `postgres` (the server and its backends;
/// run on a machine where PostgreSQL serves the bench alone).
pub fn postgres_cpu_seconds() -> f64 {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat
            .split_once(')')
            .is_some_and(|(head, _)| head.ends_with("(postgres"))
        {
            ticks += stat_cpu_ticks(&stat);
        }
    }
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a /proc/PID/stat line: fields 14 and 15, counted after the `(comm)`,
/// which may hold spaces.
fn stat_cpu_ticks(stat: &str) -> u64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Runs a bench's `run` on a two-worker runtime; on error, says so and exits 1.
pub fn bench_main<F: std::future::Future<Output = Result<(), String>>>(
    name: &str,
    run: impl FnOnce() -> F,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(err) = rt.block_on(run()) {
        eprintln!("{name} bench failed: {err}");
        std::process::exit(1);
    }
}

/// RSA-2048 signatures per second by `openssl speed` over `seconds`, on `processes` cores
/// (`-multi`); NaN when openssl's answer cannot be read.
pub fn openssl_rsa2048_per_second(seconds: u32, processes: usize) -> f64 {
    let mut command = Command::new("openssl");
    command.args(["speed", "-mr", "-seconds", &seconds.to_string()]);
    if processes > 1 {
        command.args(["-multi", &processes.to_string()]);
    }
    let out = command
        .arg("rsa2048")
        .stderr(Stdio::null())
        .output()
        .expect("openssl");
    // "+F2:<n>:2048:<signatures per second>:<verifications per second>"
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("+F2:"))
        .and_then(|l| l.split(':').nth(2)?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A whole-number bench setting from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The settings every bench's broker starts with: the database, the test issuer (audience
/// `storage-broker`), the fixture's RSA key, the shipped policies, migrations at start; `extra`
/// adds to them or replaces them.
pub fn broker_env(
    database_url: &str,
    issuer: &str,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut env = vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("BROKER_OIDC_ISSUER", issuer.to_owned()),
        ("BROKER_OIDC_AUDIENCE", "storage-broker".to_owned()),
        (
            "BROKER_SIGNING_CREDENTIALS",
            repo.join("tests/fixtures/test-service-account.json")
                .display()
                .to_string(),
        ),
        (
            "BROKER_POLICIES_DIR",
            repo.join("policies").display().to_string(),
        ),
        ("BROKER_MIGRATE", "true".to_owned()),
    ];
    for (name, value) in extra {
        env.retain(|(n, _)| n != name);
        env.push((name, (*value).to_owned()));
    }
    env
}

/// `storage-broker serve` (the release binary) on a free port, killed when dropped.
pub struct BrokerProcess {
    pub child: Child,
    pub base: String,
}

impl BrokerProcess {
    /// Starts the broker with `env` (the caller gives database, issuer, key…) and waits until it
    /// is ready. Its stderr (the logs) goes to `log` when given.
    pub async fn start(env: &[(&str, String)], log: Option<&Path>) -> Result<Self, String> {
        let port = free_port()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_storage-broker"));
        command
            .arg("serve")
            .env("BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null());
        if let Some(log) = log {
            let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
            command.stderr(file);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("start the broker: {e}"))?;
        let broker = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client
            .get(format!("{}/readyz", broker.base))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the broker did not become ready".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(broker)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One oha run: what to send, and how hard.
pub struct OhaRun<'a> {
    pub url: String,
    pub method: &'a str,
    pub token: &'a str,
    pub body: Option<String>,
    /// Requests per second; `None` for as fast as it can.
    pub rate: Option<u32>,
    pub seconds: u32,
    pub connections: u32,
}

impl OhaRun<'_> {
    /// The command, ready to spawn.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(std::env::var("OHA").unwrap_or_else(|_| "oha".into()));
        cmd.args(["--no-tui", "--output-format", "json"])
            .args(["-z", &format!("{}s", self.seconds)])
            .args(["-c", &self.connections.to_string()])
            .args(["-m", self.method])
            .args(["-H", &format!("Authorization: Bearer {}", self.token)]);
        if let Some(body) = &self.body {
            cmd.args(["-T", "application/json", "-d", body]);
        }
        if let Some(rate) = self.rate {
            cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
        }
        cmd.arg(&self.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs it to the end.
    pub fn run(&self) -> Result<Load, String> {
        let out = self
            .command()
            .output()
            .map_err(|e| format!("oha: {e} (the bench scripts install it)"))?;
        Load::from_output(&out)
    }
}

/// What oha measured.
pub struct Load {
    pub ok: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers other than 200, and client-side errors other than oha's own deadline.
    pub non_200: u64,
    /// Requests oha abandoned when its time was up (the broker may still have answered them).
    pub at_deadline: u64,
    /// Status codes and client-side errors as oha counted them.
    pub detail: String,
}

impl Load {
    /// Reads oha's JSON output.
    pub fn from_output(out: &std::process::Output) -> Result<Self, String> {
        if !out.status.success() {
            return Err(format!(
                "oha failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("oha output: {e}"))?;
        Ok(Self::from_json(&v))
    }

    fn from_json(v: &Value) -> Self {
        let codes = v["statusCodeDistribution"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let errors = v["errorDistribution"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let deadline = "aborted due to deadline";
        let at_deadline = errors.get(deadline).and_then(Value::as_u64).unwrap_or(0);
        let non_200 = codes
            .iter()
            .filter(|(code, _)| *code != "200")
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum::<u64>()
            + errors
                .iter()
                .filter(|(what, _)| *what != deadline)
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum::<u64>();
        let mut detail: Vec<String> = codes
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        detail.extend(errors.iter().map(|(what, n)| format!("{what}: {n}")));
        Self {
            detail: detail.join(", "),
            ok: codes.get("200").and_then(Value::as_u64).unwrap_or(0),
            rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(f64::NAN),
            p50_ms: v["latencyPercentiles"]["p50"].as_f64().unwrap_or(f64::NAN) * 1000.0,
            p99_ms: v["latencyPercentiles"]["p99"].as_f64().unwrap_or(f64::NAN) * 1000.0,
            non_200,
            at_deadline,
        }
    }
}

/// The CPU model and core count, for reports.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    format!("{cpu}, {cores} cores")
}
