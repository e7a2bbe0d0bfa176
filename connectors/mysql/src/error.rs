//! The one place where driver errors become [`ConnectorError`]s.
//!
//! MySQL and MariaDB identify errors by a number and a SQLSTATE; the number is the more
//! precise (many data errors carry the generic `HY000`), so classification looks at both. The
//! database's own message is kept, with the column it names, so a rejected row says what the
//! server said.

use backflow_connector_core::{ConnectorError, ErrorKind};
use sqlx::mysql::MySqlDatabaseError;

/// The server's error number and SQLSTATE, if `e` is a database error.
pub(crate) fn database_code(e: &sqlx::Error) -> Option<(u16, String)> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(|m| (m.number(), m.code().unwrap_or("HY000").to_string())),
        _ => None,
    }
}

/// Error numbers that are about particular rows although their SQLSTATE is generic.
const ROW_LEVEL_NUMBERS: &[u16] = &[
    1048, // column cannot be null
    1062, // duplicate entry
    1264, // out of range value
    1265, // data truncated
    1292, // incorrect date/time value
    1364, // field has no default value
    1366, // incorrect integer/string value
    1367, // illegal double value
    1406, // data too long
    1411, // incorrect value for function
    1451, // foreign key: row is referenced
    1452, // foreign key: parent row missing
    1690, // value out of range in an expression
    3140, // MySQL: invalid JSON text
    3819, // MySQL: check constraint violated
    4025, // MariaDB: CONSTRAINT … failed
];

/// Whether a (number, SQLSTATE) pair is about particular rows, so that splitting the batch
/// can isolate them.
fn is_row_level_code(number: u16, sqlstate: &str) -> bool {
    ROW_LEVEL_NUMBERS.contains(&number) || sqlstate.starts_with("22") || sqlstate.starts_with("23")
}

/// Whether `e` is about particular rows (a value, a constraint, a key met twice).
pub(crate) fn is_row_level(e: &sqlx::Error) -> bool {
    database_code(e).is_some_and(|(n, s)| is_row_level_code(n, &s))
}

/// The kind of error a server error stands for, and whether a retry of the run may succeed.
fn kind_of(number: u16, sqlstate: &str) -> (ErrorKind, bool) {
    match number {
        1045 | 1698 | 1251 => (ErrorKind::Auth, false),
        1044 | 1142 | 1143 | 1227 | 1370 | 1792 => (ErrorKind::Permission, false),
        1049 | 1146 => (ErrorKind::NotFound, false),
        // Too many connections, shutdown in progress, connection killed, network errors.
        1040 | 1053 | 1077 | 1152 | 1153 | 1154 | 1155 | 1156 | 1157 | 1158 | 1159 | 1160
        | 1161 | 1927 | 2002 | 2003 | 2006 | 2013 => (ErrorKind::Connectivity, true),
        // Deadlock, lock wait timeout, statement timeouts, record changed: transient.
        1205 | 1213 | 1020 | 1969 | 3024 => (ErrorKind::Internal, true),
        // Disk full, out of memory: may pass later.
        1021 | 1037 | 1038 | 1114 | 1135 => (ErrorKind::Internal, true),
        1054 => (ErrorKind::Schema, false),
        n if is_row_level_code(n, sqlstate) => (ErrorKind::Data, false),
        _ if sqlstate.starts_with("08") => (ErrorKind::Connectivity, true),
        _ if sqlstate.starts_with("42") => (ErrorKind::Query, false),
        _ => (ErrorKind::Internal, false),
    }
}

/// The column a server message names: `for column 'c'`, ``for column `db`.`t`.`c` ``,
/// `Column 'c' cannot be null`, `Field 'c' doesn't have a default value`.
pub(crate) fn column_in_message(message: &str) -> Option<String> {
    for marker in ["for column ", "Column ", "Field "] {
        let Some(start) = message.find(marker) else {
            continue;
        };
        let rest = &message[start + marker.len()..];
        let quote = rest.chars().next()?;
        if quote != '\'' && quote != '`' {
            continue;
        }
        // A qualified name `db`.`t`.`c`: the column is the last quoted part.
        let mut parts = Vec::new();
        let mut rest = rest;
        while let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '`') {
            let body = &rest[1..];
            let end = body.find(q)?;
            parts.push(body[..end].to_string());
            rest = &body[end + 1..];
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None => break,
            }
        }
        return parts.pop();
    }
    None
}

/// Turns a sqlx error into a [`ConnectorError`]: kind from the error number and SQLSTATE,
/// the database's message, `with_code("number/SQLSTATE")` and the column it names, if any.
pub(crate) fn classify(e: sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
            Some(m) => {
                let sqlstate = m.code().unwrap_or("HY000");
                let (kind, retryable) = kind_of(m.number(), sqlstate);
                let mut out = ConnectorError::new(kind, m.message().to_string())
                    .with_code(format!("{}/{sqlstate}", m.number()))
                    .with_retryable(retryable);
                if let Some(column) = column_in_message(m.message()) {
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
    fn numbers_map_to_kinds() {
        assert_eq!(kind_of(1045, "28000"), (ErrorKind::Auth, false));
        assert_eq!(kind_of(1142, "42000"), (ErrorKind::Permission, false));
        assert_eq!(kind_of(1146, "42S02"), (ErrorKind::NotFound, false));
        assert_eq!(kind_of(1064, "42000"), (ErrorKind::Query, false));
        assert_eq!(kind_of(1213, "40001"), (ErrorKind::Internal, true));
        assert_eq!(kind_of(1040, "08004"), (ErrorKind::Connectivity, true));
        assert_eq!(kind_of(4025, "23000"), (ErrorKind::Data, false));
        assert_eq!(kind_of(1366, "HY000"), (ErrorKind::Data, false));
        assert!(is_row_level_code(1406, "22001"));
        assert!(!is_row_level_code(1054, "42S22"));
    }

    #[test]
    fn finds_the_column_in_messages() {
        assert_eq!(
            column_in_message("Data too long for column 'name' at row 1").as_deref(),
            Some("name")
        );
        assert_eq!(
            column_in_message("Incorrect datetime value: 'x' for column `db`.`t`.`at` at row 1")
                .as_deref(),
            Some("at")
        );
        assert_eq!(
            column_in_message("Column 'id' cannot be null").as_deref(),
            Some("id")
        );
        assert_eq!(
            column_in_message("CONSTRAINT `c` failed for `db`.`t`"),
            None
        );
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
