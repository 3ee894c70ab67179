//! Projects and their members.

use super::{Store, StoreError};
use crate::policy::Membership;

impl Store {
    /// The caller's project memberships; `member_keys` are the subject and `group:<path>` per group.
    pub async fn memberships(&self, member_keys: &[String]) -> Result<Vec<Membership>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT project, role FROM project_members WHERE member = ANY($1) ORDER BY project, role",
        )
        .bind(member_keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(project, role)| Membership { project, role })
            .collect())
    }
}
