//! The contract of a destination: an application database that receives changed rows.

use std::fmt;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::ConnectorError;

/// How rows are applied. `mirror` is `Upsert` plus deletes, which the engine drives through
/// [`DestinationWriter::delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Insert new keys, update existing ones.
    Upsert,
    /// Insert new keys only; an existing key is left as it is and reported skipped.
    Insert,
    /// Update existing keys only; a missing key is never created and is reported skipped.
    Update,
}

/// What the engine asks a destination to write into.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    /// The table or collection, as the user wrote it (for example `public.customer_scores`).
    pub object: String,
    /// The canonical schema of the rows, with destination column names (mappings applied).
    pub schema: SchemaRef,
    /// Destination column names of the primary key, in order.
    pub primary_key: Vec<String>,
    /// How rows are applied.
    pub mode: WriteMode,
    /// Create the object from `schema` when it does not exist.
    pub create_table: bool,
    /// The run may delete rows (mirror mode), so `check` must verify the delete privilege.
    pub deletes: bool,
    /// The engine has no snapshot for this sync: if the object is empty the writer may bulk
    /// load it directly instead of going through upsert machinery.
    pub initial_load: bool,
}

/// Why one row of a batch was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    /// Index of the row within the batch handed to `write` or `delete`.
    pub row: usize,
    /// The column at fault, when the database says.
    pub column: Option<String>,
    /// The database's own message.
    pub message: String,
}

impl RowFailure {
    /// The failure of row `row` that a database reported as `error`: its message and the
    /// column it names, without the context, since the row number already says where.
    pub fn from_error(row: usize, error: &ConnectorError) -> Self {
        Self {
            row,
            column: error.column().map(str::to_string),
            message: error.message().to_string(),
        }
    }
}

/// The per-row result of one `write` or `delete`. Every row not listed in `failed` or
/// `skipped` was durably applied (committed) by the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows the destination refused, with its reason; the engine retries them next run.
    pub failed: Vec<RowFailure>,
    /// Row indices deliberately not applied by the mode (`insert` on an existing key, `update`
    /// or `delete` of a missing key). Not errors; kept out of the snapshot.
    pub skipped: Vec<usize>,
}

impl WriteOutcome {
    /// Rows of a batch of `len` that were applied.
    pub fn applied(&self, len: usize) -> usize {
        len - self.failed.len() - self.skipped.len()
    }
}

/// A validated destination connection. Constructing one does no I/O.
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    /// Verifies what a run will need: that the object and every column name are names the
    /// destination holds exactly (a name it would truncate or refuse is a non-retryable
    /// `Config` error naming the column or `destination.object`, see [`crate::names`]),
    /// connectivity, credentials, that the object exists (or may be created), that its
    /// columns take the schema, and that the primary key is backed by a unique index so
    /// upserts are well defined.
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError>;

    /// Opens a writer for one run (creating the object first when allowed and missing).
    async fn open(
        &self,
        target: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError>;
}

/// Writes one run's changes. Each call returns only after the destination committed what it
/// reports as applied, so the engine can record exactly those rows in the next snapshot.
#[async_trait]
pub trait DestinationWriter: Send {
    /// Applies a batch of rows (added or changed) according to the mode. An `Err` means the
    /// fate of the batch is unknown and the run fails; row-level refusals are `Ok` with
    /// `failed` entries.
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError>;

    /// Deletes the rows whose primary keys are in `keys` (primary-key columns only).
    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError>;

    /// Releases the connection and any staging objects.
    async fn close(self: Box<Self>) -> Result<(), ConnectorError>;
}
