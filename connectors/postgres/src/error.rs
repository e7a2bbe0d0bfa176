//! The one place where driver errors become [`ConnectorError`]s.
//!
//! The engine decides between retrying a run, rejecting a row and asking a human from the
//! error kind and retryable flag alone, so every sqlx error of this crate goes through
//! [`classify`]. The database's own message and SQLSTATE are kept; details (which may quote
//! row values) are not.

use backflow_connector_core::{ConnectorError, ErrorKind};
use sqlx::postgres::PgDatabaseError;

/// The SQLSTATE of a database error, if `e` is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .map(PgDatabaseError::code),
        _ => None,
    }
}

/// Whether `e` is about particular rows (a value, a constraint, a key met twice), so that
/// splitting the batch can isolate the offending rows.
pub fn is_row_level(e: &sqlx::Error) -> bool {
    sqlstate(e).is_some_and(is_row_level_code)
}

fn is_row_level_code(code: &str) -> bool {
    // 22: data exception (bad value, failed cast); 23: integrity constraint violation;
    // 21000: the same key twice in one statement; 54000: a value too large for an index row.
    code.starts_with("22") || code.starts_with("23") || code == "21000" || code == "54000"
}

/// Whether `e` means the connection is unusable, so nothing more may be tried on it.
pub(crate) fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => {
            sqlstate(e).is_some_and(|c| kind_of(c).0 == ErrorKind::Connectivity)
        }
        _ => false,
    }
}

/// The kind of error a SQLSTATE stands for, and whether a retry of the run may succeed.
fn kind_of(code: &str) -> (ErrorKind, bool) {
    match code {
        "28P01" | "28000" => (ErrorKind::Auth, false),
        "42501" | "25006" => (ErrorKind::Permission, false),
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
        "57P01" | "57P02" | "57P03" | "53300" => (ErrorKind::Connectivity, true),
        // serialization_failure, deadlock_detected, query_canceled (statement timeout), lock
        // not available: transient, but not the connection's fault.
        "40001" | "40P01" | "57014" | "55P03" => (ErrorKind::Internal, true),
        "3D000" | "3F000" => (ErrorKind::NotFound, false),
        c if c.starts_with("08") => (ErrorKind::Connectivity, true),
        c if c.starts_with("42") => (ErrorKind::Query, false),
        c if is_row_level_code(c) => (ErrorKind::Data, false),
        // insufficient resources (disk full, out of memory): may pass later.
        c if c.starts_with("53") => (ErrorKind::Internal, true),
        _ => (ErrorKind::Internal, false),
    }
}

/// Turns a sqlx error into a [`ConnectorError`]: SQLSTATE-based kind, the database's message,
/// `with_code(sqlstate)` and the column the database names, if any.
pub fn classify(e: sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => {
                let (kind, retryable) = kind_of(pg.code());
                let mut message = pg.message().to_string();
                if let Some(hint) = pg.hint() {
                    message = format!("{message} (hint: {hint})");
                }
                let mut out = ConnectorError::new(kind, message)
                    .with_code(pg.code())
                    .with_retryable(retryable);
                if let Some(column) = pg.column() {
                    out = out.with_column(column);
                }
                out
            }
            None => ConnectorError::internal(db.message().to_string()),
        },
        sqlx::Error::Io(io) => ConnectorError::connectivity(format!("connection failed: {io}")),
        sqlx::Error::Tls(tls) => ConnectorError::connectivity(format!("tls failed: {tls}")),
        sqlx::Error::PoolTimedOut => {
            ConnectorError::connectivity("timed out waiting for a connection")
        }
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ConnectorError::connectivity("the connection was closed")
        }
        // A protocol violation mid-stream almost always means the connection broke under us.
        sqlx::Error::Protocol(message) => {
            ConnectorError::connectivity(format!("protocol error: {message}"))
        }
        sqlx::Error::Configuration(inner) => {
            ConnectorError::config("url", format!("invalid connection settings: {inner}"))
        }
        other => ConnectorError::internal(other.to_string()),
    }
}

/// Like [`classify`] but with the message prefixed by what was being done.
pub(crate) fn classify_during(what: &str) -> impl FnOnce(sqlx::Error) -> ConnectorError + '_ {
    move |e| classify(e).context(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        assert_eq!(kind_of("28P01"), (ErrorKind::Auth, false));
        assert_eq!(kind_of("28000"), (ErrorKind::Auth, false));
        assert_eq!(kind_of("42501"), (ErrorKind::Permission, false));
        assert_eq!(kind_of("42601"), (ErrorKind::Query, false));
        assert_eq!(kind_of("42P01"), (ErrorKind::Query, false));
        assert_eq!(kind_of("08006"), (ErrorKind::Connectivity, true));
        assert_eq!(kind_of("57P01"), (ErrorKind::Connectivity, true));
        assert_eq!(kind_of("23505"), (ErrorKind::Data, false));
        assert_eq!(kind_of("22P02"), (ErrorKind::Data, false));
        assert!(is_row_level_code("23502"));
        assert!(!is_row_level_code("42703"));
    }

    #[test]
    fn io_errors_are_retryable_connectivity() {
        let e = classify(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        assert_eq!(e.kind(), ErrorKind::Connectivity);
        assert!(e.is_retryable());
    }
}
