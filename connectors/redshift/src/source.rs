//! The Redshift source: describe the query through a temporary table, then stream it with a
//! server-side cursor in a read-only transaction.
//!
//! Every statement goes over the simple query protocol, so the driver never asks the catalog
//! about types Redshift alone has (`SUPER`, `VARBYTE`) and values arrive in their text form.
//! A spawned task owns the connection: it runs `FETCH FORWARD n`, decodes rows as they
//! arrive, and hands batches over a channel of one slot, so at most the batch in the channel
//! and the one being built are held whatever the result size. The stream ends only after a
//! `FETCH` came back short and the transaction committed; anything else is an error item.

use backflow_connector_core::support::ReaderMessage as Message;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use backflow_connector_core::{BatchStream, ConnectorError, ReadOptions, Source};
use backflow_postgres::shared::{classify, quote, Role};
use futures::StreamExt;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection, Executor, Row, ValueRef};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::config::RedshiftConfig;
use crate::types::{source_field, BatchBuilder, ColumnType};

/// The temporary table a query is described through.
const DESCRIBE: &str = "__backflow_describe";

/// The cursor a query is read through.
const CURSOR: &str = "__backflow_cursor";

/// A validated Redshift source; it connects only in `check` and `read`, one dedicated
/// connection per call.
#[derive(Debug, Clone)]
pub struct RedshiftSource {
    config: RedshiftConfig,
}

impl RedshiftSource {
    pub(crate) fn new(config: RedshiftConfig) -> Self {
        Self { config }
    }

    async fn connect(&self) -> Result<PgConnection, ConnectorError> {
        self.config.connection.connect(Role::Plain).await
    }
}

#[async_trait]
impl Source for RedshiftSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        let span =
            tracing::info_span!("source.check", url = %self.config.connection.redacted_url());
        async {
            let mut conn = self.connect().await?;
            conn.execute("SELECT 1")
                .await
                .map_err(|e| classify(e).context("checking the connection"))?;
            let _ = conn.close().await;
            tracing::debug!("redshift source reachable");
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError> {
        let span = tracing::info_span!(
            "source.read",
            url = %self.config.connection.redacted_url(),
            batch_size = options.batch_size,
            fetch_size = self.config.fetch_size,
            columns = tracing::field::Empty,
        );
        let (schema, kinds, conn) = async {
            let query = backflow_connector_core::support::normalize_query(query)?;
            let mut conn = self.connect().await?;
            let columns = describe(&mut conn, query).await?;
            let mut fields = Vec::with_capacity(columns.len());
            let mut kinds = Vec::with_capacity(columns.len());
            for column in &columns {
                let (kind, field) = source_field(column)?;
                kinds.push(kind);
                fields.push(field);
            }
            let schema: SchemaRef = Arc::new(Schema::new(fields));
            tracing::Span::current().record("columns", schema.fields().len());
            // The read itself runs read-only, so a pasted statement cannot change the
            // warehouse; a privilege or planning error surfaces here, from `read`.
            conn.execute("BEGIN READ ONLY").await.map_err(classify)?;
            let declare = format!("DECLARE {} CURSOR FOR\n{query}\n", quote(CURSOR));
            conn.execute(declare.as_str()).await.map_err(classify)?;
            Ok::<_, ConnectorError>((schema, kinds, conn))
        }
        .instrument(span.clone())
        .await?;

        let (tx, rx) = mpsc::channel::<Message>(1);
        let builder = BatchBuilder::new(schema.clone(), kinds);
        let batch_size = options.batch_size.max(1);
        let fetch_size = self.config.fetch_size;
        tokio::spawn(pump(conn, builder, batch_size, fetch_size, tx).instrument(span));
        Ok(backflow_connector_core::support::reader_stream(
            schema, rx, "redshift",
        ))
    }
}

/// The result columns of `query` with their types and typmods, from an empty temporary table
/// created from it in a transaction that is rolled back (a syntax error surfaces here, as
/// the warehouse words it). Redshift's `RowDescription` carries typmods, but the driver does
/// not expose them; the catalog does.
async fn describe(conn: &mut PgConnection, query: &str) -> Result<Vec<ColumnType>, ConnectorError> {
    conn.execute("BEGIN").await.map_err(classify)?;
    let result = async {
        let create = format!(
            "CREATE TEMP TABLE {} AS SELECT * FROM (\n{query}\n) AS q LIMIT 0",
            quote(DESCRIBE)
        );
        conn.execute(create.as_str()).await?;
        let catalog = format!(
            "SELECT a.attname, t.typname, a.atttypmod \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = '{}'::regclass AND a.attnum > 0 ORDER BY a.attnum",
            quote(DESCRIBE)
        );
        let rows: Vec<PgRow> = conn.fetch_all(catalog.as_str()).await?;
        rows.iter()
            .map(|r| {
                Ok(ColumnType {
                    name: text(r, 0)?,
                    type_name: text(r, 1)?,
                    typmod: text(r, 2)?.parse().unwrap_or(-1),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
    }
    .await;
    let rollback = conn.execute("ROLLBACK").await;
    let columns = result.map_err(classify)?;
    rollback.map_err(|e| classify(e).context("describing the query"))?;
    Ok(columns)
}

/// Column `i` of a simple-protocol row as text.
fn text(row: &PgRow, i: usize) -> Result<String, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    Ok(raw.as_str().map_err(sqlx::Error::Decode)?.to_string())
}

/// Fetches and decodes until the cursor is exhausted, fails, or the reader goes away.
async fn pump(
    mut conn: PgConnection,
    mut builder: BatchBuilder,
    batch_size: usize,
    fetch_size: usize,
    tx: mpsc::Sender<Message>,
) {
    let mut rows: u64 = 0;
    let mut batches: u64 = 0;
    let fetch = format!("FETCH FORWARD {fetch_size} FROM {}", quote(CURSOR));
    let outcome: Result<bool, ConnectorError> = async {
        loop {
            let mut fetched = 0usize;
            {
                let mut stream = conn.fetch(fetch.as_str());
                loop {
                    let row = tokio::select! {
                        _ = tx.closed() => return Ok(false),
                        row = stream.next() => row,
                    };
                    let Some(row) = row else { break };
                    let row = row.map_err(|e| classify(e).context("reading the query result"))?;
                    fetched += 1;
                    let values = (0..row.len())
                        .map(|i| {
                            let raw = row.try_get_raw(i).map_err(classify)?;
                            if raw.is_null() {
                                return Ok(None);
                            }
                            raw.as_str().map(Some).map_err(|e| {
                                ConnectorError::internal(format!("a value is not text: {e}"))
                            })
                        })
                        .collect::<Result<Vec<_>, ConnectorError>>()?;
                    builder.push(&values)?;
                    if builder.len() >= batch_size {
                        let batch = builder.finish()?;
                        rows += batch.num_rows() as u64;
                        batches += 1;
                        if tx.send(Message::Batch(batch)).await.is_err() {
                            return Ok(false);
                        }
                    }
                }
            }
            if fetched < fetch_size {
                break;
            }
        }
        if builder.len() > 0 {
            let batch = builder.finish()?;
            rows += batch.num_rows() as u64;
            batches += 1;
            if tx.send(Message::Batch(batch)).await.is_err() {
                return Ok(false);
            }
        }
        conn.execute(format!("CLOSE {}", quote(CURSOR)).as_str())
            .await
            .map_err(|e| classify(e).context("closing the cursor"))?;
        conn.execute("COMMIT")
            .await
            .map_err(|e| classify(e).context("ending the read transaction"))?;
        Ok(true)
    }
    .await;
    match outcome {
        Ok(true) => {
            tracing::info!(rows, batches, "redshift read finished");
            let _ = tx.send(Message::End).await;
            let _ = conn.close().await;
        }
        Ok(false) => tracing::debug!(rows, batches, "redshift read abandoned by its reader"),
        Err(e) => {
            // The message may quote a value, so only its classification is logged.
            tracing::warn!(
                rows,
                batches,
                kind = %e.kind(),
                code = e.code().unwrap_or(""),
                column = e.column().unwrap_or(""),
                retryable = e.is_retryable(),
                "redshift read failed"
            );
            let _ = tx.send(Message::Failed(e)).await;
        }
    }
}
