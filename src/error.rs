//! The one error type of the domain layer. The API renders it as
//! `application/problem+json`; the CLI prints it with the same field list.
//! Storage errors come in through `From<StoreError>` for the generic cases;
//! what a taken key means (a name used twice …) each service says itself
//! (`OnDuplicate`).

use crate::store::{StoreError, Unavailable};
use serde::Serialize;

/// A problem with one input field, named as the API names it (`auth.secret`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("a valid API token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// The client took too long to send its request.
    #[error("{0}")]
    Timeout(String),
    /// The database takes no writes now (disk full …): try again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(Unavailable),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(what),
            // A key the service did not expect to be taken (it maps those it does).
            e @ StoreError::Duplicate { .. } => Error::Conflict(e.to_string()),
            StoreError::Unavailable(u) => Error::Unavailable(u),
            StoreError::Database(e) => Error::Internal(anyhow::Error::new(e).context("database")),
            StoreError::Internal(e) => Error::Internal(e),
        }
    }
}

/// What a taken unique key means to the service that wrote it.
pub trait OnDuplicate<T> {
    /// A taken key becomes `error` (e.g. a field error naming the name);
    /// any other storage error converts as usual.
    fn on_duplicate(self, error: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> OnDuplicate<T> for Result<T, StoreError> {
    fn on_duplicate(self, error: impl FnOnce() -> Error) -> Result<T> {
        match self {
            Err(StoreError::Duplicate { .. }) => Err(error()),
            r => r.map_err(Error::from),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors so that one request reports all of them at once.
#[derive(Default, Debug)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Keeps the value if it parsed, records the problem otherwise.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(m) => {
                self.add(field, m);
                None
            }
        }
    }

    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}
