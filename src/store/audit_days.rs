//! The audit's daily partitions (migrations/0006): making them ahead, reading a closed day in
//! order for its export, recording the export, and dropping a day past its retention.
//! Partition names come from dates alone (`audit_events_YYYYMMDD`), never from input.

use super::{AuditRow, StoreError};
use time::{Date, OffsetDateTime, Time};

/// Days ahead of today the broker keeps partitions for.
const DAYS_AHEAD: i64 = 7;

/// One day's partition, and its export when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDay {
    pub day: Date,
    pub export: Option<AuditExport>,
}

/// What `audit maintain` exported of a day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditExport {
    pub rows: i64,
    pub objects: Vec<String>,
    pub bytes: i64,
}

/// The partition holding `day`'s rows.
pub fn partition_name(day: Date) -> String {
    format!(
        "audit_events_{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The UTC instants `day` covers: [start, end).
pub fn day_bounds(day: Date) -> (OffsetDateTime, OffsetDateTime) {
    let start = day.with_time(Time::MIDNIGHT).assume_utc();
    (start, start + time::Duration::DAY)
}

fn parse_partition_name(name: &str) -> Option<Date> {
    let digits = name.strip_prefix("audit_events_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

impl super::Store {
    /// Makes the partitions of the UTC days `first..=last` that are missing; how many it made.
    pub async fn ensure_audit_partitions(
        &self,
        first: Date,
        last: Date,
    ) -> Result<i32, StoreError> {
        Ok(sqlx::query_scalar("SELECT audit_ensure_partitions($1, $2)")
            .bind(first)
            .bind(last)
            .fetch_one(self.db())
            .await?)
    }

    /// Yesterday (a late row from a replica whose clock is behind) through [`DAYS_AHEAD`] days
    /// from `now`.
    pub async fn ensure_audit_partitions_around(
        &self,
        now: OffsetDateTime,
    ) -> Result<i32, StoreError> {
        let today = now.to_offset(time::UtcOffset::UTC).date();
        self.ensure_audit_partitions(
            today - time::Duration::DAY,
            today + time::Duration::days(DAYS_AHEAD),
        )
        .await
    }

    /// Every day with a partition, oldest first, with its export if any.
    pub async fn audit_days(&self) -> Result<Vec<AuditDay>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'audit_events'::regclass",
        )
        .fetch_all(self.db())
        .await?;
        let exports: Vec<(Date, i64, Vec<String>, i64)> =
            sqlx::query_as("SELECT day, rows, objects, bytes FROM audit_exports")
                .fetch_all(self.db())
                .await?;
        let mut days: Vec<AuditDay> = names
            .iter()
            .filter_map(|name| parse_partition_name(name))
            .map(|day| AuditDay {
                day,
                export: exports.iter().find(|(d, ..)| *d == day).map(
                    |(_, rows, objects, bytes)| AuditExport {
                        rows: *rows,
                        objects: objects.clone(),
                        bytes: *bytes,
                    },
                ),
            })
            .collect();
        days.sort_by_key(|d| d.day);
        Ok(days)
    }

    /// How many rows `day` holds now.
    pub async fn audit_day_rows(&self, day: Date) -> Result<i64, StoreError> {
        let (start, end) = day_bounds(day);
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE at >= $1 AND at < $2")
                .bind(start)
                .bind(end)
                .fetch_one(self.db())
                .await?,
        )
    }

    /// Up to `limit` of `day`'s rows in (at, id) order, after `after` (the last row read).
    pub async fn audit_day_page(
        &self,
        day: Date,
        after: Option<(OffsetDateTime, i64)>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let (start, end) = day_bounds(day);
        Ok(sqlx::query_as(
            "SELECT id, at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason
             FROM audit_events
             WHERE at >= $1 AND at < $2
               AND ($3::timestamptz IS NULL OR (at, id) > ($3, $4::bigint))
             ORDER BY at, id
             LIMIT $5",
        )
        .bind(start)
        .bind(end)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(self.db())
        .await?)
    }

    /// Records that `day` was exported as `export` (replacing an earlier export of it).
    pub async fn record_audit_export(
        &self,
        day: Date,
        export: &AuditExport,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_exports (day, rows, objects, bytes) VALUES ($1, $2, $3, $4)
             ON CONFLICT (day) DO UPDATE
             SET rows = EXCLUDED.rows, objects = EXCLUDED.objects, bytes = EXCLUDED.bytes,
                 exported_at = now()",
        )
        .bind(day)
        .bind(export.rows)
        .bind(&export.objects)
        .bind(export.bytes)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Drops `day`'s partition: detached without blocking the writers (CONCURRENTLY), then
    /// dropped as a table, whatever its size; how long each step took.
    pub async fn drop_audit_day(&self, day: Date) -> Result<DroppedDay, StoreError> {
        let name = partition_name(day);
        let started = std::time::Instant::now();
        // Outside any transaction block, as DETACH … CONCURRENTLY must be. The name is made
        // from a date, never from input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE audit_events DETACH PARTITION {name} CONCURRENTLY"
        )))
        .execute(self.session_pool())
        .await?;
        let detached = started.elapsed();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {name}")))
            .execute(self.session_pool())
            .await?;
        Ok(DroppedDay {
            detach: detached,
            drop: started.elapsed() - detached,
        })
    }
}

/// How long dropping a day took: the detach (what the writers could notice) and the drop of
/// the detached table (its files unlinked).
#[derive(Debug, Clone, Copy)]
pub struct DroppedDay {
    pub detach: std::time::Duration,
    pub drop: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn partition_names_round_trip_and_refuse_anything_else() {
        let day = date!(2026 - 03 - 09);
        assert_eq!(partition_name(day), "audit_events_20260309");
        assert_eq!(parse_partition_name(&partition_name(day)), Some(day));
        for bad in [
            "audit_events_default",
            "audit_events_2026030",
            "audit_events_20261340",
            "audit_events_2026-3-9",
            "audit_exports",
        ] {
            assert_eq!(parse_partition_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_day_is_its_utc_midnights() {
        assert_eq!(
            day_bounds(date!(2026 - 12 - 31)),
            (
                datetime!(2026-12-31 00:00 UTC),
                datetime!(2027-01-01 00:00 UTC)
            )
        );
    }
}
