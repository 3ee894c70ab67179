//! PostgreSQL through sqlx: buckets, projects, members, grants, audit.

mod audit;
mod audit_days;
mod buckets;
mod changes;
mod db;
mod error;
mod grants;
mod projects;
mod secrets;

pub use audit::{AuditEvent, AuditFilter, AuditLog, AuditRow, AuditWriters};
pub use audit_days::{AuditDay, AuditExport, DroppedDay, day_bounds, partition_name};
pub use buckets::{AccessContext, BucketRecord, NewBucket};
pub use changes::{CHANNEL, Change as CacheChange, DecisionCache};
pub use db::{Db, Tx};
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
    db: Db,
    /// Straight to PostgreSQL when `db` goes through a transaction-mode pooler: for what needs
    /// a session of its own (the change feed's LISTEN, migrations' advisory lock, DETACH …
    /// CONCURRENTLY).
    direct: Option<PgPool>,
}

/// Connections each pool keeps open: the two audit writers', the change feed's LISTEN (on this
/// pool when there is no direct one) and one for reads.
const WARM_CONNECTIONS: u32 = 4;

impl Store {
    /// Opens a pool to `url`. Connections are made lazily, so the broker starts (and reports
    /// not-ready) while the database is down. With `direct_url`, `url` is taken to be a
    /// transaction-mode pooler (PgBouncer): no statement cache, no `extra_float_digits`
    /// startup parameter (PgBouncer refuses it), each query in a transaction of its own (see
    /// [`Db`]), and LISTEN on one connection of its own to `direct_url`.
    pub fn connect_lazy(
        url: &str,
        direct_url: Option<&str>,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let invalid = |e: sqlx::Error| StoreError::Other(format!("invalid database URL: {e}"));
        let options: PgConnectOptions = url.parse().map_err(invalid)?;
        // A few connections are kept open, made before traffic comes instead of on its first
        // burst. Each is still pinged before use (sqlx's default), though that is a sixth of
        // PostgreSQL's CPU under the reliability load (BENCHMARKS.md, "Tail latency"): without
        // it, every connection the database dropped fails one request after it comes back.
        let pool = |options: PgConnectOptions, max: u32| {
            PgPoolOptions::new()
                .max_connections(max)
                .min_connections(max.min(WARM_CONNECTIONS))
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy_with(options)
        };
        Ok(match direct_url {
            None => Self {
                db: Db::direct(pool(options, max_connections)),
                direct: None,
            },
            Some(direct_url) => {
                let direct: PgConnectOptions = direct_url.parse().map_err(invalid)?;
                let options = options.statement_cache_capacity(0).extra_float_digits(None);
                Self {
                    db: Db::behind_pooler(pool(options, max_connections)),
                    direct: Some(pool(direct, 1)),
                }
            }
        })
    }

    /// Wraps an existing pool, straight to PostgreSQL.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            db: Db::direct(pool),
            direct: None,
        }
    }

    /// Where queries go.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The pool under [`Self::db`] (tests, benchmarks).
    pub fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    /// Connections straight to PostgreSQL either way, for session-level work.
    pub fn session_pool(&self) -> &PgPool {
        self.direct.as_ref().unwrap_or(self.db.pool())
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(self.session_pool())
            .await
            .map_err(migrate_error)
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
        sqlx::query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }
}

fn migrate_error(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(err) => StoreError::from(err),
        other => StoreError::Other(other.to_string()),
    }
}
