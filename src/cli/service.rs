//! `serve`, `migrate` and `policy check`.

use crate::app::{Application, shutdown_signal};
use crate::cli::runtime;
use crate::config::Config;
use crate::policy::Policies;
use crate::store::{Store, StoreError};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

/// Logs to stderr: `BROKER_LOG` (or `RUST_LOG`) filters, default `info`; `BROKER_LOG_FORMAT=json`
/// for JSON lines. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans go out over OTLP as well; keep
/// the answer until the end, when dropping it flushes them.
pub fn init_logging() -> Option<crate::telemetry::traces::Traces> {
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("BROKER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    // Targets: `info`, `storage_broker=debug,sqlx=warn`.
    let filter: tracing_subscriber::filter::Targets = filter.parse().unwrap_or_else(|_| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    });
    // Colour only for a person at a terminal: not in files, pipes or log collectors.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = if std::env::var("BROKER_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    // One filter for both layers (per-layer filters lost the request's span to the trace layer
    // now and then).
    let (otel, traces) = crate::telemetry::traces::layer().unzip();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    traces
}

/// Runs the HTTP service until SIGINT or SIGTERM.
pub fn serve() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let _traces = init_logging();
    runtime()?.block_on(async {
        let app = Application::build(&config)
            .await
            .map_err(|e| e.to_string())?;
        let addr = app.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, "storage-broker listening");
        app.run_until(shutdown_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))
    })
}

/// Applies the migrations to `DATABASE_DIRECT_URL`, else `DATABASE_URL`, and exits.
pub fn migrate() -> Result<(), String> {
    // Past any pooler: the migrator holds a session-level advisory lock.
    let url = std::env::var("DATABASE_DIRECT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .ok_or_else(|| "DATABASE_URL: required, not set".to_owned())?;
    runtime()?.block_on(async {
        // One connection made now, so that a database that cannot be reached is reported with
        // the reason (the lazy pool of `serve` would only say that it timed out).
        let mut connection = Store::connect_now(&url, Duration::from_secs(10))
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(reason) | StoreError::Other(reason) => {
                    format!("DATABASE_URL: cannot connect: {reason}")
                }
                other => format!("DATABASE_URL: cannot connect: {other}"),
            })?;
        Store::migrate_connection(&mut connection)
            .await
            .map_err(|e| format!("migrations failed: {e}"))?;
        println!("migrations applied");
        Ok(())
    })
}

/// Validates a policies directory.
pub fn policy_check(dir: &Path) -> Result<(), String> {
    let policies = Policies::load(dir).map_err(|e| e.to_string())?;
    let roles: Vec<&str> = policies.roles.names().collect();
    let backends: Vec<String> = policies
        .classes
        .backends_in_use()
        .map(|b| format!("{} ({})", b.name, b.kind.as_str()))
        .collect();
    println!(
        "{}: ok ({} roles: {}; classification levels: {}; backends: {})",
        dir.display(),
        roles.len(),
        roles.join(", "),
        policies.classes.levels.join(" < "),
        backends.join(", ")
    );
    for class in policies.classes.iter().filter(|c| !c.advisory.is_empty()) {
        println!(
            "note: class {:?}: {} advisory only (backend {:?} cannot enforce it)",
            class.name,
            class.advisory.join(" and "),
            class.backend
        );
    }
    Ok(())
}
