//! Store failures, split by what the caller should do about them.

/// A database failure.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or went away: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Two buckets' backend locations would overlap (SQLSTATE 23P01, the database's own check).
    #[error("backend location in use: {0}")]
    Overlap(String),
    /// A row names something that does not exist (SQLSTATE 23503, a foreign key).
    #[error("missing reference: {0}")]
    MissingReference(String),
    /// The database refused a value (SQLSTATE class 22: a NUL byte, a bad encoding, a number
    /// out of range): the input should have been refused before; this request alone fails.
    #[error("value refused by the database: {0}")]
    BadValue(String),
    /// A row's time falls on a day the partitioned audit has no partition for yet (SQLSTATE
    /// 23514, "no partition of relation … found for row"): make it and insert again.
    #[error("no partition for the row: {0}")]
    MissingPartition(String),
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
            E::Database(db) if db.code().as_deref() == Some("23P01") => {
                Self::Overlap(err.to_string())
            }
            E::Database(db) if db.code().as_deref() == Some("23503") => {
                Self::MissingReference(err.to_string())
            }
            E::Database(db)
                if db.code().as_deref() == Some("23514")
                    && db.message().starts_with("no partition of relation") =>
            {
                Self::MissingPartition(err.to_string())
            }
            E::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                Self::BadValue(err.to_string())
            }
            // A NUL byte in a text parameter is refused by the driver or the server's encoding
            // check (class 22 above), depending on where it is found.
            E::Encode(_) => Self::BadValue(err.to_string()),
            _ => Self::Other(err.to_string()),
        }
    }
}
