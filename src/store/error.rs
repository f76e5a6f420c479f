//! What went wrong in storage, said in storage terms. The store knows rows,
//! keys and devices, not fields or HTTP: the domain decides what a taken key
//! means (a name used twice, a repeated idempotency key), and the edge how a
//! database that takes no writes is answered.

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
    /// The database takes no writes (or answers nothing) for a reason outside
    /// Herald: nothing of the failed operation was stored.
    #[error("storage unavailable: {0}")]
    Unavailable(Unavailable),
    /// Any other database error.
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why the database takes no writes now. Each clears by itself or by an
/// operator's hand (space freed, the file system remounted, the server back),
/// and Herald resumes without a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unavailable {
    /// No space left on the device (SQLITE_FULL; PostgreSQL 53100 disk_full).
    NoSpace,
    /// The files or the database are read-only (SQLITE_READONLY; PostgreSQL
    /// 25006 read_only_sql_transaction, as on a standby).
    ReadOnly,
    /// Reading or writing the files failed (SQLITE_IOERR; PostgreSQL 58030).
    Io,
    /// The database cannot be opened or reached (SQLITE_CANTOPEN; PostgreSQL
    /// 08xxx connection exceptions, 57P01–57P03 shutdown or starting, 53300;
    /// no pooled connection in time).
    Unreachable,
}

impl Unavailable {
    /// Every cause, in the order `/metrics` lists them.
    pub const ALL: [Unavailable; 4] = [
        Unavailable::NoSpace,
        Unavailable::ReadOnly,
        Unavailable::Io,
        Unavailable::Unreachable,
    ];

    /// The label in `/metrics` (`cause="no_space"`).
    pub fn label(self) -> &'static str {
        match self {
            Unavailable::NoSpace => "no_space",
            Unavailable::ReadOnly => "read_only",
            Unavailable::Io => "io_error",
            Unavailable::Unreachable => "unreachable",
        }
    }

    /// When a client may try again: a full or read-only device waits for an
    /// operator, an I/O error or a lost connection often passes sooner.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Unavailable::NoSpace | Unavailable::ReadOnly => 30,
            Unavailable::Io | Unavailable::Unreachable => 5,
        }
    }

    /// The condition of a SQLite result code (primary or extended).
    pub fn of_sqlite(code: i32) -> Option<Unavailable> {
        use rusqlite::ffi;
        match code & 0xff {
            ffi::SQLITE_FULL => Some(Unavailable::NoSpace),
            ffi::SQLITE_READONLY => Some(Unavailable::ReadOnly),
            ffi::SQLITE_IOERR => Some(Unavailable::Io),
            ffi::SQLITE_CANTOPEN => Some(Unavailable::Unreachable),
            _ => None,
        }
    }

    /// The condition of a PostgreSQL SQLSTATE.
    pub fn of_sqlstate(code: &str) -> Option<Unavailable> {
        match code {
            "53100" => Some(Unavailable::NoSpace),
            "25006" => Some(Unavailable::ReadOnly),
            "58030" => Some(Unavailable::Io),
            "53300" | "57P01" | "57P02" | "57P03" => Some(Unavailable::Unreachable),
            c if c.starts_with("08") => Some(Unavailable::Unreachable),
            _ => None,
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unavailable::NoSpace => "no space left on the data directory's device",
            Unavailable::ReadOnly => "the data directory or the database is read-only",
            Unavailable::Io => "I/O error on the data directory",
            Unavailable::Unreachable => "database unavailable",
        })
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate {
                key: d.constraint().unwrap_or(d.message()).to_string(),
            },
            sqlx::Error::Database(d) => {
                let condition = match d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    Some(pg) => Unavailable::of_sqlstate(pg.code()),
                    None => d
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .and_then(Unavailable::of_sqlite),
                };
                match condition {
                    Some(u) => StoreError::Unavailable(u),
                    None => StoreError::Database(e),
                }
            }
            // The connection to the server (PostgreSQL), or none in time.
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(Unavailable::Unreachable)
            }
            _ => StoreError::Database(e),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error().and_then(|f| Unavailable::of_sqlite(f.extended_code)) {
            Some(u) => StoreError::Unavailable(u),
            None => StoreError::Internal(anyhow::Error::new(e).context("writing to the SQLite database")),
        }
    }
}

impl StoreError {
    /// The storage condition behind this failure, if it is one.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            StoreError::Unavailable(u) => Some(*u),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_name_the_condition() {
        // Extended codes carry the primary one in their low byte.
        let ioerr_fsync = rusqlite::ffi::SQLITE_IOERR_FSYNC;
        assert_eq!(Unavailable::of_sqlite(ioerr_fsync), Some(Unavailable::Io));
        assert_eq!(
            Unavailable::of_sqlite(rusqlite::ffi::SQLITE_FULL),
            Some(Unavailable::NoSpace)
        );
        assert_eq!(
            Unavailable::of_sqlite(rusqlite::ffi::SQLITE_READONLY_DBMOVED),
            Some(Unavailable::ReadOnly)
        );
        assert_eq!(
            Unavailable::of_sqlite(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(Unavailable::Unreachable)
        );
        assert_eq!(Unavailable::of_sqlite(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE), None);
    }

    #[test]
    fn sqlstates_name_the_condition() {
        assert_eq!(Unavailable::of_sqlstate("53100"), Some(Unavailable::NoSpace));
        assert_eq!(Unavailable::of_sqlstate("25006"), Some(Unavailable::ReadOnly));
        assert_eq!(Unavailable::of_sqlstate("08006"), Some(Unavailable::Unreachable));
        assert_eq!(Unavailable::of_sqlstate("57P03"), Some(Unavailable::Unreachable));
        assert_eq!(Unavailable::of_sqlstate("23505"), None);
    }

    /// A write on a read-only connection, through either driver, is the
    /// read-only condition (as a file system remounted read-only would be).
    #[tokio::test]
    async fn a_read_only_database_is_read_only_through_both_drivers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ro.db");
        rusqlite::Connection::open(&file)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();

        let ro = rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let e = StoreError::from(ro.execute("INSERT INTO t VALUES (1)", []).unwrap_err());
        assert_eq!(e.unavailable(), Some(Unavailable::ReadOnly), "{e}");

        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let e = StoreError::from(
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&pool)
                .await
                .unwrap_err(),
        );
        assert_eq!(e.unavailable(), Some(Unavailable::ReadOnly), "{e}");
        pool.close().await;
    }
}
