//! The control plane's API errors and the one place they become `tonic::Status`, so every RPC
//! reports the same code for the same problem and clients can act on field violations.

use backflow_connector_core::names::abbreviated_to;
use backflow_connector_core::quoted;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Longest status message sent, in bytes. Messages quote user values briefly ([`quoted`]);
/// this is the guard for one that still quoted something huge (a connector's or a driver's
/// message), so a status never carries a megabyte back.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Longest description of one field violation, in bytes; see [`MAX_MESSAGE_BYTES`].
const MAX_DESCRIPTION_BYTES: usize = 1024;

use crate::store::StoreError;

/// A field of a request that is wrong, named by its path in the request (`sync.primary_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request message.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; every wrong field is listed.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named resource does not exist.
    #[error("{kind} {} not found", quoted(id))]
    NotFound {
        /// `connection`, `sync` or `run`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A resource with that name exists already.
    #[error("{kind} {} already exists", quoted(id))]
    AlreadyExists {
        /// `connection` or `sync`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The system is not in a state that allows the call (a paused sync, a used connection).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A worker reported on a lease it no longer holds.
    #[error(
        "the lease of run `{run_id}` is no longer held by this attempt (expired or re-granted)"
    )]
    StaleLease {
        /// The run.
        run_id: String,
    },
    /// The store could not be reached; the call may be retried.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt state.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            StoreError::AlreadyExists { kind, id } => ApiError::AlreadyExists { kind, id },
            StoreError::FailedPrecondition(message) => ApiError::FailedPrecondition(message),
            StoreError::StaleLease { run_id } => ApiError::StaleLease { run_id },
            e if e.is_retryable() => ApiError::Unavailable(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let message = abbreviated_to(&e.to_string(), MAX_MESSAGE_BYTES).into_owned();
        match e {
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(
                        abbreviated_to(&v.field, MAX_DESCRIPTION_BYTES),
                        abbreviated_to(&v.description, MAX_DESCRIPTION_BYTES),
                    );
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::NotFound { .. } => Status::not_found(message),
            ApiError::AlreadyExists { .. } => Status::already_exists(message),
            ApiError::FailedPrecondition(_) | ApiError::StaleLease { .. } => {
                Status::failed_precondition(message)
            }
            ApiError::Unavailable(_) => Status::unavailable(message),
            ApiError::Internal(_) => Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations_in_rich_details() {
        let status: Status = ApiError::InvalidArgument(vec![
            FieldViolation::new("sync.primary_key", "must name at least one column"),
            FieldViolation::new("sync.source.query", "must not be empty"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["sync.primary_key", "sync.source.query"]);
        assert!(status.message().contains("must name at least one column"));
    }

    #[test]
    fn statuses_never_carry_a_huge_value() {
        let huge = "x".repeat(1 << 20);
        let status: Status = ApiError::NotFound {
            kind: "run",
            id: huge.clone(),
        }
        .into();
        assert!(status.message().len() < 400, "{}", status.message().len());
        assert!(
            status.message().contains("1048576 bytes"),
            "{}",
            status.message()
        );
        // A message that quoted a value whole is still cut, as are violation descriptions.
        let status: Status = ApiError::FailedPrecondition(huge.clone()).into();
        assert!(status.message().len() <= MAX_MESSAGE_BYTES + 3);
        let status: Status = ApiError::invalid("sync.source.query", huge).into();
        assert!(status.message().len() <= MAX_MESSAGE_BYTES + 3);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert!(bad.field_violations[0].description.len() <= MAX_DESCRIPTION_BYTES + 3);
    }

    #[test]
    fn stale_lease_is_failed_precondition() {
        let status: Status = ApiError::StaleLease {
            run_id: "r1".into(),
        }
        .into();
        assert_eq!(status.code(), Code::FailedPrecondition);
    }
}
