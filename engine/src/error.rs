//! Why a run failed, in terms the control plane and the user can act on.

use backflow_connector_core::ConnectorError;

/// A failed run. Each variant says whether a retry can help (`is_retryable`) and carries the
/// sample key or field that lets a user fix the definition or the data.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The sync definition is inconsistent with the query result or itself.
    #[error("invalid sync definition in `{field}`: {message}")]
    Definition {
        /// The definition field at fault (`primary_key`, `mappings[1].from`, …).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The source failed (bad query, bad credentials, dropped connection…).
    #[error("source: {0}")]
    Source(#[source] ConnectorError),
    /// The destination failed as a whole (not a single row).
    #[error("destination: {0}")]
    Destination(#[source] ConnectorError),
    /// Two source rows share a primary key, so the destination state would be ambiguous.
    #[error("duplicate primary key in the source: {key} appears more than once")]
    DuplicateKey {
        /// The first duplicate key found, rendered as `col=value`.
        key: String,
    },
    /// A source row has a NULL in a primary-key column.
    #[error("null primary key in the source: column `{column}` is NULL in row {sample}")]
    NullKey {
        /// The primary-key column holding NULL.
        column: String,
        /// The offending row's key columns, rendered.
        sample: String,
    },
    /// The source returned nothing although the last sync had rows: more likely an upstream
    /// failure than a real emptying, so nothing is changed unless the sync allows it.
    #[error(
        "the source returned 0 rows while the last snapshot holds {snapshot_rows}; \
         refusing to treat every row as removed (set allow_empty_source to accept)"
    )]
    EmptySource {
        /// Rows in the previous snapshot.
        snapshot_rows: u64,
    },
    /// Mirror mode would delete more of the synced rows than the sync allows.
    #[error(
        "the run would delete {removed} of {snapshot_rows} synced rows, more than \
         max_delete_fraction {max_delete_fraction}; nothing was deleted (raise \
         max_delete_fraction to accept)"
    )]
    TooManyDeletes {
        /// Keys that left the query result.
        removed: u64,
        /// Rows in the previous snapshot.
        snapshot_rows: u64,
        /// The configured limit.
        max_delete_fraction: f64,
    },
    /// The primary-key columns changed type since the last snapshot, so old keys cannot be
    /// matched; a full resync re-sends everything.
    #[error("the primary key's columns changed since the last snapshot ({previous} → {current}); run with full_resync")]
    KeySchemaChanged {
        /// The key schema the snapshot was written with.
        previous: String,
        /// The key schema of this run.
        current: String,
    },
    /// Reading or writing a snapshot failed.
    #[error("snapshot store: {0}")]
    Snapshot(String),
    /// The snapshot store's location cannot be opened; running again will not help.
    #[error(transparent)]
    SnapshotStore(#[from] crate::store::LocationError),
    /// A bug: an invariant of the engine did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// Whether running again, unchanged, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Source(e) | EngineError::Destination(e) => e.is_retryable(),
            EngineError::Snapshot(_) => true,
            _ => false,
        }
    }

    /// A stable machine-readable code for APIs and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Definition { .. } => "invalid_definition",
            EngineError::Source(_) => "source_error",
            EngineError::Destination(_) => "destination_error",
            EngineError::DuplicateKey { .. } => "duplicate_key",
            EngineError::NullKey { .. } => "null_key",
            EngineError::EmptySource { .. } => "empty_source",
            EngineError::TooManyDeletes { .. } => "too_many_deletes",
            EngineError::KeySchemaChanged { .. } => "key_schema_changed",
            EngineError::Snapshot(_) => "snapshot_error",
            EngineError::SnapshotStore(crate::store::LocationError::Unsupported { .. }) => {
                "snapshot_store_unsupported"
            }
            EngineError::SnapshotStore(_) => "invalid_snapshot_store",
            EngineError::Internal(_) => "internal",
        }
    }

    pub(crate) fn definition(field: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Definition {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<arrow::error::ArrowError> for EngineError {
    fn from(e: arrow::error::ArrowError) -> Self {
        EngineError::Internal(format!("arrow: {e}"))
    }
}
