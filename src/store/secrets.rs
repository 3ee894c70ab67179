//! The broker's own secrets, kept in the database so that every replica shares them.

use super::{Store, StoreError};

impl Store {
    /// The secret called `name`, made of `len` random bytes the first time any replica asks.
    pub async fn secret(&self, name: &str, len: usize) -> Result<Vec<u8>, StoreError> {
        let mut fresh = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut fresh)
            .map_err(|_| StoreError::Other("no randomness for a new secret".into()))?;
        sqlx::query(
            "INSERT INTO broker_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh)
        .execute(&self.db)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM broker_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db)
            .await?;
        if value.len() != len {
            return Err(StoreError::Other(format!(
                "secret {name:?} holds {} bytes, not {len}",
                value.len()
            )));
        }
        Ok(value)
    }
}
