//! The Snowflake source: log in, run the query, stream its Arrow chunks as canonical batches.
//!
//! A spawned task reads the result and hands batches to the stream over a channel of one
//! slot, so it runs at most one batch ahead of the consumer. It decodes the inline first chunk
//! as it arrives (an emulator may inline a whole large result), then downloads the other chunks
//! `chunk_concurrency` at a time, ahead of the consumer but never further, and yields them
//! strictly in result order. Each IPC batch is cut into slices of the requested batch size
//! before it is converted, so memory stays bounded by the chunks in flight plus a few batches.
//! A heartbeat task keeps the session alive during long reads. Dropping the stream before its
//! end aborts the query and logs out. The stream ends only after as many rows as Snowflake
//! announced were read: a shorter read is a retryable error, never an early end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::{make_array, Array, MutableArrayData, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use async_trait::async_trait;
use backflow_connector_core::{BatchStream, ConnectorError, ErrorKind, ReadOptions, Source};
use bytes::Bytes;
use futures::stream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::client::{self, Answer, Inline, Piece, Session};
use crate::config::SnowflakeConfig;
use crate::types::{self, Kind};

/// A validated Snowflake source; it logs in only in `check` and `read`, one session per call.
#[derive(Debug, Clone)]
pub struct SnowflakeSource {
    config: Arc<SnowflakeConfig>,
}

impl SnowflakeSource {
    pub(crate) fn new(config: SnowflakeConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// Runs one statement and discards its result: setup for tests, benchmarks and tools
    /// (the engine itself only reads).
    pub async fn execute(&self, sql: &str) -> Result<(), ConnectorError> {
        let http = client::http_client()?;
        let session = Session::login(&http, &self.config).await?;
        let result = drain(&session, sql).await;
        session.close().await;
        result
    }
}

/// Runs `sql` and reads its answer to the end (an inline rowset included).
async fn drain(session: &Session, sql: &str) -> Result<(), ConnectorError> {
    let answer = session
        .query(sql, &uuid::Uuid::new_v4().to_string())
        .await?;
    if let Inline::Streaming(mut reader) = answer.inline {
        while let Piece::Ipc(_) = reader.next().await? {}
    }
    Ok(())
}

#[async_trait]
impl Source for SnowflakeSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("source.check", account = %self.config.account);
        async {
            let http = client::http_client()?;
            let session = Session::login(&http, &self.config).await?;
            let result = drain(&session, "SELECT 1").await;
            session.close().await;
            result
        }
        .instrument(span)
        .await
    }

    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError> {
        let span = tracing::info_span!(
            "source.read",
            account = %self.config.account,
            batch_size = options.batch_size,
            query_id = tracing::field::Empty,
        );
        let sql = backflow_connector_core::support::normalize_query(query)?.to_string();
        let http = client::http_client()?;
        let session = Arc::new(
            Session::login(&http, &self.config)
                .instrument(span.clone())
                .await?,
        );
        // From here on, dropping the guard (an error, a cancelled read, a dropped stream)
        // aborts the statement and logs out.
        let mut guard = Guard::new(session.clone(), sql.clone());
        let answer = session
            .query(&sql, &guard.request_id)
            .instrument(span.clone())
            .await?;
        let data = &answer.data;
        span.record("query_id", data.query_id.as_deref().unwrap_or(""));
        let columns = data
            .rowtype
            .iter()
            .map(types::column)
            .collect::<Result<Vec<_>, _>>()?;
        let (kinds, fields): (Vec<Kind>, Vec<Field>) = columns.into_iter().unzip();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        if data.query_result_format.as_deref() == Some("json")
            && data
                .rowset
                .as_ref()
                .and_then(|r| r.as_array())
                .is_some_and(|r| !r.is_empty())
        {
            return Err(ConnectorError::new(
                ErrorKind::Query,
                "Snowflake answered in JSON result format; Backflow reads Arrow results only \
                 (is the statement a query?)",
            ));
        }
        guard.start_heartbeat();
        tracing::info!(parent: &span, "snowflake query answered");
        let (tx, rx) = mpsc::channel(1);
        let reader = Reader {
            http,
            schema: schema.clone(),
            kinds,
            batch_size: options.batch_size.max(1),
            concurrency: self.config.chunk_concurrency(),
            tx: tx.clone(),
            rows: 0,
        };
        let task = tokio::spawn(
            async move {
                match reader.run(answer).await {
                    Ok(true) => {
                        let _ = tx.send(Message::End).await;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let _ = tx.send(Message::Failed(e)).await;
                    }
                }
            }
            .instrument(span),
        );
        Ok(BatchStream::new(
            schema,
            Batches {
                rx,
                task,
                guard: Some(guard),
                done: false,
            },
        ))
    }
}

/// What the reading task hands the stream.
enum Message {
    Batch(RecordBatch),
    Failed(ConnectorError),
    End,
}

/// Everything the reading task needs.
struct Reader {
    http: reqwest::Client,
    schema: SchemaRef,
    kinds: Vec<Kind>,
    batch_size: usize,
    concurrency: usize,
    tx: mpsc::Sender<Message>,
    rows: u64,
}

impl Reader {
    /// Reads the inline chunk, then the downloaded ones, and sends every batch; `Ok(false)`
    /// when the consumer went away.
    async fn run(mut self, answer: Answer) -> Result<bool, ConnectorError> {
        let Answer { mut data, inline } = answer;
        let mut decoder = ChunkDecoder::new(0, None);
        match inline {
            Inline::Whole(bytes) => {
                if !bytes.is_empty() && !self.feed(&mut decoder, bytes).await? {
                    return Ok(false);
                }
            }
            Inline::Streaming(mut reader) => loop {
                match reader.next().await? {
                    Piece::Ipc(bytes) => {
                        if !self.feed(&mut decoder, bytes).await? {
                            return Ok(false);
                        }
                    }
                    Piece::Tail(tail) => {
                        data = *tail;
                        break;
                    }
                }
            },
        }
        decoder.finish()?;
        let headers = client::chunk_headers(&data)?;
        let http = self.http.clone();
        let mut chunks = stream::iter(data.chunks.clone().into_iter().enumerate())
            .map(move |(i, chunk)| {
                let http = http.clone();
                let headers = headers.clone();
                async move {
                    let bytes = client::download_chunk(&http, i + 1, &chunk, &headers).await?;
                    Ok::<_, ConnectorError>((i + 1, chunk.row_count, bytes))
                }
            })
            .buffered(self.concurrency);
        while let Some(chunk) = chunks.next().await {
            let (index, row_count, bytes) = chunk?;
            let mut decoder = ChunkDecoder::new(index, row_count);
            if !self.feed(&mut decoder, bytes).await? {
                return Ok(false);
            }
            decoder.finish()?;
        }
        if let Some(expected) = data.total {
            if expected != self.rows {
                return Err(ConnectorError::connectivity(format!(
                    "the result ended after {} of {expected} rows",
                    self.rows
                )));
            }
        }
        tracing::info!(rows = self.rows, "snowflake result read");
        Ok(true)
    }

    /// Decodes `bytes` and sends every complete batch, converted and cut to size.
    async fn feed(
        &mut self,
        decoder: &mut ChunkDecoder,
        bytes: Bytes,
    ) -> Result<bool, ConnectorError> {
        for message in decoder.accept(&bytes)? {
            let mut buffer = message.clone();
            while let Some(batch) = decoder.next_batch(&mut buffer)? {
                let rows = batch.num_rows();
                for offset in (0..rows).step_by(self.batch_size) {
                    let slice = batch.slice(offset, self.batch_size.min(rows - offset));
                    let mut converted = convert_batch(&slice, &self.schema, &self.kinds)?;
                    if rows > self.batch_size {
                        // A slice shares the whole IPC batch's buffers; a copy of its own lets
                        // that batch go as soon as it is cut up, before the next one is decoded.
                        converted = compact(&converted)?;
                    }
                    self.rows += converted.num_rows() as u64;
                    if self.tx.send(Message::Batch(converted)).await.is_err() {
                        return Ok(false);
                    }
                }
            }
            drop(buffer);
            decoder.recycle(message);
        }
        Ok(true)
    }
}

/// Decodes one chunk's Arrow IPC stream as its bytes arrive and checks its announced row
/// count. Bytes are framed into whole IPC messages here, each collected in a buffer of its
/// exact size and handed to Arrow's decoder in one piece (which it then reads without
/// copying), so a large batch costs its size once; the schema message is made nullable first
/// (see [`relax_nullability`]).
struct ChunkDecoder {
    index: usize,
    row_count: Option<u64>,
    rows: u64,
    /// The message being collected.
    pending: Vec<u8>,
    /// Its full size, once its header arrived.
    need: Option<usize>,
    /// Whether the schema message was seen.
    schema_seen: bool,
    /// The allocation of the last message, reused for the next one: a fresh multi-megabyte
    /// buffer per message lets the allocator spread them over its per-thread arenas and
    /// keep several resident at once.
    spare: Vec<u8>,
    decoder: StreamDecoder,
}

impl ChunkDecoder {
    fn new(index: usize, row_count: Option<u64>) -> Self {
        Self {
            index,
            row_count,
            rows: 0,
            pending: Vec::new(),
            need: None,
            schema_seen: false,
            spare: Vec::new(),
            decoder: StreamDecoder::new(),
        }
    }

    /// The whole messages `bytes` completes, in order.
    fn accept(&mut self, bytes: &[u8]) -> Result<Vec<Buffer>, ConnectorError> {
        let mut input = bytes;
        let mut out = Vec::new();
        loop {
            if self.need.is_none() {
                if let Some(total) = message_size(&self.pending)? {
                    self.need = Some(total);
                    if self.spare.capacity() >= total {
                        let mut reused = std::mem::take(&mut self.spare);
                        reused.clear();
                        reused.extend_from_slice(&self.pending);
                        self.pending = reused;
                    }
                    self.pending
                        .reserve_exact(total.saturating_sub(self.pending.len()));
                }
            }
            let want = match self.need {
                Some(total) => total,
                None => header_size(&self.pending),
            };
            if self.need.is_some() && self.pending.len() >= want {
                let message = std::mem::take(&mut self.pending);
                self.need = None;
                let message = if self.schema_seen {
                    Buffer::from(message)
                } else {
                    self.schema_seen = true;
                    let end = message.len();
                    Buffer::from(
                        relax_nullability(Bytes::from(message), end)
                            .map_err(|e| e.context(format!("result chunk {}", self.index)))?,
                    )
                };
                out.push(message);
                continue;
            }
            if input.is_empty() {
                return Ok(out);
            }
            let take = (want - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
    }

    /// Takes back a message's allocation once nothing refers to it any more.
    fn recycle(&mut self, message: Buffer) {
        if let Ok(vec) = message.into_vec::<u8>() {
            if vec.capacity() > self.spare.capacity() {
                self.spare = vec;
            }
        }
    }

    fn next_batch(&mut self, buffer: &mut Buffer) -> Result<Option<RecordBatch>, ConnectorError> {
        let batch = self.decoder.decode(buffer).map_err(|e| {
            ConnectorError::connectivity(format!("result chunk {} is damaged: {e}", self.index))
        })?;
        if let Some(b) = &batch {
            self.rows += b.num_rows() as u64;
        }
        Ok(batch)
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        if !self.pending.is_empty() {
            return Err(ConnectorError::connectivity(format!(
                "result chunk {} is cut off inside a message",
                self.index
            )));
        }
        self.decoder.finish().map_err(|e| {
            ConnectorError::connectivity(format!("result chunk {} is cut off: {e}", self.index))
        })?;
        match self.row_count {
            Some(expected) if expected != self.rows => Err(ConnectorError::connectivity(format!(
                "result chunk {} held {} rows, Snowflake announced {expected}",
                self.index, self.rows
            ))),
            _ => Ok(()),
        }
    }
}

/// The little-endian word at `at`, if it arrived.
fn word(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// How many bytes of an IPC message's header are needed to learn more: a message is
/// `[0xFFFFFFFF] <metadata length: i32> <flatbuffer Message> <body>`; old writers omit the
/// marker, and a zero length ends the stream.
fn header_size(pending: &[u8]) -> usize {
    match word(pending, 0) {
        None => 4,
        Some(marker) if marker == u32::MAX as usize => match word(pending, 4) {
            None => 8,
            Some(meta) => 8 + meta,
        },
        Some(meta) => 4 + meta,
    }
}

/// The full size of the message `pending` starts with, once its metadata arrived.
fn message_size(pending: &[u8]) -> Result<Option<usize>, ConnectorError> {
    let Some(first) = word(pending, 0) else {
        return Ok(None);
    };
    let prefix = if first == u32::MAX as usize { 8 } else { 4 };
    if pending.len() < prefix {
        return Ok(None);
    }
    let header = header_size(pending);
    if header == prefix {
        // A zero metadata length: the end-of-stream marker.
        return Ok(Some(prefix));
    }
    let Some(meta) = pending.get(prefix..header) else {
        return Ok(None);
    };
    let message = arrow::ipc::root_as_message(meta)
        .map_err(|e| ConnectorError::connectivity(format!("the Arrow stream is damaged: {e}")))?;
    let body = usize::try_from(message.bodyLength())
        .map_err(|_| ConnectorError::connectivity("the Arrow stream is damaged: negative body"))?;
    Ok(Some(header + body))
}

/// The schema message of an IPC stream (`bytes[..end]`) with every field made nullable.
///
/// fakesnow declares the children of its timestamp structs non-nullable but writes NULLs in
/// them; Arrow's decoder would refuse such a batch. The schema message is decoded, relaxed and
/// re-encoded in front of the untouched record batch messages (which do not depend on it).
fn relax_nullability(bytes: Bytes, end: usize) -> Result<Bytes, ConnectorError> {
    use arrow::ipc::writer::{write_message, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
    let damaged =
        |what: &str| ConnectorError::connectivity(format!("the Arrow stream is damaged: {what}"));
    let header = if bytes.starts_with(&[0xff; 4]) { 8 } else { 4 };
    let fb = bytes
        .get(header..end)
        .ok_or_else(|| damaged("truncated schema message"))?;
    let message = arrow::ipc::root_as_message(fb).map_err(|e| damaged(&e.to_string()))?;
    let Some(fb_schema) = message.header_as_schema() else {
        return Err(damaged("the stream does not start with a schema"));
    };
    let schema = arrow::ipc::convert::fb_to_schema(fb_schema);
    if !schema.fields().iter().any(|f| has_required(f)) {
        return Ok(bytes);
    }
    let relaxed = Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| nullable(f))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    );
    let options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        &relaxed,
        &mut DictionaryTracker::new(false),
        &options,
    );
    let mut out = Vec::with_capacity(bytes.len() + 64);
    write_message(&mut out, encoded, &options)
        .map_err(|e| ConnectorError::internal(format!("re-encoding a chunk schema: {e}")))?;
    out.extend_from_slice(&bytes[end..]);
    Ok(Bytes::from(out))
}

/// Whether a field or any field nested in it is declared non-nullable.
fn has_required(field: &Field) -> bool {
    !field.is_nullable()
        || match field.data_type() {
            DataType::Struct(children) => children.iter().any(|c| has_required(c)),
            _ => false,
        }
}

/// The field, and its struct children, made nullable.
fn nullable(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| nullable(c))
                .collect::<Vec<_>>()
                .into(),
        ),
        other => other.clone(),
    };
    field.clone().with_data_type(data_type).with_nullable(true)
}

/// A batch copied into buffers of its own size.
fn compact(batch: &RecordBatch) -> Result<RecordBatch, ConnectorError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            // `concat` of a single array returns a slice of it, so copy explicitly.
            let data = c.to_data();
            let mut copy = MutableArrayData::new(vec![&data], false, data.len());
            copy.try_extend(0, 0, data.len())?;
            Ok(make_array(copy.freeze()))
        })
        .collect::<Result<Vec<_>, ConnectorError>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// One physical batch converted to the declared schema.
fn convert_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
    kinds: &[Kind],
) -> Result<RecordBatch, ConnectorError> {
    let physical = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(physical.fields())
        .zip(batch.columns())
        .zip(kinds)
        .map(|(((target, physical), array), kind)| types::convert(*kind, target, physical, array))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
        ConnectorError::internal(format!("a converted batch does not fit the schema: {e}"))
    })
}

/// Aborts the statement and logs out when dropped before the result was read to its end;
/// only logs out after a complete read. Also owns the heartbeat task.
struct Guard {
    session: Arc<Session>,
    sql: String,
    request_id: String,
    complete: bool,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Guard {
    fn new(session: Arc<Session>, sql: String) -> Self {
        Self {
            session,
            sql,
            request_id: uuid::Uuid::new_v4().to_string(),
            complete: false,
            heartbeat: None,
        }
    }

    fn start_heartbeat(&mut self) {
        let session = self.session.clone();
        let every = session.heartbeat_interval();
        self.heartbeat = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticks.tick().await;
                if let Err(e) = session.heartbeat().await {
                    tracing::warn!(error = %e, "snowflake heartbeat failed");
                }
            }
        }));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = self.session.clone();
        let sql = std::mem::take(&mut self.sql);
        let request_id = std::mem::take(&mut self.request_id);
        let complete = self.complete;
        runtime.spawn(async move {
            if !complete {
                session.abort(&sql, &request_id).await;
            }
            session.close().await;
        });
    }
}

/// The consumer's side: batches from the reading task until its end marker. The task is
/// stopped when the stream is dropped.
struct Batches {
    rx: mpsc::Receiver<Message>,
    task: tokio::task::JoinHandle<()>,
    guard: Option<Guard>,
    done: bool,
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for Batches {
    type Item = Result<RecordBatch, ConnectorError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Message::Batch(batch))) => Poll::Ready(Some(Ok(batch))),
            Poll::Ready(Some(Message::Failed(e))) => {
                self.done = true;
                // Dropping the guard now aborts the query and logs out.
                self.guard = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Message::End)) => {
                self.done = true;
                if let Some(mut guard) = self.guard.take() {
                    guard.complete = true;
                }
                Poll::Ready(None)
            }
            // The task ended without saying the result was complete: never an early end.
            Poll::Ready(None) => {
                self.done = true;
                self.guard = None;
                Poll::Ready(Some(Err(ConnectorError::internal(
                    "the snowflake reader stopped before the end of the result",
                )
                .with_retryable(true))))
            }
        }
    }
}
