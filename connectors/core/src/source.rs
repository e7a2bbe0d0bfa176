//! The contract of a source: a system that answers a query with a stream of Arrow batches.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::ConnectorError;

/// Knobs a reader honours; sources never buffer more than a few batches of this size.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Target rows per batch (a hint; the last batch is usually smaller).
    pub batch_size: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { batch_size: 8192 }
    }
}

/// A query result: its schema, known before the first row, and a stream of batches of that
/// schema. The stream ends only when the whole result was read: a dropped connection is an
/// error item, never an early end, so a partial read can never look like deleted rows.
pub struct BatchStream {
    schema: SchemaRef,
    inner: BoxStream<'static, Result<RecordBatch, ConnectorError>>,
}

impl BatchStream {
    /// Wraps a stream whose batches all have `schema`.
    pub fn new(
        schema: SchemaRef,
        inner: impl Stream<Item = Result<RecordBatch, ConnectorError>> + Send + 'static,
    ) -> Self {
        Self {
            schema,
            inner: inner.boxed(),
        }
    }

    /// The declared schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Stream for BatchStream {
    type Item = Result<RecordBatch, ConnectorError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The first rows of a query with the schema they were read with, for `PlanSync` and the UI.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The schema the source declares for the query.
    pub schema: SchemaRef,
    /// At most the requested number of rows.
    pub batches: Vec<RecordBatch>,
}

/// A validated source connection. Constructing one does no I/O; `check` and `read` connect.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// Verifies connectivity and credentials, so a bad password fails at `TestConnection` and
    /// not halfway through a run.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Runs `query` and streams its result. Memory stays bounded by a few batches whatever the
    /// result size.
    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError>;

    /// The first `limit` rows of `query`. The default reads the stream and stops early;
    /// sources that can push a limit down should override it.
    async fn preview(&self, query: &str, limit: usize) -> Result<Preview, ConnectorError> {
        let mut stream = self
            .read(
                query,
                ReadOptions {
                    batch_size: limit.clamp(1, 8192),
                },
            )
            .await?;
        let schema = stream.schema();
        let mut batches = Vec::new();
        let mut rows = 0;
        while rows < limit {
            let Some(batch) = stream.next().await.transpose()? else {
                break;
            };
            let take = batch.num_rows().min(limit - rows);
            rows += take;
            batches.push(batch.slice(0, take));
        }
        Ok(Preview { schema, batches })
    }
}
