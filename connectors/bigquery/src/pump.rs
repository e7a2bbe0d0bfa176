//! The hand-over between a producing task and the [`BatchStream`] the engine reads.
//!
//! The producer sends [`Message`]s over a bounded channel, so it waits while the engine is
//! busy (memory stays at a few batches). The stream ends only on [`Message::End`], which the
//! producer sends after checking that it read the whole result: a producer that stops any
//! other way (a dropped connection, a panic) ends the stream with a retryable error, so a
//! partial read never looks like a complete one. Dropping the stream aborts the producer.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use backflow_connector_core::{BatchStream, ConnectorError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a producer sends.
pub(crate) enum Message {
    /// Rows of the result.
    Batch(RecordBatch),
    /// The read failed; nothing follows.
    Failed(ConnectorError),
    /// The whole result was sent; nothing follows.
    End,
}

/// Aborts the producer task when the stream is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A channel for a producer, with room for `capacity` batches in flight.
pub(crate) fn channel(capacity: usize) -> (mpsc::Sender<Message>, mpsc::Receiver<Message>) {
    mpsc::channel(capacity.max(1))
}

/// The stream of `schema` fed by `rx`, owning the `producer` task.
pub(crate) fn batch_stream(
    schema: SchemaRef,
    rx: mpsc::Receiver<Message>,
    producer: JoinHandle<()>,
) -> BatchStream {
    let state = Some((rx, AbortOnDrop(producer)));
    let stream = futures::stream::unfold(state, |state| async move {
        let (mut rx, producer) = state?;
        match rx.recv().await {
            Some(Message::Batch(batch)) => Some((Ok(batch), Some((rx, producer)))),
            Some(Message::Failed(e)) => Some((Err(e), None)),
            Some(Message::End) => None,
            None => Some((
                Err(ConnectorError::connectivity(
                    "the BigQuery read stopped before the end of the result",
                )),
                None,
            )),
        }
    });
    BatchStream::new(schema, stream)
}

/// Sends `batch` in slices of at most `batch_size` rows; `false` when the stream is gone.
pub(crate) async fn send_sliced(
    tx: &mpsc::Sender<Message>,
    batch: RecordBatch,
    batch_size: usize,
) -> bool {
    let batch_size = batch_size.max(1);
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = batch_size.min(batch.num_rows() - offset);
        if tx
            .send(Message::Batch(batch.slice(offset, len)))
            .await
            .is_err()
        {
            return false;
        }
        offset += len;
    }
    true
}
