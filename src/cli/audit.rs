//! `audit maintain`: the audit's daily housekeeping, run by a CronJob (kustomize/base/
//! audit-cronjob.yaml) with the service's settings:
//!
//! 1. makes the partitions of yesterday through a week ahead (the service does too);
//! 2. exports every closed day not exported yet, or holding rows its export lacks (a late row),
//!    as gzip-compressed NDJSON (one [`AuditView`] per line, in (at, id) order) to
//!    `BROKER_AUDIT_EXPORT_BUCKET` on `BROKER_AUDIT_EXPORT_BACKEND`, under
//!    `PREFIX/YYYY/MM/DD/part-NNNN.ndjson.gz`: each part is written to a file, then uploaded by
//!    a PUT URL the broker's own signer signs, so the bytes never pass the service;
//! 3. drops the days older than `BROKER_AUDIT_RETENTION_DAYS`, each only once its export holds
//!    every row the day holds (with no export configured, a day is dropped unexported).
//!
//! A day whose export fails is kept; the command goes on with the others and exits non-zero.

use crate::api::AuditView;
use crate::cli::runtime;
use crate::config::{AuditExportTarget, Config};
use crate::signer::{BackendSigner, ObjectMethod, ObjectUrl};
use crate::signing::{BucketName, Expiry, ObjectName};
use crate::store::{AuditDay, AuditExport, Store, day_bounds};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Date, OffsetDateTime};

/// A day is closed (exported) this long after its last instant: rows from replicas whose
/// clocks run a little behind have arrived by then.
const CLOSING_GRACE: time::Duration = time::Duration::minutes(10);
/// How long after a day closes its rows are counted again each run, to catch late ones.
const LATE_ROWS_WINDOW: time::Duration = time::Duration::days(2);
/// Rows read from the database at a time.
const READ_PAGE: i64 = 10_000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Make partitions ahead, export closed days, drop days past their retention.
    Maintain(MaintainArgs),
}

#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// Where each part is written before its upload (default: the system's temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Rows per exported object (a day with more is split into parts).
    #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    rows_per_object: u64,
}

pub fn audit(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Maintain(args) => maintain(args),
    }
}

fn maintain(args: MaintainArgs) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let _traces = super::service::init_logging();
    runtime()?.block_on(async {
        let store = Store::connect_lazy(
            config.database_url.expose(),
            config.database_direct_url.as_ref().map(|u| u.expose()),
            4,
        )
        .map_err(|e| format!("DATABASE_URL: {e}"))?;
        let now = OffsetDateTime::now_utc();
        let made = store
            .ensure_audit_partitions_around(now)
            .await
            .map_err(|e| format!("DATABASE_URL: cannot make the audit partitions: {e}"))?;
        println!("partitions: {made} made ahead");
        let exporter = match &config.audit.export {
            None => None,
            Some(target) => Some(Exporter::new(&config, target, &args).await?),
        };
        let days = store
            .audit_days()
            .await
            .map_err(|e| format!("DATABASE_URL: cannot read the audit's days: {e}"))?;
        let mut failed = Vec::new();
        for day in days {
            if let Err(err) = maintain_day(
                &store,
                exporter.as_ref(),
                config.audit.retention_days,
                &day,
                now,
            )
            .await
            {
                tracing::error!(day = %day.day, error = %err, "audit day not maintained");
                failed.push(format!("{}: {err}", day.day));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} audit day(s) kept for the next run: {}",
                failed.len(),
                failed.join("; ")
            ))
        }
    })
}

/// Exports `day` if closed and not (fully) exported, then drops it if past its retention.
/// Rows are counted only where it matters (a day closed within [`LATE_ROWS_WINDOW`], a day to
/// drop): not every kept day every night, which at 100 million rows a day would read them all.
async fn maintain_day(
    store: &Store,
    exporter: Option<&Exporter>,
    retention_days: Option<u32>,
    day: &AuditDay,
    now: OffsetDateTime,
) -> Result<(), String> {
    let (_, end) = day_bounds(day.day);
    if now < end + CLOSING_GRACE {
        return Ok(());
    }
    let expired = retention_days
        .is_some_and(|keep| day.day < now.date() - time::Duration::days(i64::from(keep)));
    let db = |e: crate::store::StoreError| format!("database: {e}");
    let mut export = day.export.clone();
    if let Some(exporter) = exporter {
        let stale = match &export {
            None => true,
            // A late row (a replica whose clock ran behind): the day is exported again.
            Some(done) if now < end + LATE_ROWS_WINDOW || expired => {
                store.audit_day_rows(day.day).await.map_err(db)? != done.rows
            }
            Some(_) => false,
        };
        if stale {
            let done = exporter.export(store, day.day).await?;
            store
                .record_audit_export(day.day, &done)
                .await
                .map_err(db)?;
            println!(
                "exported {}: {} rows in {} object(s), {} bytes",
                day.day,
                done.rows,
                done.objects.len(),
                done.bytes
            );
            export = Some(done);
        }
    }
    if !expired {
        return Ok(());
    }
    let rows = store.audit_day_rows(day.day).await.map_err(db)?;
    if exporter.is_some() {
        let exported = export.as_ref().map_or(0, |e| e.rows);
        if exported != rows {
            // A row that came in since the export: kept for the next run to export again.
            return Err(format!(
                "{rows} rows now, the export holds {exported}: exported again next run"
            ));
        }
    }
    let dropped = store.drop_audit_day(day.day).await.map_err(db)?;
    println!(
        "dropped {} ({rows} rows): detached in {:.3} s, dropped in {:.3} s",
        day.day,
        dropped.detach.as_secs_f64(),
        dropped.drop.as_secs_f64()
    );
    Ok(())
}

/// Writes a day's rows into compressed parts and uploads each with a URL the broker signs.
struct Exporter {
    signer: Arc<BackendSigner>,
    target: AuditExportTarget,
    bucket: BucketName,
    http: reqwest::Client,
    work_dir: PathBuf,
    rows_per_object: u64,
}

impl Exporter {
    async fn new(
        config: &Config,
        target: &AuditExportTarget,
        args: &MaintainArgs,
    ) -> Result<Self, String> {
        let (signers, _renewing) = crate::app::signers(config)
            .await
            .map_err(|e| e.to_string())?;
        let signer = signers.backend(&target.backend).cloned().ok_or_else(|| {
            format!(
                "BROKER_AUDIT_EXPORT_BACKEND: no backend {:?} in the policies' classes.toml",
                target.backend
            )
        })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3600))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            signer,
            target: target.clone(),
            bucket: BucketName::parse(&target.bucket)
                .map_err(|e| format!("BROKER_AUDIT_EXPORT_BUCKET: {e}"))?,
            http,
            work_dir: args.work_dir.clone().unwrap_or_else(std::env::temp_dir),
            rows_per_object: args.rows_per_object,
        })
    }

    async fn export(&self, store: &Store, day: Date) -> Result<AuditExport, String> {
        let mut export = AuditExport {
            rows: 0,
            objects: Vec::new(),
            bytes: 0,
        };
        let mut after = None;
        let mut exhausted = false;
        let mut part = 0u32;
        while !exhausted {
            let path = self.work_dir.join(format!(
                "storage-broker-audit-{day}-{part:04}-{}.ndjson.gz",
                std::process::id()
            ));
            let written = self
                .write_part(store, day, &path, &mut after, &mut exhausted)
                .await;
            let result = match written {
                Ok(0) => Ok(None),
                Ok(rows) => {
                    let name = format!(
                        "{}{:04}/{:02}/{:02}/part-{part:04}.ndjson.gz",
                        self.target.prefix,
                        day.year(),
                        u8::from(day.month()),
                        day.day()
                    );
                    self.upload(&path, &name)
                        .await
                        .map(|bytes| Some((rows, name, bytes)))
                }
                Err(err) => Err(err),
            };
            let _ = std::fs::remove_file(&path);
            match result? {
                None => break,
                Some((rows, name, bytes)) => {
                    export.rows += rows;
                    export.objects.push(name);
                    export.bytes += bytes;
                }
            }
            part += 1;
        }
        Ok(export)
    }

    /// Writes up to `rows_per_object` rows after `after` to `path`; how many.
    async fn write_part(
        &self,
        store: &Store,
        day: Date,
        path: &Path,
        after: &mut Option<(OffsetDateTime, i64)>,
        exhausted: &mut bool,
    ) -> Result<i64, String> {
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        );
        let mut rows = 0i64;
        while (rows as u64) < self.rows_per_object {
            let want = READ_PAGE.min(self.rows_per_object as i64 - rows);
            let page = store
                .audit_day_page(day, *after, want)
                .await
                .map_err(|e| format!("database: {e}"))?;
            let short = (page.len() as i64) < want;
            for row in page {
                *after = Some((row.at, row.id));
                serde_json::to_writer(&mut out, &AuditView::from(row))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                out.write_all(b"\n").map_err(io)?;
                rows += 1;
            }
            if short {
                *exhausted = true;
                break;
            }
        }
        out.finish().and_then(|mut w| w.flush()).map_err(io)?;
        Ok(rows)
    }

    /// PUTs the file at `path` as object `name`; its size.
    async fn upload(&self, path: &Path, name: &str) -> Result<i64, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let object = ObjectName::parse(name).map_err(|e| format!("object {name:?}: {e}"))?;
        let expiry = Expiry::from_secs(3600).map_err(|e| e.to_string())?;
        let url = ObjectUrl::new(ObjectMethod::Put, self.bucket.clone(), object, expiry);
        let signed = self
            .signer
            .sign(url, OffsetDateTime::now_utc())
            .await
            .map_err(|e| format!("cannot sign the upload of {name}: {e}"))?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut request = self
            .http
            .put(&signed.url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file));
        for (header, value) in &signed.headers {
            request = request.header(header, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("upload of {name}: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(format!(
                "upload of {name} to {}: storage answered {status}: {body}",
                self.target.bucket
            ));
        }
        i64::try_from(size).map_err(|e| e.to_string())
    }
}
