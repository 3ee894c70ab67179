//! PostgreSQL through sqlx: buckets, projects, members, grants, audit.

mod audit;
mod audit_days;
mod buckets;
mod changes;
mod error;
mod grants;
mod projects;
mod secrets;

pub use audit::{AuditEvent, AuditFilter, AuditLog, AuditRow, AuditWriters};
pub use audit_days::{AuditDay, AuditExport, DAYS_AHEAD, day_bounds, partition_name};
pub use buckets::{AccessContext, BucketRecord, NewBucket};
pub use changes::{CHANNEL, Change as CacheChange, DecisionCache};
pub use error::StoreError;
pub use grants::{GrantRecord, NewGrant};
pub use projects::{MemberChange, MemberRecord, ProjectRecord};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool};
use std::time::Duration;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Opens a pool to `url`. Connections are made lazily, so the broker starts (and reports
    /// not-ready) while the database is down.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)
            .map_err(|e| StoreError::Other(format!("invalid database URL: {e}")))?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for the audit writers.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(migrate_error)
    }

    /// One connection to `url`, made now, or why it cannot be made (refused, unknown host, bad
    /// password, no answer within `timeout`). For `storage-broker migrate`: the pool retries a
    /// refused connection until its acquire timeout and then says only that it timed out.
    pub async fn connect_now(url: &str, timeout: Duration) -> Result<PgConnection, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Other(format!("invalid database URL: {e}")))?;
        match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(StoreError::from(err)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no connection within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Applies pending migrations over `connection`.
    pub async fn migrate_connection(connection: &mut PgConnection) -> Result<(), StoreError> {
        MIGRATOR.run(connection).await.map_err(migrate_error)
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn migrate_error(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(err) => StoreError::from(err),
        other => StoreError::Other(other.to_string()),
    }
}
