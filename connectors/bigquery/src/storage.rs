//! The BigQuery Storage Read API (gRPC `google.cloud.bigquery.storage.v1.BigQueryRead`):
//! one read session over the result table in Arrow format, its streams read in parallel.
//!
//! `CreateReadSession` asks for Arrow with `max_stream_count` 0 (the server picks how many
//! streams make sense; 1 when the query orders its result, so the order survives); at most
//! `max_read_streams` of them are read at once. Each `ReadRows` response holds one Arrow IPC
//! record batch, decoded with the session's IPC schema; a stream that fails transiently is
//! resumed at the row `offset` it reached. The read ends successfully only when every stream
//! ended and the rows add up to the table's row count.
//!
//! The types come from the `googleapis-tonic-google-cloud-bigquery-storage-v1` crate
//! (generated from Google's protos for tonic 0.14 / prost 0.14).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use backflow_connector_core::{BatchStream, ConnectorError};
use googleapis_tonic_google_cloud_bigquery_storage_v1::google::cloud::bigquery::storage::v1::{
    big_query_read_client::BigQueryReadClient, read_rows_response, read_session,
    CreateReadSessionRequest, DataFormat, ReadRowsRequest, ReadSession,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::Request;

use crate::auth::Credentials;
use crate::convert;
use crate::error;
use crate::pump::{self, Message};
use crate::rest::TableRef;
use crate::schema::ResultSchema;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of one call (or resumptions of one stream) after transient failures.
const ATTEMPTS: u32 = 5;
/// The largest `ReadRows` response accepted. Google's responses stay far below; an emulator
/// may send a whole result in one message.
const MAX_MESSAGE: usize = 1 << 30;

/// A client of the Storage Read API.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    client: BigQueryReadClient<Channel>,
    credentials: Credentials,
}

/// An open read session: its streams and the IPC schema its batches are encoded with.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    streams: Vec<String>,
    ipc_schema: Arc<Vec<u8>>,
}

impl Storage {
    /// Connects to `endpoint` (`https://…` with TLS, `http://…` in plaintext for emulators).
    pub(crate) async fn connect(
        endpoint: &str,
        credentials: Credentials,
    ) -> Result<Self, ConnectorError> {
        let mut builder = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| ConnectorError::config("storage_endpoint", format!("bad address: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if endpoint.starts_with("https://") {
            builder = builder
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| ConnectorError::internal(format!("TLS setup: {e}")))?;
        }
        let channel = builder.connect().await.map_err(|e| {
            ConnectorError::connectivity(format!(
                "cannot connect to the BigQuery Storage API at {endpoint}: {e}"
            ))
        })?;
        Ok(Self {
            client: BigQueryReadClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(usize::MAX),
            credentials,
        })
    }

    /// Opens a read session over `table`, billed to `project`. `Ok(None)` means the Storage
    /// API is not available to these credentials (permission denied, not implemented), so the
    /// caller reads through REST instead.
    pub(crate) async fn create_session(
        &self,
        project: &str,
        table: &TableRef,
        single_stream: bool,
    ) -> Result<Option<Session>, ConnectorError> {
        let table_path = table.path();
        let message = CreateReadSessionRequest {
            parent: format!("projects/{project}"),
            read_session: Some(ReadSession {
                table: table_path.clone(),
                data_format: DataFormat::Arrow as i32,
                read_options: Some(read_session::TableReadOptions::default()),
                ..Default::default()
            }),
            max_stream_count: i32::from(single_stream),
            preferred_min_stream_count: 0,
        };
        let mut attempt = 0;
        let session = loop {
            attempt += 1;
            let request = self
                .request(message.clone(), &format!("read_session.table={table_path}"))
                .await?;
            match self.client.clone().create_read_session(request).await {
                Ok(response) => break response.into_inner(),
                Err(status) if error::storage_refused(status.code()) => {
                    tracing::info!(code = ?status.code(), message = status.message(), "bigquery storage read api refused, reading through rest");
                    return Ok(None);
                }
                Err(status) if error::is_transient_status(status.code()) && attempt < ATTEMPTS => {
                    tracing::warn!(attempt, code = ?status.code(), "CreateReadSession failed transiently, retrying");
                    tokio::time::sleep(crate::rest::backoff(attempt)).await;
                }
                Err(status) => return Err(error::from_status("CreateReadSession", &status)),
            }
        };
        let ipc_schema = match session.schema {
            Some(read_session::Schema::ArrowSchema(schema)) => schema.serialized_schema,
            _ if session.streams.is_empty() => Vec::new(),
            _ => {
                return Err(ConnectorError::internal(
                    "the BigQuery read session has no Arrow schema",
                ))
            }
        };
        Ok(Some(Session {
            streams: session.streams.into_iter().map(|s| s.name).collect(),
            ipc_schema: Arc::new(ipc_schema),
        }))
    }

    /// Streams the session's rows as canonical batches of `schema`, reading at most
    /// `parallel` streams at once; `expected_rows` (the table's row count) is checked at the
    /// end.
    pub(crate) fn read(
        &self,
        session: Session,
        schema: Arc<ResultSchema>,
        expected_rows: Option<u64>,
        parallel: usize,
        batch_size: usize,
    ) -> BatchStream {
        let (tx, rx) = pump::channel(parallel);
        let arrow_schema = schema.arrow.clone();
        let producer = tokio::spawn(supervise(
            self.clone(),
            session,
            schema,
            expected_rows,
            parallel.max(1),
            batch_size,
            tx,
        ));
        pump::batch_stream(arrow_schema, rx, producer)
    }

    /// `message` with the authorization and routing headers Google's clients send.
    async fn request<T>(&self, message: T, routing: &str) -> Result<Request<T>, ConnectorError> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(authorization) = self.credentials.authorization().await? {
            let value = MetadataValue::try_from(authorization.expose()).map_err(|_| {
                ConnectorError::internal("the access token is not a valid header value")
            })?;
            metadata.insert("authorization", value);
        }
        if let Ok(value) = MetadataValue::try_from(routing) {
            metadata.insert("x-goog-request-params", value);
        }
        Ok(request)
    }
}

/// Reads every stream with bounded concurrency, then checks the total and ends the result.
async fn supervise(
    storage: Storage,
    session: Session,
    schema: Arc<ResultSchema>,
    expected_rows: Option<u64>,
    parallel: usize,
    batch_size: usize,
    tx: mpsc::Sender<Message>,
) {
    let mut pending = session.streams.into_iter();
    let mut running = JoinSet::new();
    let spawn = |running: &mut JoinSet<_>, name: String| {
        running.spawn(read_stream(
            storage.clone(),
            name,
            session.ipc_schema.clone(),
            schema.clone(),
            batch_size,
            tx.clone(),
        ));
    };
    for name in pending.by_ref().take(parallel) {
        spawn(&mut running, name);
    }
    let mut total = 0u64;
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(Ok(rows)) => {
                total += rows;
                if let Some(name) = pending.next() {
                    spawn(&mut running, name);
                }
            }
            Ok(Err(e)) => {
                let _ = tx.send(Message::Failed(e)).await;
                return;
            }
            Err(e) => {
                let _ = tx
                    .send(Message::Failed(ConnectorError::internal(format!(
                        "a BigQuery stream reader failed: {e}"
                    ))))
                    .await;
                return;
            }
        }
    }
    if let Some(expected) = expected_rows.filter(|e| *e != total) {
        let _ = tx
            .send(Message::Failed(ConnectorError::connectivity(format!(
                "the BigQuery Storage read returned {total} rows but the result has {expected}"
            ))))
            .await;
        return;
    }
    tracing::debug!(rows = total, "bigquery storage read done");
    let _ = tx.send(Message::End).await;
}

/// Reads one stream to its end, resuming at the reached offset after transient failures;
/// returns how many rows it read.
async fn read_stream(
    storage: Storage,
    name: String,
    ipc_schema: Arc<Vec<u8>>,
    schema: Arc<ResultSchema>,
    batch_size: usize,
    tx: mpsc::Sender<Message>,
) -> Result<u64, ConnectorError> {
    let mut offset: u64 = 0;
    let mut failures = 0;
    loop {
        let request = storage
            .request(
                ReadRowsRequest {
                    read_stream: name.clone(),
                    offset: offset as i64,
                },
                &format!("read_stream={name}"),
            )
            .await?;
        let status = match storage.client.clone().read_rows(request).await {
            Ok(response) => {
                let mut responses = response.into_inner();
                loop {
                    match responses.message().await {
                        Ok(Some(response)) => {
                            failures = 0;
                            let Some(read_rows_response::Rows::ArrowRecordBatch(rows)) =
                                response.rows
                            else {
                                continue;
                            };
                            for batch in decode(&ipc_schema, &rows.serialized_record_batch)? {
                                offset += batch.num_rows() as u64;
                                let batch = convert::storage_to_canonical(&schema, &batch)?;
                                if !pump::send_sliced(&tx, batch, batch_size).await {
                                    return Ok(offset);
                                }
                            }
                        }
                        Ok(None) => return Ok(offset),
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        failures += 1;
        if !error::is_transient_status(status.code()) || failures >= ATTEMPTS {
            return Err(error::from_status("ReadRows", &status)
                .context(format!("reading stream {name} at row {offset}")));
        }
        tracing::warn!(offset, failures, code = ?status.code(), "bigquery read stream failed transiently, resuming");
        tokio::time::sleep(crate::rest::backoff(failures)).await;
    }
}

/// The record batches of one `ReadRows` payload.
///
/// Google sends the bare IPC record-batch message, to be read after the session's IPC schema;
/// some servers (the emulator) send a whole IPC stream, schema included. Both are accepted.
fn decode(ipc_schema: &[u8], payload: &[u8]) -> Result<Vec<RecordBatch>, ConnectorError> {
    let bad = |e: arrow::error::ArrowError| {
        ConnectorError::internal(format!("cannot decode the BigQuery Arrow payload: {e}"))
    };
    let reader: Box<dyn Read> = if starts_with_schema(payload) {
        Box::new(payload)
    } else {
        Box::new(ipc_schema.chain(payload))
    };
    StreamReader::try_new(reader, None)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)
}

/// Whether an IPC payload begins with a schema message.
fn starts_with_schema(payload: &[u8]) -> bool {
    let (len_at, body_at) = match payload {
        [0xff, 0xff, 0xff, 0xff, ..] => (4, 8),
        _ => (0, 4),
    };
    let Some(len) = payload
        .get(len_at..len_at + 4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return false;
    };
    let Some(message) = usize::try_from(len)
        .ok()
        .and_then(|len| payload.get(body_at..body_at + len))
    else {
        return false;
    };
    arrow::ipc::root_as_message(message)
        .map(|m| m.header_type() == arrow::ipc::MessageHeader::Schema)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::{
        DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, StreamWriter,
    };

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap()
    }

    #[test]
    fn decodes_a_whole_stream_and_a_bare_batch_message() {
        let b = batch();
        let mut whole = Vec::new();
        let mut writer = StreamWriter::try_new(&mut whole, &b.schema()).unwrap();
        writer.write(&b).unwrap();
        writer.finish().unwrap();
        drop(writer);
        assert!(starts_with_schema(&whole));
        assert_eq!(decode(&[], &whole).unwrap()[0], b);

        let options = IpcWriteOptions::default();
        let generator = IpcDataGenerator::default();
        let mut tracker = DictionaryTracker::new(false);
        let schema_msg =
            generator.schema_to_bytes_with_dictionary_tracker(&b.schema(), &mut tracker, &options);
        let mut schema_bytes = Vec::new();
        arrow::ipc::writer::write_message(&mut schema_bytes, schema_msg, &options).unwrap();
        let (_, batch_msg) = generator
            .encode(&b, &mut tracker, &options, &mut IpcWriteContext::default())
            .unwrap();
        let mut batch_bytes = Vec::new();
        arrow::ipc::writer::write_message(&mut batch_bytes, batch_msg, &options).unwrap();
        assert!(!starts_with_schema(&batch_bytes));
        assert_eq!(decode(&schema_bytes, &batch_bytes).unwrap()[0], b);
    }
}
