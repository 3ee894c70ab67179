//! Grants: role on a prefix of a bucket, for a principal, until an optional expiry.

use super::{Store, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// A grant as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantRecord {
    pub id: Uuid,
    pub bucket: String,
    pub prefix: String,
    /// Matches the object named `prefix` only.
    pub exact: bool,
    pub principal: String,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

/// A grant to create.
#[derive(Clone, Debug)]
pub struct NewGrant<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub exact: bool,
    pub principal: &'a str,
    pub role: &'a str,
    pub expires_at: Option<OffsetDateTime>,
    pub created_by: &'a str,
}

impl Store {
    /// Every grant on `bucket`, expired ones included (they are kept for the record until deleted).
    pub async fn grants(&self, bucket: &str) -> Result<Vec<GrantRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, bucket, prefix, exact, principal, role, expires_at, created_by, created_at
             FROM grants WHERE bucket = $1 ORDER BY created_at, id",
        )
        .bind(bucket)
        .fetch_all(&self.db)
        .await?)
    }

    /// The grant `id` on `bucket`.
    pub async fn grant(&self, bucket: &str, id: Uuid) -> Result<Option<GrantRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, bucket, prefix, exact, principal, role, expires_at, created_by, created_at
             FROM grants WHERE bucket = $1 AND id = $2",
        )
        .bind(bucket)
        .bind(id)
        .fetch_optional(&self.db)
        .await?)
    }

    /// Stores a grant.
    pub async fn create_grant(&self, grant: NewGrant<'_>) -> Result<GrantRecord, StoreError> {
        Ok(sqlx::query_as(
            "INSERT INTO grants (id, bucket, prefix, exact, principal, role, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id, bucket, prefix, exact, principal, role, expires_at, created_by, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(grant.bucket)
        .bind(grant.prefix)
        .bind(grant.exact)
        .bind(grant.principal)
        .bind(grant.role)
        .bind(grant.expires_at)
        .bind(grant.created_by)
        .fetch_one(&self.db)
        .await?)
    }

    /// Deletes grant `id` of `bucket`; whether it existed.
    pub async fn delete_grant(&self, bucket: &str, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM grants WHERE bucket = $1 AND id = $2")
            .bind(bucket)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
