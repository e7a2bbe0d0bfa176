//! BigQuery's failures as [`ConnectorError`]s: the kind and retryability decide what the
//! engine does, the message and `reason` (as the error code) are BigQuery's own.
//!
//! BigQuery reports an error with an HTTP status and a `reason`
//! (<https://cloud.google.com/bigquery/docs/error-messages>); the reason is what tells a
//! transient failure (`backendError`, `rateLimitExceeded`, which arrives as a 403) from a
//! permanent one (`accessDenied`, also a 403).

use backflow_connector_core::{ConnectorError, ErrorKind};
use tonic::Code;

/// Reasons that mean "try again later", whether on an API call or as a job's result
/// (Google's clients retry the same set, and re-run a job that failed with one of them).
const TRANSIENT_REASONS: &[&str] = &[
    "backendError",
    "internalError",
    "rateLimitExceeded",
    "jobRateLimitExceeded",
    "jobBackendError",
    "badGateway",
];

/// Whether a `reason` is transient.
pub(crate) fn is_transient_reason(reason: &str) -> bool {
    TRANSIENT_REASONS.contains(&reason)
}

/// The error of a REST call answered with `status` and BigQuery's error body (`reason`,
/// `message`), while doing `what`.
pub(crate) fn from_rest(
    what: &str,
    status: u16,
    reason: Option<&str>,
    message: &str,
) -> ConnectorError {
    let reason_str = reason.unwrap_or("");
    let (kind, retryable) = if is_transient_reason(reason_str) || status == 429 || status >= 500 {
        (ErrorKind::Connectivity, true)
    } else {
        match (status, reason_str) {
            (401, _) => (ErrorKind::Auth, false),
            (403, _) | (_, "accessDenied" | "billingNotEnabled" | "quotaExceeded") => {
                (ErrorKind::Permission, false)
            }
            (404, _) | (_, "notFound") => (ErrorKind::NotFound, false),
            (400, _) => (ErrorKind::Query, false),
            _ => (ErrorKind::Internal, false),
        }
    };
    let mut e = ConnectorError::new(
        kind,
        format!("BigQuery {what} failed (HTTP {status}): {message}"),
    )
    .with_retryable(retryable);
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        e = e.with_code(reason);
    }
    e
}

/// The error of a query job that finished with `errorResult` (`reason`, `message`).
pub(crate) fn from_job(job_id: &str, reason: &str, message: &str) -> ConnectorError {
    let (kind, retryable) = match reason {
        r if is_transient_reason(r) => (ErrorKind::Connectivity, true),
        "accessDenied" | "billingNotEnabled" | "quotaExceeded" => (ErrorKind::Permission, false),
        "notFound" => (ErrorKind::NotFound, false),
        "stopped" => (ErrorKind::Internal, false),
        _ => (ErrorKind::Query, false),
    };
    let mut e = ConnectorError::new(kind, format!("BigQuery job {job_id} failed: {message}"))
        .with_retryable(retryable);
    if !reason.is_empty() {
        e = e.with_code(reason);
    }
    e
}

/// Whether a Storage Read API status is worth another attempt of the same call.
pub(crate) fn is_transient_status(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
    )
}

/// Whether a Storage Read API status means the API is not available to these credentials
/// (not enabled, not permitted, not implemented), so the read falls back to REST pages.
pub(crate) fn storage_refused(code: Code) -> bool {
    matches!(code, Code::PermissionDenied | Code::Unimplemented)
}

/// The error of a Storage Read API call that failed with `status`, while doing `what`.
pub(crate) fn from_status(what: &str, status: &tonic::Status) -> ConnectorError {
    let kind = match status.code() {
        Code::Unauthenticated => ErrorKind::Auth,
        Code::PermissionDenied => ErrorKind::Permission,
        Code::NotFound => ErrorKind::NotFound,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => ErrorKind::Query,
        c if is_transient_status(c) || c == Code::Cancelled || c == Code::Unknown => {
            ErrorKind::Connectivity
        }
        _ => ErrorKind::Internal,
    };
    let retryable = kind == ErrorKind::Connectivity;
    ConnectorError::new(
        kind,
        format!(
            "BigQuery Storage {what} failed ({:?}): {}",
            status.code(),
            status.message()
        ),
    )
    .with_retryable(retryable)
    .with_code(format!("{:?}", status.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rest_errors_by_status_and_reason() {
        let e = from_rest("jobs.insert", 403, Some("rateLimitExceeded"), "slow down");
        assert_eq!(e.kind(), ErrorKind::Connectivity);
        assert!(e.is_retryable());
        let e = from_rest("jobs.insert", 403, Some("accessDenied"), "no");
        assert_eq!(e.kind(), ErrorKind::Permission);
        assert!(!e.is_retryable());
        assert_eq!(e.code(), Some("accessDenied"));
        let e = from_rest("jobs.get", 401, None, "bad token");
        assert_eq!(e.kind(), ErrorKind::Auth);
        let e = from_rest("jobs.get", 503, Some("backendError"), "x");
        assert!(e.is_retryable());
        let e = from_rest("jobs.insert", 400, Some("invalidQuery"), "Syntax error");
        assert_eq!(e.kind(), ErrorKind::Query);
        assert!(e.message().contains("Syntax error"), "{e}");
        let e = from_rest("tables.get", 404, Some("notFound"), "Not found: Table");
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn classifies_job_results() {
        let e = from_job("j1", "invalidQuery", "Unrecognized name: x");
        assert_eq!(e.kind(), ErrorKind::Query);
        assert_eq!(e.code(), Some("invalidQuery"));
        assert!(e.message().contains("Unrecognized name: x"));
        assert!(from_job("j1", "backendError", "try again").is_retryable());
    }

    #[test]
    fn classifies_storage_statuses() {
        assert!(storage_refused(Code::PermissionDenied));
        assert!(storage_refused(Code::Unimplemented));
        assert!(!storage_refused(Code::Unavailable));
        let e = from_status("ReadRows", &tonic::Status::unavailable("connection reset"));
        assert!(e.is_retryable());
        assert_eq!(e.kind(), ErrorKind::Connectivity);
        let e = from_status("ReadRows", &tonic::Status::unauthenticated("no"));
        assert_eq!(e.kind(), ErrorKind::Auth);
    }
}
