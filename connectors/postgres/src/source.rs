//! The PostgreSQL source: describe the query, then stream `COPY (query) TO STDOUT (FORMAT
//! binary)` through an incremental decoder into Arrow batches.
//!
//! A spawned task owns the connection and decodes; it hands batches over a channel of one
//! slot, so at most the batch in the channel and the one being built are held whatever the
//! result size, and the server is throttled by TCP back-pressure. The stream ends only after
//! the COPY trailer and the server's completion; anything else is an error item.

use backflow_connector_core::support::ReaderMessage as Message;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use backflow_connector_core::{BatchStream, ConnectorError, ReadOptions, Source};
use futures::StreamExt;
use sqlx::postgres::PgConnection;
use sqlx::{Column, Connection, Executor, Statement, TypeInfo};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::codec::{ColumnDecoder, CopyDecoder};
use crate::config::{PostgresConfig, Role};
use crate::error::{classify, classify_during, is_connection_lost};
use crate::ident::quote;
use crate::types::{needs_typmod, source_field};

/// A validated PostgreSQL source; it connects only in `check` and `read`, one dedicated
/// (read-only) connection per call.
#[derive(Debug, Clone)]
pub struct PostgresSource {
    config: PostgresConfig,
}

impl PostgresSource {
    pub(crate) fn new(config: PostgresConfig) -> Self {
        Self { config }
    }
}

/// One result column as the server describes it.
#[derive(Debug, Clone)]
struct ResultColumn {
    name: String,
    type_oid: u32,
    typmod: i32,
    type_name: String,
    relation: Option<(u32, i16)>,
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("source.check", url = %self.config.redacted_url());
        async {
            let mut conn = self.config.connect(Role::Source).await?;
            conn.execute("SELECT 1")
                .await
                .map_err(classify_during("checking the connection"))?;
            let _ = conn.close().await;
            tracing::debug!("postgres source reachable");
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError> {
        let span = tracing::info_span!(
            "source.read",
            url = %self.config.redacted_url(),
            batch_size = options.batch_size,
            columns = tracing::field::Empty,
        );
        let (schema, conn, copy_sql, decoder) = async {
            let query = backflow_connector_core::support::normalize_query(query)?;
            let mut conn = self.config.connect(Role::Source).await?;
            let columns = describe(&mut conn, query).await?;
            let mut fields: Vec<Field> = Vec::with_capacity(columns.len());
            let mut decoders = Vec::with_capacity(columns.len());
            for c in &columns {
                let (kind, field) = source_field(&c.name, c.type_oid, c.typmod, &c.type_name)?;
                decoders.push(ColumnDecoder::new(
                    &c.name,
                    &c.type_name,
                    kind,
                    field.data_type(),
                )?);
                fields.push(field);
            }
            let schema: SchemaRef = Arc::new(Schema::new(fields));
            tracing::Span::current().record("columns", schema.fields().len());
            let decoder = CopyDecoder::new(schema.clone(), decoders);
            let copy_sql = format!("COPY (\n{query}\n) TO STDOUT (FORMAT binary)");
            Ok::<_, ConnectorError>((schema, conn, copy_sql, decoder))
        }
        .instrument(span.clone())
        .await?;

        let (tx, rx) = mpsc::channel::<Message>(1);
        let (started_tx, started_rx) = oneshot::channel();
        let batch_size = options.batch_size.max(1);
        tokio::spawn(pump(conn, copy_sql, decoder, batch_size, tx, started_tx).instrument(span));
        // Errors raised when the query starts executing (a privilege is checked then, not when
        // preparing) come from `read` itself rather than as the first item.
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ConnectorError::internal(
                    "the postgres reader stopped before the query started",
                ))
            }
        }

        Ok(backflow_connector_core::support::reader_stream(
            schema, rx, "postgres",
        ))
    }
}

/// Prepares the query to learn its columns (a syntax error surfaces here, as the database
/// words it), then finds the typmod of numeric columns so their precision and scale carry
/// over.
async fn describe(
    conn: &mut PgConnection,
    query: &str,
) -> Result<Vec<ResultColumn>, ConnectorError> {
    let statement = conn.prepare(query).await.map_err(classify)?;
    let mut columns: Vec<ResultColumn> = statement
        .columns()
        .iter()
        .map(|c| ResultColumn {
            name: c.name().to_string(),
            type_oid: c.type_info().oid().map_or(0, |o| o.0),
            typmod: -1,
            type_name: c.type_info().name().to_lowercase(),
            relation: c
                .relation_id()
                .zip(c.relation_attribute_no())
                .map(|(r, a)| (r.0, a)),
        })
        .collect();
    if columns.iter().any(|c| needs_typmod(c.type_oid)) {
        fill_typmods(conn, query, &mut columns).await?;
    }
    Ok(columns)
}

/// Typmods are not in sqlx's description, so they come from the catalog: first from a
/// temporary view over the query (covers expressions such as `x::numeric(12,2)`), created in
/// a transaction that is rolled back; where that is impossible (a hot standby), from the
/// table column the result column comes from; otherwise the column counts as unconstrained.
async fn fill_typmods(
    conn: &mut PgConnection,
    query: &str,
    columns: &mut [ResultColumn],
) -> Result<(), ConnectorError> {
    match typmods_from_view(conn, query, columns.len()).await {
        Ok(typmods) if typmods.len() == columns.len() => {
            for (c, t) in columns.iter_mut().zip(typmods) {
                c.typmod = t;
            }
            return Ok(());
        }
        Ok(_) => {}
        Err(e) if is_connection_lost(&e) => return Err(classify(e)),
        Err(e) => {
            tracing::debug!(error = %classify(e), "cannot describe typmods through a view");
        }
    }
    for c in columns.iter_mut().filter(|c| needs_typmod(c.type_oid)) {
        if let Some((relation, attnum)) = c.relation {
            let typmod: Option<i32> = sqlx::query_scalar(
                "SELECT atttypmod FROM pg_catalog.pg_attribute \
                 WHERE attrelid = $1::int8::oid AND attnum = $2",
            )
            .bind(i64::from(relation))
            .bind(attnum)
            .fetch_optional(&mut *conn)
            .await
            .map_err(classify_during("reading column typmods"))?;
            c.typmod = typmod.unwrap_or(-1);
        }
    }
    Ok(())
}

async fn typmods_from_view(
    conn: &mut PgConnection,
    query: &str,
    width: usize,
) -> Result<Vec<i32>, sqlx::Error> {
    conn.execute("BEGIN READ WRITE").await?;
    let result = async {
        let names: Vec<String> = (1..=width).map(|i| quote(&format!("c{i}"))).collect();
        let create = format!(
            "CREATE TEMP VIEW \"__backflow_describe\" ({}) AS\n{query}\n",
            names.join(", ")
        );
        // Extended protocol: exactly one statement, whatever the query text holds.
        sqlx::query(&create)
            .persistent(false)
            .execute(&mut *conn)
            .await?;
        sqlx::query_scalar::<_, i32>(
            "SELECT atttypmod FROM pg_catalog.pg_attribute \
             WHERE attrelid = 'pg_temp.__backflow_describe'::regclass AND attnum > 0 \
             ORDER BY attnum",
        )
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
    }
    .await;
    let rollback = conn.execute("ROLLBACK").await;
    let typmods = result?;
    rollback?;
    Ok(typmods)
}

/// Runs the COPY and feeds decoded batches to the channel until the result ends, fails, or
/// the reader goes away.
async fn pump(
    mut conn: PgConnection,
    copy_sql: String,
    mut decoder: CopyDecoder,
    batch_size: usize,
    tx: mpsc::Sender<Message>,
    started: oneshot::Sender<Result<(), ConnectorError>>,
) {
    let mut rows: u64 = 0;
    let mut batches: u64 = 0;
    let outcome: Result<bool, ConnectorError> = async {
        let mut stream = match conn.copy_out_raw(&copy_sql).await {
            Ok(stream) => {
                let _ = started.send(Ok(()));
                stream
            }
            Err(e) => {
                let _ = started.send(Err(classify(e)));
                return Ok(false);
            }
        };
        loop {
            let chunk = tokio::select! {
                _ = tx.closed() => return Ok(false),
                chunk = stream.next() => chunk,
            };
            match chunk {
                None => break,
                Some(Err(e)) => return Err(classify(e).context("reading the query result")),
                Some(Ok(bytes)) => {
                    decoder.push(&bytes);
                    loop {
                        decoder.decode(batch_size)?;
                        if decoder.pending_rows() < batch_size {
                            break;
                        }
                        let batch = decoder.take_batch()?;
                        rows += batch.num_rows() as u64;
                        batches += 1;
                        if tx.send(Message::Batch(batch)).await.is_err() {
                            return Ok(false);
                        }
                    }
                }
            }
        }
        decoder.decode(usize::MAX)?;
        if !decoder.is_finished() {
            return Err(ConnectorError::connectivity(
                "the COPY stream ended before its end marker",
            ));
        }
        if decoder.pending_rows() > 0 {
            let batch = decoder.take_batch()?;
            rows += batch.num_rows() as u64;
            batches += 1;
            if tx.send(Message::Batch(batch)).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
    .await;
    match outcome {
        Ok(true) => {
            tracing::info!(rows, batches, "postgres read finished");
            let _ = tx.send(Message::End).await;
            let _ = conn.close().await;
        }
        Ok(false) => {
            tracing::debug!(
                rows,
                batches,
                "postgres read stopped early: refused or abandoned"
            );
        }
        Err(e) => {
            // The message may quote a value, so only its classification is logged.
            tracing::warn!(
                rows,
                batches,
                kind = %e.kind(),
                code = e.code().unwrap_or(""),
                column = e.column().unwrap_or(""),
                retryable = e.is_retryable(),
                "postgres read failed"
            );
            let _ = tx.send(Message::Failed(e)).await;
        }
    }
}
