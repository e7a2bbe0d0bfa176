//! The client's one error type. A failed RPC keeps the server's status code and, for
//! `INVALID_ARGUMENT`, every field violation of the `BadRequest` rich detail, so a caller can
//! show "sync.primary_key: must name at least one column" next to the right input.

use std::fmt;

use backflow_proto::v1;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// One field of a request that the server refused, named by its path in the request
/// (`sync.primary_key`, `sync.source.query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request message.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.description)
        } else {
            write!(f, "{}: {}", self.field, self.description)
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server (or the transport, for a connection lost mid-call) answered with an error
    /// status.
    #[error("{}", describe_status(*.code, .message, .violations))]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
        /// The fields at fault, from the `BadRequest` detail; empty when the server sent none.
        violations: Vec<FieldViolation>,
    },
    /// The control plane did not accept a connection when the client connected.
    #[error("cannot reach the control plane at {address}: {reason}")]
    Connect {
        /// The address the client was built with.
        address: String,
        /// The innermost transport error (`Connection refused (os error 111)`).
        reason: String,
    },
    /// A setting given to the builder cannot be used.
    #[error("invalid client setting `{setting}`: {reason}")]
    InvalidSetting {
        /// Which setting (`address`, `token`, `ca_certificate`, `BACKFLOW_CA_CERT`).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The server's answer lacked a field the API promises (a version mismatch or a bug).
    #[error("the server answered {method} without `{field}`")]
    MissingField {
        /// The RPC.
        method: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A run that [`crate::RunHandle::wait`] followed ended failed or cancelled.
    #[error("{}", describe_run_failure(.run))]
    RunFailed {
        /// The run in its final state, with its error and counts.
        run: Box<v1::Run>,
    },
    /// The `WatchRun` stream kept ending before the run finished, more often than the retry
    /// policy allows.
    #[error("the watch of run {run} ended {attempts} times before the run finished")]
    WatchInterrupted {
        /// The run's resource name.
        run: String,
        /// How many watches were opened.
        attempts: u32,
    },
}

impl Error {
    /// The gRPC status code of the failure: the server's, `UNAVAILABLE` when the server could
    /// not be reached, `None` for failures that did not come from a call.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            Error::Connect { .. } | Error::WatchInterrupted { .. } => Some(Code::Unavailable),
            Error::InvalidSetting { .. } | Error::MissingField { .. } | Error::RunFailed { .. } => {
                None
            }
        }
    }

    /// Whether the same call may succeed later unchanged: the server or the network was
    /// unavailable. Invalid input, missing resources and failed runs are not retryable (a run
    /// already had its own attempts on the server).
    pub fn is_retryable(&self) -> bool {
        self.code() == Some(Code::Unavailable)
    }

    /// The fields the server refused; empty unless the error is an `INVALID_ARGUMENT` with
    /// a `BadRequest` detail.
    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Error::Status { violations, .. } => violations,
            _ => &[],
        }
    }

    /// The run, for [`Error::RunFailed`].
    pub fn run(&self) -> Option<&v1::Run> {
        match self {
            Error::RunFailed { run } => Some(run),
            _ => None,
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        let violations = status
            .get_details_bad_request()
            .map(|bad| {
                bad.field_violations
                    .into_iter()
                    .map(|v| FieldViolation {
                        field: v.field,
                        description: v.description,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Error::Status {
            code: status.code(),
            message: status.message().to_owned(),
            violations,
        }
    }
}

/// `invalid argument: sync.primary_key: must name at least one column`: the code in words,
/// then the violations (they say more than the message), else the message.
fn describe_status(code: Code, message: &str, violations: &[FieldViolation]) -> String {
    let words = match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by the server",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    };
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        format!("{words}: {}", list.join("; "))
    } else if message.is_empty() {
        words.to_owned()
    } else {
        format!("{words}: {message}")
    }
}

/// `run runs/… of syncs/… failed: destination_error: connection reset`.
fn describe_run_failure(run: &v1::Run) -> String {
    let state = match run.state() {
        v1::RunState::Cancelled => "was cancelled",
        v1::RunState::Failed => "failed",
        _ => "did not succeed",
    };
    match &run.error {
        Some(e) => format!(
            "run {} of {} {state}: {}: {}",
            run.name, run.sync, e.code, e.message
        ),
        None => format!("run {} of {} {state}", run.name, run.sync),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn bad_request_details_become_field_violations() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid argument: the sync is wrong",
            ErrorDetails::with_bad_request(vec![
                tonic_types::FieldViolation::new("sync.primary_key", "must name a column"),
                tonic_types::FieldViolation::new("sync.source.query", "is required"),
            ]),
        );
        let error = Error::from(status);
        assert_eq!(error.code(), Some(Code::InvalidArgument));
        assert!(!error.is_retryable());
        let fields: Vec<&str> = error
            .field_violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["sync.primary_key", "sync.source.query"]);
        assert_eq!(
            error.to_string(),
            "invalid argument: sync.primary_key: must name a column; sync.source.query: is required"
        );
    }

    #[test]
    fn plain_statuses_keep_code_and_message() {
        let error = Error::from(Status::unavailable("the state store is unavailable"));
        assert!(error.is_retryable());
        assert!(error.field_violations().is_empty());
        assert_eq!(
            error.to_string(),
            "unavailable: the state store is unavailable"
        );
        assert_eq!(
            Error::from(Status::internal("")).to_string(),
            "internal error"
        );
    }

    #[test]
    fn failed_runs_say_why() {
        let run = v1::Run {
            name: "runs/r1".into(),
            sync: "syncs/scores".into(),
            state: v1::RunState::Failed as i32,
            error: Some(v1::RunError {
                code: "source_error".into(),
                message: "table missing".into(),
                retryable: false,
            }),
            ..Default::default()
        };
        let error = Error::RunFailed { run: Box::new(run) };
        assert_eq!(
            error.to_string(),
            "run runs/r1 of syncs/scores failed: source_error: table missing"
        );
        assert_eq!(error.code(), None);
        assert_eq!(error.run().map(|r| r.name.as_str()), Some("runs/r1"));
    }
}
