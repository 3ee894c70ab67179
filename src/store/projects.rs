//! Projects and their members.

use super::{Store, StoreError};
use crate::policy::Membership;
use time::OffsetDateTime;

/// A project.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProjectRecord {
    pub slug: String,
    pub name: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

/// A project member: a subject, or `group:<path>`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRecord {
    pub member: String,
    pub role: String,
    pub added_by: String,
    pub added_at: OffsetDateTime,
}

/// What a change of membership did.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    /// Removing someone who is no member.
    NotAMember,
    /// Refused: the project would have no owner left.
    LastOwner,
    /// There is no such project.
    NoProject,
}

impl Store {
    /// The caller's project memberships; `member_keys` are `user:<sub>` and `group:<path>` per
    /// group (members live in those two key spaces, so no subject can pose as a group).
    pub async fn memberships(&self, member_keys: &[String]) -> Result<Vec<Membership>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT project, role FROM project_members WHERE member = ANY($1) ORDER BY project, role",
        )
        .bind(member_keys)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(project, role)| Membership { project, role })
            .collect())
    }

    /// Creates a project with `creator` as its owner; `None` when the slug is taken.
    pub async fn create_project(
        &self,
        slug: &str,
        name: &str,
        creator: &str,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        let mut tx = self.db.begin().await?;
        let project: Option<ProjectRecord> = sqlx::query_as(
            "INSERT INTO projects (slug, name, created_by) VALUES ($1, $2, $3)
             ON CONFLICT (slug) DO NOTHING
             RETURNING slug, name, created_by, created_at",
        )
        .bind(slug)
        .bind(name)
        .bind(creator)
        .fetch_optional(&mut tx)
        .await?;
        if project.is_some() {
            sqlx::query("INSERT INTO project_members (project, member, role, added_by) VALUES ($1, 'user:' || $2, 'owner', $2)")
                .bind(slug)
                .bind(creator)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(project)
    }

    /// The project `slug`.
    pub async fn project(&self, slug: &str) -> Result<Option<ProjectRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT slug, name, created_by, created_at FROM projects WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.db)
        .await?)
    }

    /// Projects with these slugs, or every project (storage admins).
    pub async fn projects(
        &self,
        slugs: &[String],
        all: bool,
    ) -> Result<Vec<ProjectRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT slug, name, created_by, created_at FROM projects WHERE $2 OR slug = ANY($1) ORDER BY slug LIMIT 1000",
        )
        .bind(slugs)
        .bind(all)
        .fetch_all(&self.db)
        .await?)
    }

    /// The members of `slug`.
    pub async fn members(&self, slug: &str) -> Result<Vec<MemberRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT member, role, added_by, added_at FROM project_members WHERE project = $1 ORDER BY member",
        )
        .bind(slug)
        .fetch_all(&self.db)
        .await?)
    }

    /// Adds `member` (`user:<sub>` or `group:<path>`) to `slug` with `role`, or changes their
    /// role; refuses to demote the last owner.
    pub async fn put_member(
        &self,
        slug: &str,
        member: &str,
        role: &str,
        by: &str,
    ) -> Result<MemberChange, StoreError> {
        let mut tx = self.db.begin().await?;
        // Serialise membership changes of one project, so "the last owner" stays true.
        if !lock_project(&mut tx, slug).await? {
            return Ok(MemberChange::NoProject);
        }
        if role != "owner" && self.is_last_owner(&mut tx, slug, member).await? {
            return Ok(MemberChange::LastOwner);
        }
        sqlx::query(
            "INSERT INTO project_members (project, member, role, added_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project, member) DO UPDATE SET role = EXCLUDED.role, added_by = EXCLUDED.added_by, added_at = now()",
        )
        .bind(slug)
        .bind(member)
        .bind(role)
        .bind(by)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(MemberChange::Done)
    }

    /// Removes `member` from `slug`, unless they are its last owner.
    pub async fn remove_member(
        &self,
        slug: &str,
        member: &str,
    ) -> Result<MemberChange, StoreError> {
        let mut tx = self.db.begin().await?;
        if !lock_project(&mut tx, slug).await? {
            return Ok(MemberChange::NoProject);
        }
        if self.is_last_owner(&mut tx, slug, member).await? {
            return Ok(MemberChange::LastOwner);
        }
        let removed = sqlx::query("DELETE FROM project_members WHERE project = $1 AND member = $2")
            .bind(slug)
            .bind(member)
            .execute(&mut tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(if removed == 0 {
            MemberChange::NotAMember
        } else {
            MemberChange::Done
        })
    }

    async fn is_last_owner(
        &self,
        tx: &mut super::Tx,
        slug: &str,
        member: &str,
    ) -> Result<bool, StoreError> {
        let (is_owner, owners): (bool, i64) = sqlx::query_as(
            "SELECT coalesce(bool_or(member = $2), false), count(*) FROM project_members WHERE project = $1 AND role = 'owner'",
        )
        .bind(slug)
        .bind(member)
        .fetch_one(tx)
        .await?;
        Ok(is_owner && owners == 1)
    }
}

/// Locks project `slug` until the transaction ends; whether it exists.
async fn lock_project(tx: &mut super::Tx, slug: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM projects WHERE slug = $1 FOR UPDATE")
            .bind(slug)
            .fetch_optional(tx)
            .await?
            .is_some(),
    )
}
