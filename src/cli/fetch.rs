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
#[command(group(clap::ArgGroup::new("what").required(true).args(["prefix", "objects"])))]
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
    #[arg(long, value_name = "P")]
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
    /// Complete lines: the URLs written by earlier runs.
    lines: u64,
    done: HashSet<String>,
    last: Option<String>,
}

/// What a token says about itself, read without verifying it (only the broker can).
#[derive(Debug, PartialEq)]
enum TokenShape {
    /// Not a JWT: not three dot-separated base64url parts whose first two are JSON objects.
    Malformed,
    /// A JWT, with its `exp` when it has one.
    Jwt { exp: Option<i64> },
}

fn token_shape(token: &str) -> TokenShape {
    let parts: Vec<&str> = token.split('.').collect();
    let object = |part: &str| -> Option<serde_json::Map<String, Value>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()?;
        match serde_json::from_slice::<Value>(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    let [header, payload, _signature] = parts.as_slice() else {
        return TokenShape::Malformed;
    };
    match (object(header), object(payload)) {
        (Some(_), Some(claims)) => TokenShape::Jwt {
            exp: claims.get("exp").and_then(Value::as_i64),
        },
        _ => TokenShape::Malformed,
    }
}

/// The `exp` of a token if it has passed.
fn expired_at(token: &str) -> Option<i64> {
    match token_shape(token) {
        TokenShape::Jwt { exp: Some(exp) }
            if exp <= time::OffsetDateTime::now_utc().unix_timestamp() =>
        {
            Some(exp)
        }
        _ => None,
    }
}

/// A Unix time as RFC 3339.
fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix} (Unix time)"))
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
    let token_file = args.token_file.display().to_string();
    let token = std::fs::read_to_string(&args.token_file)
        .map_err(|e| format!("cannot read the token file {token_file}: {e}"))?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(format!("the token file {token_file} is empty"));
    }
    if token_shape(&token) == TokenShape::Malformed {
        return Err(format!(
            "the token in {token_file} is malformed (not a JWT): put the access token itself in the file and run the same command again"
        ));
    }
    if let Some(exp) = expired_at(&token) {
        return Err(format!(
            "the token in {token_file} has expired: it expired at {}; get a new one and run the same command again",
            rfc3339(exp)
        ));
    }
    // In list mode, each name once, in the order first listed.
    let names = match &args.objects {
        Some(file) => Some(read_names(file)?),
        None => None,
    };
    let progress = match &args.out {
        Some(path) => resume_point(path)?,
        None => Progress {
            lines: 0,
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
    if progress.lines > 0 {
        bar.set_message(format!(
            "(resuming after {} already written)",
            progress.lines
        ));
    }
    // Counts are of URLs in the output: those of earlier runs and this one's.
    bar.set_position(progress.lines);
    let mut written = progress.lines;
    let http = reqwest::Client::new();
    let base = args.broker.trim_end_matches('/');
    let result = match (&args.prefix, &names) {
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
                &mut written,
            )
            .await
        }
        (None, Some((names, _))) => {
            by_list(
                &http,
                base,
                &token,
                &args,
                names,
                &progress.done,
                &mut out,
                &bar,
                &mut written,
            )
            .await
        }
        (None, None) => Err("give --prefix or --objects".to_owned()),
    };
    out.flush()
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    bar.finish_and_clear();
    result.map_err(|e| e.replace("{token_file}", &token_file))?;
    let target = args
        .out
        .as_ref()
        .map_or("stdout".to_owned(), |p| p.display().to_string());
    let mut notes = Vec::new();
    if progress.lines > 0 {
        notes.push(format!(
            "{} by this run, {} by earlier ones",
            written - progress.lines,
            progress.lines
        ));
    }
    if let (Some(file), Some((_, repeated))) = (&args.objects, &names)
        && *repeated > 0
    {
        notes.push(format!(
            "{repeated} lines of {} repeat an earlier name",
            file.display()
        ));
    }
    if notes.is_empty() {
        eprintln!("{written} URLs written to {target}");
    } else {
        eprintln!("{written} URLs written to {target} ({})", notes.join("; "));
    }
    Ok(())
}

/// The names an `--objects` file lists, each once in the order first listed, and how many
/// lines repeated an earlier name. Blank lines are skipped.
fn read_names(file: &Path) -> Result<(Vec<String>, usize), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let mut repeated = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if seen.insert(line) {
            names.push(line.to_owned());
        } else {
            repeated += 1;
        }
    }
    Ok((names, repeated))
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
        lines: 0,
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
        progress.lines += 1;
        if let Some(object) = value["object"].as_str() {
            progress.done.insert(object.to_owned());
            progress.last = Some(object.to_owned());
        }
    }
    Ok(progress)
}

/// Why the broker refused, in one line.
async fn refusal(response: reqwest::Response, token: &str, written: u64) -> String {
    let status = response.status();
    let problem: Value = response.json().await.unwrap_or(Value::Null);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        // The token may have expired during the run; otherwise only the broker knows why.
        return match expired_at(token) {
            Some(exp) => format!(
                "the token in {{token_file}} expired at {} after {written} URLs; get a new token and run the same command again to resume",
                rfc3339(exp)
            ),
            None => format!(
                "the broker refused the token in {{token_file}} (revoked, wrong audience or issuer) after {written} URLs; get a new token and run the same command again to resume"
            ),
        };
    }
    let detail = problem["detail"].as_str().unwrap_or("no detail");
    format!("the broker answered {status}: {detail}")
}

/// Writes the URLs for every object under `prefix` after `start_after`, counting them in `written`.
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
    written: &mut u64,
) -> Result<(), String> {
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
        return Err(refusal(response, token, *written).await);
    }
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
            *written += 1;
            bar.inc(1);
        }
        out.flush()
            .map_err(|e| format!("cannot write the manifest: {e}"))?;
    }
    Ok(())
}

/// Writes the URLs for `names` not in `done`, counting them in `written`.
#[allow(clippy::too_many_arguments)]
async fn by_list(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    args: &FetchManifestArgs,
    names: &[String],
    done: &HashSet<String>,
    out: &mut Box<dyn Write>,
    bar: &ProgressBar,
    written: &mut u64,
) -> Result<(), String> {
    let names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| !done.contains(*name))
        .collect();
    bar.set_length(*written + names.len() as u64);
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
            return Err(refusal(response, token, *written).await);
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
                    *written += 1;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(payload))
    }

    #[test]
    fn tokens_that_are_not_jwts_are_malformed() {
        for token in [
            "nonsense",
            "a.b",
            "a.b.c",
            "a.b.c.d.e",
            &jwt(r#"{"alg":"RS256"}"#, "not json"),
            &jwt(r#"{"alg":"RS256"}"#, "[1, 2]"),
            &jwt("not json", r#"{"exp":1}"#),
            "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        ] {
            assert_eq!(token_shape(token), TokenShape::Malformed, "{token}");
        }
    }

    #[test]
    fn jwts_give_their_expiry() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = jwt(r#"{"alg":"RS256"}"#, &format!(r#"{{"exp":{}}}"#, now - 60));
        assert_eq!(
            token_shape(&expired),
            TokenShape::Jwt {
                exp: Some(now - 60)
            }
        );
        assert_eq!(expired_at(&expired), Some(now - 60));
        let valid = jwt(r#"{"alg":"RS256"}"#, &format!(r#"{{"exp":{}}}"#, now + 60));
        assert_eq!(expired_at(&valid), None);
        let no_exp = jwt(r#"{"alg":"RS256"}"#, r#"{"sub":"x"}"#);
        assert_eq!(token_shape(&no_exp), TokenShape::Jwt { exp: None });
        assert_eq!(expired_at(&no_exp), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn repeated_names_are_listed_once() {
        let dir = std::env::temp_dir().join(format!("names-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("names.txt");
        std::fs::write(&file, "a\nb\n\na\nc\nb\n").expect("write");
        let (names, repeated) = read_names(&file).expect("names");
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(repeated, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
