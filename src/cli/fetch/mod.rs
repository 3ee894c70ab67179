//! `fetch-manifest`: the client for batch jobs. Asks the broker for signed download URLs for
//! every object under a prefix (or listed in a file) and writes them as NDJSON; resumes an
//! interrupted run from what the output file already holds.
//!
//! `client` speaks the API with its own types, `resume` reads where an earlier run stopped,
//! `token` reads the bearer token and explains a refused one; this file runs the two modes.

pub(crate) mod client;
mod resume;
pub(crate) mod token;

use crate::api::{
    BatchRequest, BatchResult, ManifestEntry, ManifestLine, PrefixRequest, SignRequest,
};
use clap::Args;
use client::{Broker, ClientError};
use indicatif::{ProgressBar, ProgressStyle};
use resume::{Progress, read_names, resume_point};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use token::Token;

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

/// Runs `fetch-manifest`.
pub fn fetch_manifest(args: FetchManifestArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run(args))
}

async fn run(args: FetchManifestArgs) -> Result<(), String> {
    let token = Token::read(&args.token_file)?;
    // In list mode, each name once, in the order first listed.
    let names = match &args.objects {
        Some(file) => Some(read_names(file)?),
        None => None,
    };
    let progress = match &args.out {
        Some(path) => resume_point(path)?,
        None => Progress::default(),
    };
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut output = Output::new(out, progress.lines);
    let broker = Broker::new(&args.broker, token.secret.clone());
    let result = match (&args.prefix, &names) {
        (Some(prefix), _) => by_prefix(&broker, &args, prefix, progress.last, &mut output).await,
        (None, Some((names, _))) => {
            by_list(&broker, &args, names, &progress.done, &mut output).await
        }
        (None, None) => Ok(()),
    };
    output.finish()?;
    result.map_err(|e| explain(e, &broker, &token, output.written))?;
    if output.failed > 0 {
        let objects = if output.failed == 1 {
            "object"
        } else {
            "objects"
        };
        return Err(format!(
            "{} {objects} got no URL (listed above); {} URLs were written",
            output.failed, output.written
        ));
    }
    let target = args
        .out
        .as_ref()
        .map_or("stdout".to_owned(), |p| p.display().to_string());
    let mut notes = Vec::new();
    if progress.lines > 0 {
        notes.push(format!(
            "{} by this run, {} by earlier ones",
            output.written - progress.lines,
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
    let written = output.written;
    if notes.is_empty() {
        eprintln!("{written} URLs written to {target}");
    } else {
        eprintln!("{written} URLs written to {target} ({})", notes.join("; "));
    }
    Ok(())
}

/// Why a run stopped, in one line that says what to do next.
fn explain(error: Stop, broker: &Broker, token: &Token, written: u64) -> String {
    let resume = "run the same command again to resume";
    match error {
        Stop::Client(ClientError::Unreachable(e)) => format!(
            "cannot reach the broker at {} after {written} URLs: {e}; {resume}",
            broker.base()
        ),
        Stop::Client(ClientError::TokenRefused) => token.refused(written),
        Stop::Client(ClientError::Refused { status, detail }) => {
            format!("the broker answered {status}: {detail}")
        }
        Stop::Client(ClientError::Broken(e)) => {
            format!("the connection broke after {written} URLs ({e}); {resume}")
        }
        Stop::Client(ClientError::Garbled(e)) => {
            format!("the broker sent {e} after {written} URLs")
        }
        Stop::Stopped(message) => {
            format!("the broker stopped after {written} URLs: {message}; {resume}")
        }
        Stop::Write(e) => format!("cannot write the manifest: {e}"),
    }
}

/// Why a mode ended early.
enum Stop {
    Client(ClientError),
    /// The broker ended the stream with an error line.
    Stopped(String),
    Write(std::io::Error),
}

impl From<ClientError> for Stop {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

/// Where URLs go, with the counts and the progress spinner.
struct Output {
    out: Box<dyn Write>,
    bar: ProgressBar,
    /// URLs in the output: those of earlier runs and this one's.
    written: u64,
    /// Objects this run got no URL for, each named on stderr.
    failed: u64,
}

impl Output {
    fn new(out: Box<dyn Write>, earlier: u64) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} URLs {per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        if earlier > 0 {
            bar.set_message(format!("(resuming after {earlier} already written)"));
        }
        bar.set_position(earlier);
        Self {
            out,
            bar,
            written: earlier,
            failed: 0,
        }
    }

    /// Appends one URL line (the output file is unbuffered: a line written is kept).
    fn url(&mut self, line: &ManifestLine) -> Result<(), Stop> {
        let mut text = serde_json::to_vec(line).map_err(|e| Stop::Write(e.into()))?;
        text.push(b'\n');
        self.out.write_all(&text).map_err(Stop::Write)?;
        self.written += 1;
        self.bar.inc(1);
        Ok(())
    }

    /// Names an object that got no URL, and why.
    fn unsigned(&mut self, object: &str, message: &str) {
        self.failed += 1;
        self.bar.suspend(|| eprintln!("{object}: {message}"));
    }

    fn finish(&mut self) -> Result<(), String> {
        self.bar.finish_and_clear();
        self.out
            .flush()
            .map_err(|e| format!("cannot write the manifest: {e}"))
    }
}

/// Writes the URLs for every object under `prefix` after `start_after`.
async fn by_prefix(
    broker: &Broker,
    args: &FetchManifestArgs,
    prefix: &str,
    start_after: Option<String>,
    output: &mut Output,
) -> Result<(), Stop> {
    let request = PrefixRequest {
        bucket: args.bucket.clone(),
        prefix: prefix.to_owned(),
        expires_in: args.expires,
        start_after,
    };
    let mut manifest = broker.sign_prefix(&request).await?;
    while let Some(entry) = manifest.next().await? {
        match entry {
            ManifestEntry::Signed(line) => output.url(&line)?,
            ManifestEntry::Unsigned { object, error } => output.unsigned(&object, &error.message),
            ManifestEntry::Stopped(stop) => return Err(Stop::Stopped(stop.error.message)),
        }
    }
    Ok(())
}

/// Writes the URLs for `names` not in `done`, `BATCH` at a time.
async fn by_list(
    broker: &Broker,
    args: &FetchManifestArgs,
    names: &[String],
    done: &HashSet<String>,
    output: &mut Output,
) -> Result<(), Stop> {
    let names: Vec<&String> = names.iter().filter(|name| !done.contains(*name)).collect();
    for chunk in names.chunks(BATCH) {
        let items = chunk
            .iter()
            .map(|name| {
                serde_json::to_value(SignRequest {
                    bucket: args.bucket.clone(),
                    object: (*name).clone(),
                    method: "GET".to_owned(),
                    expires_in: args.expires,
                    ..SignRequest::default()
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|e| Stop::Write(e.into()))?;
        let answer = broker
            .sign_batch(&BatchRequest {
                items,
                expires_in: None,
            })
            .await?;
        for result in answer.results {
            match result {
                BatchResult::Signed { index, signed } => {
                    let Some(name) = chunk.get(index) else {
                        continue;
                    };
                    output.url(&ManifestLine {
                        object: (*name).clone(),
                        size: None,
                        url: signed.url,
                        expires_at: signed.expires_at,
                        protocol: signed.protocol,
                    })?;
                }
                BatchResult::Failed { index, error } => {
                    let Some(name) = chunk.get(index) else {
                        continue;
                    };
                    output.unsigned(name, &error.message);
                }
            }
        }
    }
    Ok(())
}
