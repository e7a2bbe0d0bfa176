//! The one place where driver and server errors become [`ConnectorError`]s.
//!
//! The engine decides between retrying a run, rejecting a row and asking a human from the
//! error kind and retryable flag alone, so every driver error of this crate goes through
//! [`classify`]. The server's own message and code name are kept.

use backflow_connector_core::{ConnectorError, ErrorKind};
use mongodb::error::{Error, ErrorKind as DriverKind};

/// Server error codes that mean "try again later": the node is stepping down, shutting down,
/// recovering or unreachable, or an operation timed out or conflicted. From the server's
/// `error_codes.yml` (the retryable-writes list plus timeouts and write conflicts).
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    112,   // WriteConflict
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The kind of error a server code stands for, and whether a retry of the run may succeed.
pub(crate) fn kind_of_code(code: i32) -> (ErrorKind, bool) {
    match code {
        c if TRANSIENT_CODES.contains(&c) => (ErrorKind::Connectivity, true),
        18 => (ErrorKind::Auth, false), // AuthenticationFailed
        13 | 8000 => (ErrorKind::Permission, false), // Unauthorized, AtlasError (quota/permission)
        26 => (ErrorKind::NotFound, false), // NamespaceNotFound
        // BadValue, TypeMismatch, DuplicateKey, BSONObjectTooLarge, document validation.
        2 | 14 | 11000 | 10334 | 121 => (ErrorKind::Data, false),
        _ => (ErrorKind::Internal, false),
    }
}

/// The kind of a FerretDB error from the SQLSTATE of its PostgreSQL backend, when it carries
/// one. FerretDB 1.x reports every backend failure as InternalError (code 1) with PostgreSQL's
/// message inside; without this, a refused login would read as a bug and a backend session
/// that was terminated or lost (SQLSTATE 57P01-57P03, class 08) or a serialization conflict
/// (40001, 40P01) would fail the run for good instead of being retried.
fn backend_sqlstate_kind(message: &str) -> Option<(ErrorKind, bool)> {
    let (_, rest) = message.split_once("SQLSTATE ")?;
    let state = rest.get(..5)?;
    match state {
        "28P01" | "28000" => Some((ErrorKind::Auth, false)),
        "57P01" | "57P02" | "57P03" => Some((ErrorKind::Connectivity, true)),
        s if s.starts_with("08") => Some((ErrorKind::Connectivity, true)),
        "40001" | "40P01" => Some((ErrorKind::Internal, true)),
        _ => None,
    }
}

/// Turns a driver error into a [`ConnectorError`] carrying the server's message and code.
pub(crate) fn classify(e: Error) -> ConnectorError {
    let labels_transient =
        e.contains_label("RetryableWriteError") || e.contains_label("TransientTransactionError");
    match *e.kind {
        DriverKind::Command(c) => {
            let (kind, retryable) =
                backend_sqlstate_kind(&c.message).unwrap_or_else(|| kind_of_code(c.code));
            let message = if c.code_name.is_empty() {
                c.message
            } else {
                format!("{} ({})", c.message, c.code_name)
            };
            ConnectorError::new(kind, message)
                .with_code(c.code.to_string())
                .with_retryable(retryable || labels_transient)
        }
        DriverKind::Authentication { message, .. } => {
            ConnectorError::new(ErrorKind::Auth, format!("authentication failed: {message}"))
        }
        DriverKind::Io(io) => ConnectorError::connectivity(format!("connection failed: {io}")),
        DriverKind::ServerSelection { message, .. } => {
            ConnectorError::connectivity(format!("no usable server: {message}"))
        }
        DriverKind::DnsResolve { message, .. } => {
            ConnectorError::connectivity(format!("dns lookup failed: {message}"))
        }
        DriverKind::ConnectionPoolCleared { message, .. } => {
            ConnectorError::connectivity(format!("connection pool cleared: {message}"))
        }
        DriverKind::InvalidArgument { message, .. } => {
            ConnectorError::config("url", format!("invalid connection settings: {message}"))
        }
        DriverKind::InvalidTlsConfig { message, .. } => {
            ConnectorError::config("url", format!("invalid TLS settings: {message}"))
        }
        DriverKind::IncompatibleServer { message, .. } => {
            ConnectorError::new(ErrorKind::Config, format!("incompatible server: {message}"))
        }
        other => ConnectorError::internal(other.to_string()).with_retryable(labels_transient),
    }
}

/// Like [`classify`] but with the message prefixed by what was being done.
pub(crate) fn classify_during(what: &str) -> impl FnOnce(Error) -> ConnectorError + '_ {
    move |e| classify(e).context(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(kind_of_code(18), (ErrorKind::Auth, false));
        assert_eq!(kind_of_code(13), (ErrorKind::Permission, false));
        assert_eq!(kind_of_code(11000), (ErrorKind::Data, false));
        assert_eq!(kind_of_code(10107), (ErrorKind::Connectivity, true));
        assert_eq!(kind_of_code(91), (ErrorKind::Connectivity, true));
        assert_eq!(kind_of_code(59), (ErrorKind::Internal, false));
    }

    #[test]
    fn ferretdb_backend_states_map_to_kinds() {
        // Messages as FerretDB 1.24 sends them (trimmed), with PostgreSQL's SQLSTATE inside.
        let terminated = "[msg_ping.go:55 handler.(*Handler).MsgPing] FATAL: terminating \
                          connection due to administrator command (SQLSTATE 57P01)";
        assert_eq!(
            backend_sqlstate_kind(terminated),
            Some((ErrorKind::Connectivity, true))
        );
        let refused = "FATAL: password authentication failed for user \"x\" (SQLSTATE 28P01)";
        assert_eq!(
            backend_sqlstate_kind(refused),
            Some((ErrorKind::Auth, false))
        );
        let lost = "unexpected EOF (SQLSTATE 08006)";
        assert_eq!(
            backend_sqlstate_kind(lost),
            Some((ErrorKind::Connectivity, true))
        );
        let conflict = "could not serialize access (SQLSTATE 40001)";
        assert_eq!(
            backend_sqlstate_kind(conflict),
            Some((ErrorKind::Internal, true))
        );
        // A constraint violation stays the server code's business; no SQLSTATE, no opinion.
        assert_eq!(
            backend_sqlstate_kind("duplicate key (SQLSTATE 23505)"),
            None
        );
        assert_eq!(backend_sqlstate_kind("E11000 duplicate key error"), None);
        assert_eq!(backend_sqlstate_kind("truncated (SQLSTATE 57"), None);
    }
}
