//! The contract of a source: a system that answers a query with a stream of Arrow batches.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::{ConnectorError, ErrorKind};

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

/// What a reader task sends to the stream a source returns. `End` is explicit so that a task
/// that stops without it (a panic, an abort) can never pass for a complete result, whose
/// missing rows the engine would then delete.
#[derive(Debug)]
pub enum ReaderMessage {
    /// The next batch.
    Batch(RecordBatch),
    /// The read failed; nothing follows.
    Failed(ConnectorError),
    /// The result is complete.
    End,
}

/// The batch stream of a reader task's channel: it ends at [`ReaderMessage::End`] only, and
/// a channel closed without it yields a retryable error naming `reader`.
pub fn reader_stream(
    schema: SchemaRef,
    rx: tokio::sync::mpsc::Receiver<ReaderMessage>,
    reader: &'static str,
) -> BatchStream {
    let stream = futures::stream::unfold((rx, false), move |(mut rx, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            Some(ReaderMessage::Batch(b)) => Some((Ok(b), (rx, false))),
            Some(ReaderMessage::Failed(e)) => Some((Err(e), (rx, true))),
            Some(ReaderMessage::End) => None,
            None => Some((
                Err(ConnectorError::internal(format!(
                    "the {reader} reader stopped before the end of the result"
                ))
                .with_retryable(true)),
                (rx, true),
            )),
        }
    });
    BatchStream::new(schema, stream)
}

/// The query without surrounding whitespace and trailing semicolons, or a `Query` error when
/// nothing is left: sources wrap the query (in `COPY (…)`, a cursor, a job), where a trailing
/// `;` is a syntax error the user did not write.
pub fn normalize_query(query: &str) -> Result<&str, ConnectorError> {
    let q = query
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if q.is_empty() {
        return Err(ConnectorError::new(ErrorKind::Query, "the query is empty"));
    }
    Ok(q)
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_stops_without_end_is_a_retryable_error() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;

        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(ReaderMessage::Batch(batch)).await.unwrap();
        drop(tx);
        let mut stream = reader_stream(schema.clone(), rx, "test");
        assert_eq!(stream.next().await.unwrap().unwrap().num_rows(), 2);
        let error = stream.next().await.unwrap().unwrap_err();
        assert!(error.is_retryable(), "{error}");
        assert!(stream.next().await.is_none());

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(ReaderMessage::End).await.unwrap();
        let mut stream = reader_stream(schema, rx, "test");
        assert!(stream.next().await.is_none(), "End ends the stream cleanly");
    }

    #[test]
    fn strips_blanks_and_trailing_semicolons() {
        assert_eq!(normalize_query("  SELECT 1 ;\n; ").unwrap(), "SELECT 1");
        assert_eq!(normalize_query(" ; ").unwrap_err().kind(), ErrorKind::Query);
    }
}
