//! The audit log. A URL may leave the broker only once its row is committed; rows from
//! concurrent requests share one INSERT and one commit (group commit), so the audit does not cap
//! throughput. When a shared INSERT fails for anything but an unreachable database, each
//! request's rows are retried alone: one bad row fails its own request, never another's. A row
//! whose day has no partition yet (migrations/0006) makes that day's partition, then goes in.

use super::StoreError;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};

/// One audited decision.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub at: OffsetDateTime,
    pub request_id: String,
    pub subject: Option<String>,
    pub client: Option<String>,
    pub action: &'static str,
    pub bucket: Option<String>,
    pub object: Option<String>,
    pub method: Option<&'static str>,
    pub expires_at: Option<OffsetDateTime>,
    /// `allow`, `deny` or `not_found`.
    pub decision: &'static str,
    pub reason: String,
}

struct Pending {
    events: Vec<AuditEvent>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Hands events to the writers and waits for their commit.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

/// The writers' tasks: they end once every [`AuditLog`] is dropped and what was queued is
/// committed.
pub struct AuditWriters(Vec<tokio::task::JoinHandle<()>>);

impl AuditWriters {
    /// Waits (at most `limit`) for the writers to commit what is queued and stop; whether they
    /// did. Drop every [`AuditLog`] first: the writers stop when nothing can send any more.
    pub async fn drained(self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, futures::future::join_all(self.0))
            .await
            .is_ok()
    }
}

/// Rows one commit takes at most.
const MAX_ROWS_PER_COMMIT: usize = 20_000;
/// Writers: while one commits, the next gathers.
const WRITERS: usize = 2;

impl AuditLog {
    /// Starts the writers on `store`.
    pub fn start(store: super::Store) -> (Self, AuditWriters) {
        let (tx, rx) = mpsc::channel::<Pending>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let writers = (0..WRITERS)
            .map(|_| {
                let (store, rx) = (store.clone(), rx.clone());
                tokio::spawn(async move { write_loop(store, rx).await })
            })
            .collect();
        (Self { tx }, AuditWriters(writers))
    }

    /// Requests waiting for a writer (none taken yet).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Records `events` and returns once they are committed.
    pub async fn record(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { events, done })
            .await
            .map_err(|_| StoreError::Other("audit writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Other("audit writer stopped".into()))?
    }
}

async fn write_loop(store: super::Store, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut rows = first.events.len();
            let mut batch = vec![first];
            while rows < MAX_ROWS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(next) => {
                        rows += next.events.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        commit(&store, batch).await;
    }
}

/// Inserts the batch's rows together; if that fails while the database is reachable (a row it
/// refuses), inserts each request's rows alone, so that only the guilty request fails.
async fn commit(store: &super::Store, batch: Vec<Pending>) {
    let events: Vec<&AuditEvent> = batch.iter().flat_map(|p| &p.events).collect();
    let parts = &crate::telemetry::COMPONENTS;
    let started = std::time::Instant::now();
    let result = insert(store, &events).await;
    parts
        .audit_commit_seconds
        .observe(started.elapsed().as_secs_f64());
    parts.audit_commit_rows.observe(events.len() as f64);
    if result.is_err() {
        parts.audit_commit_failures.inc();
    }
    match result {
        Ok(()) => {
            for pending in batch {
                let _ = pending.done.send(Ok(()));
            }
        }
        Err(err @ StoreError::Unavailable(_)) => {
            tracing::error!(error = %err, rows = events.len(), "audit insert failed; the requests get 503");
            for pending in batch {
                let _ = pending.done.send(Err(err.clone()));
            }
        }
        Err(err) if batch.len() == 1 => {
            tracing::error!(error = %err, rows = events.len(), "audit insert refused; the request fails");
            for pending in batch {
                let _ = pending.done.send(Err(err.clone()));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, requests = batch.len(), "shared audit insert refused; inserting each request's rows alone");
            for pending in batch {
                let own: Vec<&AuditEvent> = pending.events.iter().collect();
                let outcome = insert(store, &own).await;
                if let Err(err) = &outcome {
                    tracing::error!(error = %err, rows = own.len(), "audit insert refused; the request fails");
                }
                let _ = pending.done.send(outcome);
            }
        }
    }
}

async fn insert(store: &super::Store, events: &[&AuditEvent]) -> Result<(), StoreError> {
    match insert_rows(store.db(), events).await {
        Err(StoreError::MissingPartition(why)) => {
            let mut days: Vec<time::Date> = events
                .iter()
                .map(|e| e.at.to_offset(time::UtcOffset::UTC).date())
                .collect();
            days.sort_unstable();
            days.dedup();
            tracing::warn!(?days, cause = %why, "audit rows for a day without a partition; making it");
            for day in days {
                store.ensure_audit_partitions(day, day).await?;
            }
            insert_rows(store.db(), events).await
        }
        other => other,
    }
}

async fn insert_rows(db: &super::Db, events: &[&AuditEvent]) -> Result<(), StoreError> {
    let column =
        |f: fn(&AuditEvent) -> Option<String>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO audit_events (at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason)
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::text[])",
    )
    .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.request_id.clone()).collect::<Vec<_>>())
    .bind(column(|e| e.subject.clone()))
    .bind(column(|e| e.client.clone()))
    .bind(events.iter().map(|e| e.action).collect::<Vec<_>>())
    .bind(column(|e| e.bucket.clone()))
    .bind(column(|e| e.object.clone()))
    .bind(events.iter().map(|e| e.method).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.expires_at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.decision).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

/// Which audit rows to read: every filter is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    pub bucket: Option<String>,
    pub subject: Option<String>,
    pub object_prefix: Option<String>,
    /// `allow`, `deny` or `not_found`.
    pub decision: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// One audit row as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub request_id: String,
    pub subject: Option<String>,
    pub client: Option<String>,
    pub action: String,
    pub bucket: Option<String>,
    pub object: Option<String>,
    pub method: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub decision: String,
    pub reason: String,
}

impl super::Store {
    /// Up to `limit` rows matching `filter`, newest first, strictly before `after` (the last row
    /// of the previous page: its `at` and `id`).
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<(OffsetDateTime, i64)>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        // One statement for every filter: each `$n IS NULL OR …` folds away in the custom plan
        // PostgreSQL makes for the values given, which then uses the index that fits (see
        // migrations/0005). The refusal clause repeats the decision filter in the partial
        // index's own terms, so that `deny` and `not_found` read only refusals.
        Ok(sqlx::query_as(
            "SELECT id, at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason
             FROM audit_events
             WHERE ($1::text IS NULL OR bucket = $1)
               AND ($2::text IS NULL OR subject = $2)
               AND ($3::text IS NULL OR object LIKE $3 ESCAPE '\\')
               AND ($4::text IS NULL OR decision = $4)
               AND ($4::text IS NULL OR $4 = 'allow' OR decision <> 'allow')
               AND ($5::timestamptz IS NULL OR at >= $5)
               AND ($6::timestamptz IS NULL OR at < $6)
               AND ($7::timestamptz IS NULL OR (at, id) < ($7, $8::bigint))
             ORDER BY at DESC, id DESC
             LIMIT $9",
        )
        .bind(filter.bucket.as_deref())
        .bind(filter.subject.as_deref())
        .bind(filter.object_prefix.as_deref().map(like_prefix))
        .bind(filter.decision.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(self.db())
        .await?)
    }
}

/// The LIKE pattern for names starting with `prefix`: its `\\`, `%` and `_` escaped.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_match_only_the_prefix() {
        assert_eq!(super::like_prefix("a/b"), "a/b%");
        assert_eq!(super::like_prefix("100%_\\x"), "100\\%\\_\\\\x%");
        assert_eq!(super::like_prefix(""), "%");
    }
}
