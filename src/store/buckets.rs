//! Logical buckets, and what one caller holds on one of them.

use super::{Store, StoreError};
use crate::policy::{BucketClass, Grant, Membership};
use sqlx::types::Json;

/// The columns of a [`BucketRecord`], in its order: one list for every query that reads one.
macro_rules! bucket_columns {
    () => {
        "name, class, owner, project, backend_bucket, backend_prefix, classification, read_only"
    };
}

/// A logical bucket as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, sqlx::FromRow)]
pub struct BucketRecord {
    pub name: String,
    pub class: String,
    pub owner: Option<String>,
    pub project: Option<String>,
    pub backend_bucket: String,
    pub backend_prefix: String,
    pub classification: String,
    pub read_only: bool,
}

/// One bucket with the caller's unexpired grants on it and the caller's project memberships.
#[derive(Clone, Debug)]
pub struct AccessContext {
    pub bucket: Option<BucketRecord>,
    pub grants: Vec<Grant>,
    pub memberships: Vec<Membership>,
}

/// The bucket, the grants and the memberships, each as JSON.
type ContextRow = (
    Option<Json<BucketRecord>>,
    Json<Vec<Grant>>,
    Json<Vec<Membership>>,
);

impl Store {
    /// The caller's personal bucket, made now if this is their first request, and whether this
    /// call made it. Concurrent first requests make one bucket: the unique index on personal
    /// owners decides, and everyone reads the winner back.
    pub async fn ensure_personal_bucket(
        &self,
        subject: &str,
        username: Option<&str>,
        class: &BucketClass,
        classification: &str,
    ) -> Result<(BucketRecord, bool), StoreError> {
        if let Some(bucket) = self.personal_bucket(subject).await? {
            return Ok((bucket, false));
        }
        // The `u-` namespace belongs to personal buckets alone (the API refuses it for every
        // other class), so only another user can hold a name: the username's slug, then the
        // slug with a digest of the subject, then names from the subject's digest alone, one
        // after another, so that naming cannot fail for good however names were taken.
        for name in personal_bucket_names(username.unwrap_or(subject), subject) {
            let inserted = sqlx::query(
                "INSERT INTO buckets (name, class, owner, backend_bucket, backend_prefix, classification, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&name)
            .bind(&class.name)
            .bind(subject)
            .bind(class.backend_bucket.as_str())
            .bind(class.render_prefix(Some(subject), None))
            .bind(classification)
            .execute(&self.db)
            .await?
            .rows_affected()
                == 1;
            if let Some(bucket) = self.personal_bucket(subject).await? {
                return Ok((bucket, inserted));
            }
        }
        Err(StoreError::Other(format!(
            "could not name a personal bucket for {subject:?}: every candidate name is taken"
        )))
    }

    async fn personal_bucket(&self, subject: &str) -> Result<Option<BucketRecord>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            bucket_columns!(),
            " FROM buckets WHERE owner = $1 AND class = 'personal'"
        ))
        .bind(subject)
        .fetch_optional(&self.db)
        .await?)
    }

    /// The bucket `name`, the caller's unexpired grants on it (those naming one of
    /// `principals`, or a project the caller belongs to) and the caller's memberships, in one
    /// round trip. `member_keys` are the subject and `group:<path>` per group.
    pub async fn access_context(
        &self,
        name: &str,
        principals: &[String],
        member_keys: &[String],
    ) -> Result<AccessContext, StoreError> {
        let row: ContextRow = sqlx::query_as(
            concat!("WITH m AS (SELECT project, role FROM project_members WHERE member = ANY($3))
             SELECT
               (SELECT row_to_json(b) FROM (
                   SELECT ", bucket_columns!(), "
                   FROM buckets WHERE name = $1) b),
               (SELECT coalesce(json_agg(json_build_object(
                       'id', g.id, 'prefix', g.prefix, 'exact', g.exact, 'principal', g.principal, 'role', g.role,
                       'expires_at', to_char(g.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))), '[]'::json)
                  FROM grants g
                  WHERE g.bucket = $1 AND (g.expires_at IS NULL OR g.expires_at > now())
                    AND (g.principal = ANY($2) OR g.principal IN (SELECT 'project:' || project FROM m))),
               (SELECT coalesce(json_agg(m), '[]'::json) FROM m)"),
        )
        .bind(name)
        .bind(principals)
        .bind(member_keys)
        .fetch_one(&self.db)
        .await?;
        Ok(AccessContext {
            bucket: row.0.map(|b| b.0),
            grants: row.1.0,
            memberships: row.2.0,
        })
    }

    /// Buckets the caller may see: owned, of a project they belong to, or with a grant to them.
    /// Storage admins see all.
    pub async fn visible_buckets(
        &self,
        subject: &str,
        principals: &[String],
        member_keys: &[String],
        admin: bool,
    ) -> Result<Vec<BucketRecord>, StoreError> {
        Ok(sqlx::query_as(
            concat!("WITH m AS (SELECT project FROM project_members WHERE member = ANY($3))
             SELECT ", bucket_columns!(), "
             FROM buckets b
             WHERE $4 OR b.owner = $1 OR b.project IN (SELECT project FROM m)
                OR EXISTS (SELECT 1 FROM grants g
                           WHERE g.bucket = b.name AND (g.expires_at IS NULL OR g.expires_at > now())
                             AND (g.principal = ANY($2) OR g.principal IN (SELECT 'project:' || project FROM m)))
             ORDER BY name LIMIT 1000"),
        )
        .bind(subject)
        .bind(principals)
        .bind(member_keys)
        .bind(admin)
        .fetch_all(&self.db)
        .await?)
    }
}

/// `u-` and the username made safe for a bucket name: `a-z`, `0-9` and `-`.
fn personal_bucket_name(username: &str) -> String {
    let mut slug = String::with_capacity(username.len());
    for c in username.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        return format!("u-{}", short_digest(username));
    }
    truncate(&format!("u-{slug}"), 63)
        .trim_end_matches('-')
        .to_owned()
}

/// The names a personal bucket may get, in order: `u-<slug of the username>`, the same with a
/// digest of the subject, then 32 names made of digests of the subject alone.
fn personal_bucket_names(username: &str, subject: &str) -> Vec<String> {
    let base = personal_bucket_name(username);
    let mut names = vec![
        base.clone(),
        format!("{}-{}", truncate(&base, 54), short_digest(subject)),
    ];
    names.extend((0..32u8).map(|n| {
        let mut input = subject.as_bytes().to_vec();
        input.push(0);
        input.push(n);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        format!("u-{}", hex::encode(&digest.as_ref()[..12]))
    }));
    names
}

fn truncate(s: &str, max: usize) -> &str {
    // Bucket names here are ASCII.
    &s[..s.len().min(max)]
}

fn short_digest(s: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    hex::encode(&digest.as_ref()[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_names_never_run_out() {
        let names = personal_bucket_names("alice", "f47ac10b-58cc");
        assert_eq!(names[0], "u-alice");
        assert!(names[1].starts_with("u-alice-"));
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        for name in &names {
            crate::policy::LogicalBucketName::parse(name).expect(name);
            assert!(name.starts_with("u-"), "{name}");
        }
        // Another subject with the same username gets other fallbacks.
        let other = personal_bucket_names("alice", "another-subject");
        assert_eq!(other[0], names[0]);
        assert!(names[2..].iter().all(|n| !other[2..].contains(n)));
    }

    #[test]
    fn personal_names() {
        assert_eq!(personal_bucket_name("alice"), "u-alice");
        assert_eq!(
            personal_bucket_name("Alice.Smith@Example.org"),
            "u-alice-smith-example-org"
        );
        assert_eq!(personal_bucket_name("ünï"), "u-n");
        assert!(personal_bucket_name("---").starts_with("u-"));
        assert!(personal_bucket_name(&"x".repeat(200)).len() <= 63);
        for name in ["alice", "Bob Smith", "@@", &"x".repeat(200)] {
            crate::policy::LogicalBucketName::parse(&personal_bucket_name(name)).expect(name);
        }
    }
}

/// A logical bucket to create.
#[derive(Clone, Debug)]
pub struct NewBucket<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub owner: Option<&'a str>,
    pub project: Option<&'a str>,
    pub backend_bucket: &'a str,
    pub backend_prefix: &'a str,
    pub classification: &'a str,
    pub read_only: bool,
    pub created_by: &'a str,
}

impl Store {
    /// Creates a logical bucket; `None` when the name is taken.
    pub async fn create_bucket(
        &self,
        bucket: NewBucket<'_>,
    ) -> Result<Option<BucketRecord>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "INSERT INTO buckets (",
            bucket_columns!(),
            ", created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT DO NOTHING
             RETURNING ",
            bucket_columns!()
        ))
        .bind(bucket.name)
        .bind(bucket.class)
        .bind(bucket.owner)
        .bind(bucket.project)
        .bind(bucket.backend_bucket)
        .bind(bucket.backend_prefix)
        .bind(bucket.classification)
        .bind(bucket.read_only)
        .bind(bucket.created_by)
        .fetch_optional(&self.db)
        .await?)
    }

    /// Whether a logical bucket is called `name`.
    pub async fn bucket_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1)")
                .bind(name)
                .fetch_one(&self.db)
                .await?,
        )
    }

    /// Whether another logical bucket already maps to a prefix overlapping `prefix` of `backend`.
    pub async fn backend_overlaps(&self, backend: &str, prefix: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM buckets WHERE backend_bucket = $1
                            AND (starts_with(backend_prefix, $2) OR starts_with($2, backend_prefix)))",
        )
        .bind(backend)
        .bind(prefix)
        .fetch_one(&self.db)
        .await?)
    }

    /// Removes logical bucket `name` and, by cascade, its grants; whether it existed.
    pub async fn delete_bucket(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
