//! What can go wrong in the store, in terms the API layer and the queue can act on: a missing
//! or duplicate record, a refused state change, a stale lease, or the database itself.

/// An error of the control plane's store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What was looked up (`connection`, `sync`, `run`).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A record with this id already exists.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists {
        /// What was created (`connection`, `sync`).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The record is not in a state that allows the change (a connection still used by a
    /// sync, a sync with an active run, a finished run, a paused sync).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The lease id or attempt does not match the run's current lease, or the run is no
    /// longer running: the worker lost its lease and must not commit anything.
    #[error("the lease of run `{run_id}` is stale (expired, re-granted or finished)")]
    StaleLease {
        /// The run.
        run_id: String,
    },
    /// The database failed (connection lost, pool exhausted, constraint, …).
    #[error("store database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("store migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored value could not be read back (a JSON column that does not parse, an unknown
    /// state, a negative count).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same call may succeed if tried again: the database was unreachable, the
    /// pool was exhausted, or the database aborted the transaction for concurrency reasons.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(e) => is_retryable_sqlx(e),
            StoreError::NotFound { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::FailedPrecondition(_)
            | StoreError::StaleLease { .. }
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_) => false,
        }
    }

    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            kind,
            id: id.into(),
        }
    }

    pub(crate) fn stale(run_id: impl Into<String>) -> Self {
        StoreError::StaleLease {
            run_id: run_id.into(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

fn is_retryable_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions (08…), serialization failure, deadlock,
            // shutdown and "too many connections". SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6)
            // and their extended codes (SQLite codes are numeric and shorter than PostgreSQL's
            // five-character SQLSTATEs).
            code.starts_with("08")
                || matches!(
                    &*code,
                    "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
                )
                || (code.len() < 5 && code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_retryable());
        assert!(!StoreError::not_found("sync", "a").is_retryable());
        assert!(!StoreError::stale("r").is_retryable());
        assert!(!StoreError::Corrupt("x".into()).is_retryable());
    }
}
