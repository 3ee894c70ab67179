//! Store failures, split by what the caller should do about them.

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or went away: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken invariant (500).
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &err {
            E::Io(_)
            | E::Tls(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Protocol(_) => Self::Unavailable(err.to_string()),
            // Class 08 (connection exception), 53 (out of connections or memory), 57P0x (shutdown,
            // terminated connection), 55000 (a database not accepting connections, when connecting).
            E::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57P")
                        || c == "55000"
                }) =>
            {
                Self::Unavailable(err.to_string())
            }
            _ => Self::Other(err.to_string()),
        }
    }
}
