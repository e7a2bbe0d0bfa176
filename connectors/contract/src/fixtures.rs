//! Small building blocks the connectors' own integration tests share beyond the contract
//! suites: the write targets they open, reading a whole result, one write through a fresh
//! writer. Anything that knows a particular database stays in that connector's tests.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use backflow_connector_core::{
    ConnectorError, Destination, ReadOptions, Source, WriteMode, WriteOutcome, WriteTarget,
};
use futures::StreamExt;

/// A schema of `fields`, as most test tables are declared.
pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// A target that writes `schema` into `object` keyed by `primary_key`, without deletes and
/// not as an initial load, so the writer takes its general path.
pub fn target(
    object: &str,
    schema: SchemaRef,
    primary_key: &[&str],
    mode: WriteMode,
    create_table: bool,
) -> WriteTarget {
    WriteTarget {
        object: object.to_string(),
        schema,
        primary_key: primary_key.iter().map(|s| s.to_string()).collect(),
        mode,
        create_table,
        initial_load: false,
        deletes: false,
    }
}

/// Reads `query` to the end, as the engine does: the declared schema and every batch, or the
/// first error (a read that ends early must not pass for a complete one).
pub async fn read_all(
    source: &dyn Source,
    query: &str,
    batch_size: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>), ConnectorError> {
    let mut stream = source.read(query, ReadOptions { batch_size }).await?;
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    Ok((schema, batches))
}

/// Opens a writer for `target`, writes `batch`, and closes the writer, as one short run
/// does; panics on any error, since a test that wants the error calls the writer itself.
pub async fn write_once(
    destination: &dyn Destination,
    target: &WriteTarget,
    batch: &RecordBatch,
) -> WriteOutcome {
    let mut writer = destination.open(target).await.unwrap();
    let outcome = writer.write(batch).await.unwrap();
    writer.close().await.unwrap();
    outcome
}

/// Opens a writer for `target`, deletes `keys`, and closes the writer; panics on any error.
pub async fn delete_once(
    destination: &dyn Destination,
    target: &WriteTarget,
    keys: &RecordBatch,
) -> WriteOutcome {
    let mut writer = destination.open(target).await.unwrap();
    let outcome = writer.delete(keys).await.unwrap();
    writer.close().await.unwrap();
    outcome
}
