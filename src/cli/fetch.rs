//! `fetch-manifest`: the client for batch jobs. Asks the broker for signed download URLs for
//! every object under a prefix (or listed in a file) and writes them as NDJSON; resumes an
//! interrupted run from what the output file already holds.

use base64::Engine;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Items per batch request in `--objects` mode.
const BATCH: usize = 1_000;

/// Arguments of `fetch-manifest`.
#[derive(Debug, Args)]
pub struct FetchManifestArgs {
    /// The broker's base URL, e.g. https://storage-broker.example.com.
    #[arg(long, value_name = "URL")]
    broker: String,
    /// A file holding the bearer token (e.g. from a client-credentials grant).
    #[arg(long, value_name = "F")]
    token_file: PathBuf,
    /// The logical bucket.
    #[arg(long, value_name = "B")]
    bucket: String,
    /// Every readable object under this prefix.
    #[arg(
        long,
        value_name = "P",
        conflicts_with = "objects",
        required_unless_present = "objects"
    )]
    prefix: Option<String>,
    /// A file of object names, one per line.
    #[arg(long, value_name = "FILE")]
    objects: Option<PathBuf>,
    /// Where to write the manifest; a run interrupted before resumes from it. Default: stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// URL lifetime in seconds (default: the broker's, 900).
    #[arg(long, value_name = "SECONDS")]
    expires: Option<i64>,
}

/// What an output file already holds.
struct Progress {
    done: HashSet<String>,
    last: Option<String>,
}

/// Runs `fetch-manifest`.
pub fn fetch_manifest(args: FetchManifestArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run(args))
}

async fn run(args: FetchManifestArgs) -> Result<(), String> {
    let token = std::fs::read_to_string(&args.token_file)
        .map_err(|e| {
            format!(
                "cannot read the token file {}: {e}",
                args.token_file.display()
            )
        })?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(format!(
            "the token file {} is empty",
            args.token_file.display()
        ));
    }
    if let Some(exp) = unverified_expiry(&token)
        && exp <= time::OffsetDateTime::now_utc().unix_timestamp()
    {
        return Err(format!(
            "the token in {} has expired: get a new one and run the same command again",
            args.token_file.display()
        ));
    }
    let progress = match &args.out {
        Some(path) => resume_point(path)?,
        None => Progress {
            done: HashSet::new(),
            last: None,
        },
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} URLs {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    if !progress.done.is_empty() {
        bar.set_message(format!(
            "(resuming after {} already written)",
            progress.done.len()
        ));
    }
    let http = reqwest::Client::new();
    let base = args.broker.trim_end_matches('/');
    let written = match (&args.prefix, &args.objects) {
        (Some(prefix), _) => {
            by_prefix(
                &http,
                base,
                &token,
                &args,
                prefix,
                progress.last.as_deref(),
                &mut out,
                &bar,
            )
            .await
        }
        (None, Some(file)) => {
            by_list(
                &http,
                base,
                &token,
                &args,
                file,
                &progress.done,
                &mut out,
                &bar,
            )
            .await
        }
        (None, None) => Err("give --prefix or --objects".to_owned()),
    };
    out.flush()
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    bar.finish_and_clear();
    let written =
        written.map_err(|e| e.replace("{token_file}", &args.token_file.display().to_string()))?;
    let target = args
        .out
        .as_ref()
        .map_or("stdout".to_owned(), |p| p.display().to_string());
    eprintln!("{written} URLs written to {target}");
    Ok(())
}

/// The `exp` of a JWT, read without verifying it: only to warn early.
fn unverified_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["exp"].as_i64()
}

/// Reads what an earlier run wrote, dropping a last line cut off mid-way.
fn resume_point(path: &Path) -> Result<Progress, String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
        file.set_len(complete as u64)
            .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
    }
    let mut progress = Progress {
        done: HashSet::new(),
        last: None,
    };
    for line in text[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let value: Value = serde_json::from_slice(line).map_err(|_| {
            format!(
                "{} holds a line that is not a manifest line",
                path.display()
            )
        })?;
        if let Some(object) = value["object"].as_str() {
            progress.done.insert(object.to_owned());
            progress.last = Some(object.to_owned());
        }
    }
    Ok(progress)
}

/// Why the broker refused, in one line.
async fn refusal(response: reqwest::Response, written: u64) -> String {
    let status = response.status();
    let problem: Value = response.json().await.unwrap_or(Value::Null);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return format!(
            "the broker refused the token in {{token_file}} (expired or revoked) after {written} URLs; get a new token and run the same command again to resume"
        );
    }
    let detail = problem["detail"].as_str().unwrap_or("no detail");
    format!("the broker answered {status}: {detail}")
}

#[allow(clippy::too_many_arguments)]
async fn by_prefix(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    args: &FetchManifestArgs,
    prefix: &str,
    start_after: Option<&str>,
    out: &mut Box<dyn Write>,
    bar: &ProgressBar,
) -> Result<u64, String> {
    let mut body = json!({ "bucket": args.bucket, "prefix": prefix, "start_after": start_after });
    if let Some(ttl) = args.expires {
        body["expires_in"] = json!(ttl);
    }
    let response = http
        .post(format!("{base}/v1/sign/prefix"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the broker at {base}: {e}"))?;
    if !response.status().is_success() {
        return Err(refusal(response, 0).await);
    }
    let mut written = 0;
    let mut pending: Vec<u8> = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        format!(
            "the connection broke after {written} URLs ({e}); run the same command again to resume"
        )
    })? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value: Value = serde_json::from_slice(&line)
                .map_err(|e| format!("the broker sent a line that is not JSON: {e}"))?;
            if let Some(error) = value.get("error") {
                let message = error["message"].as_str().unwrap_or("unknown error");
                return Err(format!(
                    "the broker stopped after {written} URLs: {message}; run the same command again to resume"
                ));
            }
            out.write_all(&line)
                .map_err(|e| format!("cannot write the manifest: {e}"))?;
            written += 1;
            bar.inc(1);
        }
        out.flush()
            .map_err(|e| format!("cannot write the manifest: {e}"))?;
    }
    Ok(written)
}

#[allow(clippy::too_many_arguments)]
async fn by_list(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    args: &FetchManifestArgs,
    file: &Path,
    done: &HashSet<String>,
    out: &mut Box<dyn Write>,
    bar: &ProgressBar,
) -> Result<u64, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !done.contains(*l))
        .collect();
    bar.set_length(names.len() as u64);
    let mut written = 0;
    let mut failed = 0;
    for chunk in names.chunks(BATCH) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|name| json!({ "bucket": args.bucket, "object": name, "method": "GET", "expires_in": args.expires }))
            .collect();
        let response = http
            .post(format!("{base}/v1/sign/batch"))
            .bearer_auth(token)
            .json(&json!({ "items": items }))
            .send()
            .await
            .map_err(|e| format!("cannot reach the broker at {base} after {written} URLs: {e}; run the same command again to resume"))?;
        if !response.status().is_success() {
            return Err(refusal(response, written).await);
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("the broker's answer is not JSON: {e}"))?;
        for result in answer["results"].as_array().into_iter().flatten() {
            let Some(name) = result["index"].as_u64().and_then(|i| chunk.get(i as usize)) else {
                continue;
            };
            match result.get("url") {
                Some(url) => {
                    let line =
                        json!({ "object": name, "url": url, "expires_at": result["expires_at"] });
                    writeln!(out, "{line}")
                        .map_err(|e| format!("cannot write the manifest: {e}"))?;
                    written += 1;
                }
                None => {
                    failed += 1;
                    bar.suspend(|| {
                        eprintln!(
                            "{name}: {}",
                            result["error"]["message"].as_str().unwrap_or("refused")
                        )
                    });
                }
            }
            bar.inc(1);
        }
        out.flush()
            .map_err(|e| format!("cannot write the manifest: {e}"))?;
    }
    if failed > 0 {
        return Err(format!(
            "{failed} objects got no URL (listed above); {written} URLs were written"
        ));
    }
    Ok(written)
}
