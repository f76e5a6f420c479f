//! What went wrong in storage, said in storage terms. The store knows rows
//! and keys, not fields or HTTP: the domain decides what a taken key means
//! (a name used twice, a repeated idempotency key).

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken: `key` names it, as the database reports it
    /// (a constraint, or the columns) or as the store knows it.
    #[error("{key} is taken")]
    Duplicate { key: String },
    /// The row to change is not there (`what` names it: `account 0192…`).
    #[error("{0} not found")]
    NotFound(String),
    /// Any other database error.
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate {
                key: d.constraint().unwrap_or(d.message()).to_string(),
            },
            _ => StoreError::Database(e),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Internal(anyhow::Error::new(e).context("writing to the SQLite database"))
    }
}
