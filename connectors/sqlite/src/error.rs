//! The one mapping from sqlx/SQLite failures to [`ConnectorError`] kinds.
//!
//! The engine decides from the kind alone whether to retry a run (busy, locked, I/O), reject a
//! row (constraint, type mismatch) or ask a human (syntax, schema), so every SQLite result code
//! is classified here and nowhere else.

use backflow_connector_core::{ConnectorError, ErrorKind, RowFailure};

// Primary SQLite result codes (https://www.sqlite.org/rescode.html); extended codes carry the
// primary code in their low byte.
const SQLITE_ERROR: i32 = 1;
const SQLITE_INTERNAL: i32 = 2;
const SQLITE_PERM: i32 = 3;
const SQLITE_ABORT: i32 = 4;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_NOMEM: i32 = 7;
const SQLITE_READONLY: i32 = 8;
const SQLITE_INTERRUPT: i32 = 9;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_PROTOCOL: i32 = 15;
const SQLITE_SCHEMA: i32 = 17;
const SQLITE_TOOBIG: i32 = 18;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_MISMATCH: i32 = 20;
const SQLITE_AUTH: i32 = 23;
const SQLITE_RANGE: i32 = 25;
const SQLITE_NOTADB: i32 = 26;

/// The extended result code of a database error, if `e` is one.
pub(crate) fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse().ok()),
        _ => None,
    }
}

fn primary(code: i32) -> i32 {
    code & 0xff
}

/// Whether `e` is a refusal of one row's values (constraint or type), which becomes a
/// [`RowFailure`] while the rest of the batch commits.
pub(crate) fn is_row_error(e: &sqlx::Error) -> bool {
    matches!(
        sqlite_code(e).map(primary),
        Some(SQLITE_CONSTRAINT | SQLITE_MISMATCH | SQLITE_TOOBIG | SQLITE_RANGE)
    )
}

/// The database's message for `e`, without sqlx's "error returned from database" prefix.
pub(crate) fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// A row failure carrying SQLite's own message and, for NOT NULL violations (whose message
/// names `table.column`), the column.
pub(crate) fn row_failure(row: usize, e: &sqlx::Error) -> RowFailure {
    let message = message(e);
    let column = message
        .strip_prefix("NOT NULL constraint failed: ")
        .map(|qualified| {
            qualified
                .rsplit_once('.')
                .map_or(qualified, |(_, c)| c)
                .to_string()
        });
    RowFailure {
        row,
        column,
        message,
    }
}

/// Classifies any sqlx error, keeping SQLite's message and extended result code.
pub(crate) fn from_sqlx(e: &sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(_) => {
            let code = sqlite_code(e).unwrap_or(SQLITE_ERROR);
            let kind = match primary(code) {
                SQLITE_CONSTRAINT | SQLITE_MISMATCH | SQLITE_TOOBIG | SQLITE_RANGE => {
                    ErrorKind::Data
                }
                SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_FULL | SQLITE_PROTOCOL
                | SQLITE_CANTOPEN | SQLITE_NOMEM | SQLITE_INTERRUPT | SQLITE_ABORT => {
                    ErrorKind::Connectivity
                }
                SQLITE_PERM | SQLITE_READONLY | SQLITE_AUTH => ErrorKind::Permission,
                SQLITE_CORRUPT | SQLITE_NOTADB | SQLITE_INTERNAL => ErrorKind::Internal,
                SQLITE_SCHEMA => ErrorKind::Schema,
                // SQLITE_ERROR: syntax errors, unknown tables and columns.
                _ => ErrorKind::Query,
            };
            ConnectorError::new(kind, message(e)).with_code(code.to_string())
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            ConnectorError::new(ErrorKind::NotFound, e.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ConnectorError::connectivity(e.to_string()),
        sqlx::Error::Configuration(_) => ConnectorError::new(ErrorKind::Config, e.to_string()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::Encode(_) => {
            ConnectorError::new(ErrorKind::Data, e.to_string())
        }
        sqlx::Error::RowNotFound => ConnectorError::new(ErrorKind::NotFound, e.to_string()),
        _ => ConnectorError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_database_errors() {
        let e = sqlx::Error::Io(std::io::Error::other("reset"));
        let c = from_sqlx(&e);
        assert_eq!(c.kind(), ErrorKind::Connectivity);
        assert!(c.is_retryable());
        assert!(!is_row_error(&e));
        assert_eq!(
            from_sqlx(&sqlx::Error::PoolTimedOut).kind(),
            ErrorKind::Connectivity
        );
    }
}
