//! Why a leased run could not start or did not finish, in the shape `FailRun` reports.
//!
//! The control plane decides from `retryable` alone whether to queue another attempt, so every
//! failure is classified here once: a broken definition is final, a lost connection is not.

use backflow_connector_core::ConnectorError;
use backflow_proto::v1 as pb;

use backflow_engine::EngineError;

/// Code of a run the user cancelled.
pub(crate) const CANCELLED: &str = "cancelled";
/// Code of a run the worker handed back because it is shutting down.
pub(crate) const WORKER_SHUTDOWN: &str = "worker_shutdown";

/// A lease whose content cannot be run as it is.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The sync definition in the lease is incomplete or inconsistent.
    #[error("invalid sync definition in `{field}`: {message}")]
    InvalidSync {
        /// The field of the sync at fault (`destination.mode`, `primary_key`, …).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A lease field outside the sync (run name, connections, snapshot) is malformed.
    #[error("invalid lease: `{field}` {message}")]
    InvalidLease {
        /// The lease field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The source connection's config was refused by its connector.
    #[error("source connection: {0}")]
    Source(#[source] ConnectorError),
    /// The destination connection's config was refused by its connector.
    #[error("destination connection: {0}")]
    Destination(#[source] ConnectorError),
    /// The snapshot store could not be opened.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl LeaseError {
    pub(crate) fn invalid_sync(field: impl Into<String>, message: impl Into<String>) -> Self {
        LeaseError::InvalidSync {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_lease(field: impl Into<String>, message: impl Into<String>) -> Self {
        LeaseError::InvalidLease {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A stable machine-readable code, the same vocabulary as [`EngineError::code`].
    pub(crate) fn code(&self) -> &'static str {
        match self {
            LeaseError::InvalidSync { .. } => "invalid_definition",
            LeaseError::InvalidLease { .. } => "invalid_lease",
            LeaseError::Source(_) => "source_error",
            LeaseError::Destination(_) => "destination_error",
            LeaseError::Engine(e) => e.code(),
        }
    }

    /// Whether another attempt, perhaps on another worker, may succeed unchanged.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            LeaseError::InvalidSync { .. } | LeaseError::InvalidLease { .. } => false,
            LeaseError::Source(e) | LeaseError::Destination(e) => e.is_retryable(),
            LeaseError::Engine(e) => e.is_retryable(),
        }
    }
}

/// What `FailRun` reports about an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunFailure {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl RunFailure {
    /// The user cancelled the run: final.
    pub(crate) fn cancelled() -> Self {
        Self {
            code: CANCELLED.into(),
            message: "the run was cancelled".into(),
            retryable: false,
        }
    }

    /// The worker is stopping: another worker should take the run at once.
    pub(crate) fn shutdown() -> Self {
        Self {
            code: WORKER_SHUTDOWN.into(),
            message: "the worker shut down before the run finished".into(),
            retryable: true,
        }
    }

    pub(crate) fn to_proto(&self) -> pb::RunError {
        pb::RunError {
            code: self.code.clone(),
            message: self.message.clone(),
            retryable: self.retryable,
        }
    }
}

impl From<&LeaseError> for RunFailure {
    fn from(e: &LeaseError) -> Self {
        Self {
            code: e.code().into(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

impl From<&EngineError> for RunFailure {
    fn from(e: &EngineError) -> Self {
        Self {
            code: e.code().into(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}
