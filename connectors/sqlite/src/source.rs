//! The SQLite source: streams a query's rows into Arrow batches.
//!
//! The schema comes from the statement's declared column types (`INTEGER` → `Int64`,
//! `REAL`/`FLOAT`/`DOUBLE` → `Float64`, `TEXT`/`VARCHAR`/`CHAR` → `Utf8`, `BLOB` → `Binary`,
//! `BOOLEAN` → `Boolean`, `DATE`/`TIME`/`DATETIME`/`TIMESTAMP` → `Utf8`). A column without a
//! declared type (an expression), or with one sqlx does not classify (`NUMERIC`, `DECIMAL`,
//! `JSON`, …), takes its type from the values of the first batch: all integers → `Int64`,
//! integers and reals → `Float64`, text → `Utf8`, blobs → `Binary`, nothing but NULLs → `Utf8`.
//! SQLite lets any column hold any value, so a value of another storage class is
//! converted when that is lossless (an integer in a `REAL` column, a number in a `TEXT` column)
//! and otherwise fails the read naming the column; `CAST` in the query settles such columns.
//!
//! A task owns the connection and fetches rows while the consumer reads batches through a
//! channel of two, so memory stays at a few batches whatever the result size.

use backflow_connector_core::support::ReaderMessage as Message;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use backflow_connector_core::{BatchStream, ConnectorError, ReadOptions, Source};
use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Column, Connection, Decode, Executor, Row, Sqlite, Statement, TypeInfo, ValueRef};
use tokio::sync::{mpsc, oneshot};

use crate::config::SqliteConfig;
use crate::error::from_sqlx;

/// A validated SQLite source. Constructing one does no I/O.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    config: SqliteConfig,
}

impl SqliteSource {
    pub(crate) fn new(config: SqliteConfig) -> Self {
        Self { config }
    }

    /// The validated config, so callers can show which file a connection reads.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }
}

#[async_trait]
impl Source for SqliteSource {
    #[tracing::instrument(name = "source.check", skip_all, fields(connector = "sqlite"))]
    async fn check(&self) -> Result<(), ConnectorError> {
        let mut conn = self.config.connect_existing(true).await?;
        let result = conn.execute("SELECT 1").await;
        let _ = conn.close().await;
        result.map(|_| ()).map_err(|e| from_sqlx(&e))
    }

    #[tracing::instrument(name = "source.read", skip_all, fields(connector = "sqlite"))]
    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError> {
        let conn = self.config.connect_existing(true).await?;
        let (schema_tx, schema_rx) = oneshot::channel();
        let (batch_tx, batch_rx) = mpsc::channel(2);
        let reader = Reader {
            query: query.to_string(),
            batch_size: options.batch_size.max(1),
            batches: batch_tx,
        };
        tokio::spawn(reader.run(conn, schema_tx));
        let schema = schema_rx.await.map_err(|_| {
            ConnectorError::internal("sqlite reader task ended before the schema")
        })??;
        tracing::debug!(columns = schema.fields().len(), "sqlite query planned");
        Ok(backflow_connector_core::support::reader_stream(
            schema, batch_rx, "sqlite",
        ))
    }
}

struct Reader {
    query: String,
    batch_size: usize,
    batches: mpsc::Sender<Message>,
}

impl Reader {
    async fn run(
        self,
        mut conn: SqliteConnection,
        schema_tx: oneshot::Sender<Result<SchemaRef, ConnectorError>>,
    ) {
        let mut schema_tx = Some(schema_tx);
        let result = self.stream_rows(&mut conn, &mut schema_tx).await;
        if let Err(e) = result {
            match schema_tx.take() {
                Some(tx) => {
                    let _ = tx.send(Err(e));
                }
                None => {
                    let _ = self.batches.send(Message::Failed(e)).await;
                }
            }
        }
        let _ = conn.close().await;
    }

    async fn stream_rows(
        &self,
        conn: &mut SqliteConnection,
        schema_tx: &mut Option<oneshot::Sender<Result<SchemaRef, ConnectorError>>>,
    ) -> Result<(), ConnectorError> {
        let statement = conn
            .prepare(self.query.as_str())
            .await
            .map_err(|e| from_sqlx(&e))?;
        let declared: Vec<(String, Option<DataType>)> = statement
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), declared_type(c.type_info().name())))
            .collect();
        let mut rows = sqlx::query(self.query.as_str()).fetch(&mut *conn);
        // The first batch of rows decides the types of columns without a usable declared type.
        let mut first = Vec::with_capacity(self.batch_size.min(1024));
        while first.len() < self.batch_size {
            match rows.try_next().await.map_err(|e| from_sqlx(&e))? {
                Some(row) => first.push(row),
                None => break,
            }
        }
        let exhausted = first.len() < self.batch_size;
        let fields: Vec<Field> = declared
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| {
                let ty = ty.clone().unwrap_or_else(|| inferred_type(&first, i));
                Field::new(name, ty, true)
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        if let Some(tx) = schema_tx.take() {
            if tx.send(Ok(schema.clone())).is_err() {
                return Ok(());
            }
        }
        let mut builder = BatchBuilder::new(schema, self.batch_size);
        for row in &first {
            builder.push(row)?;
        }
        drop(first);
        loop {
            if builder.len() >= self.batch_size {
                let batch = builder.finish()?;
                if self.batches.send(Message::Batch(batch)).await.is_err() {
                    return Ok(()); // the consumer went away
                }
            }
            if exhausted {
                break;
            }
            match rows.try_next().await.map_err(|e| from_sqlx(&e))? {
                Some(row) => builder.push(&row)?,
                None => break,
            }
        }
        if builder.len() > 0 {
            let batch = builder.finish()?;
            if self.batches.send(Message::Batch(batch)).await.is_err() {
                return Ok(());
            }
        }
        let _ = self.batches.send(Message::End).await;
        Ok(())
    }
}

/// The Arrow type for a declared column type, as sqlx names it; `None` when there is none to
/// use. sqlx reports `NULL` both for expressions and for declared types it does not recognise
/// (`NUMERIC`, `DECIMAL(10,2)`, `JSON`, …), and offers no safe way to tell them apart, so both
/// are inferred from their values.
fn declared_type(name: &str) -> Option<DataType> {
    Some(match name {
        "NULL" => return None,
        "INTEGER" => DataType::Int64,
        "REAL" => DataType::Float64,
        "BLOB" => DataType::Binary,
        "BOOLEAN" => DataType::Boolean,
        _ => DataType::Utf8,
    })
}

/// The Arrow type of a column without a usable declared type, from the storage classes of its
/// values in the first batch: integers and reals widen to `Float64`, text with blobs is
/// `Binary`, any other mix is `Utf8`, and a column of NULLs only (or no rows) is `Utf8`.
fn inferred_type(rows: &[SqliteRow], column: usize) -> DataType {
    let mut inferred: Option<DataType> = None;
    for row in rows {
        let Ok(value) = row.try_get_raw(column) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let class = match value.type_info().name() {
            "INTEGER" => DataType::Int64,
            "REAL" => DataType::Float64,
            "BLOB" => DataType::Binary,
            _ => DataType::Utf8,
        };
        inferred = Some(match (inferred, class) {
            (None, class) => class,
            (Some(a), b) if a == b => a,
            (Some(DataType::Int64 | DataType::Float64), DataType::Int64 | DataType::Float64) => {
                DataType::Float64
            }
            (Some(DataType::Binary | DataType::Utf8), DataType::Binary | DataType::Utf8) => {
                DataType::Binary
            }
            _ => DataType::Utf8,
        });
    }
    inferred.unwrap_or(DataType::Utf8)
}

/// A value of a row, by storage class.
enum Value<'r> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'r str),
    Blob(&'r [u8]),
}

fn value<'r>(row: &'r SqliteRow, i: usize, column: &str) -> Result<Value<'r>, ConnectorError> {
    let decode_error = |e: sqlx::error::BoxDynError| {
        ConnectorError::data(column, format!("cannot decode value: {e}"))
    };
    let raw = row.try_get_raw(i).map_err(|e| from_sqlx(&e))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let class = raw.type_info().name().to_string();
    Ok(match class.as_str() {
        "INTEGER" => Value::Int(<i64 as Decode<Sqlite>>::decode(raw).map_err(decode_error)?),
        "REAL" => Value::Real(<f64 as Decode<Sqlite>>::decode(raw).map_err(decode_error)?),
        "BLOB" => Value::Blob(<&[u8] as Decode<Sqlite>>::decode(raw).map_err(decode_error)?),
        _ => Value::Text(<&str as Decode<Sqlite>>::decode(raw).map_err(decode_error)?),
    })
}

enum ColumnBuilder {
    Int(Int64Builder),
    Real(Float64Builder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
    Bool(BooleanBuilder),
}

struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    len: usize,
}

impl BatchBuilder {
    fn new(schema: SchemaRef, capacity: usize) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Self::builder(f.data_type(), capacity))
            .collect();
        Self {
            schema,
            columns,
            len: 0,
        }
    }

    fn builder(ty: &DataType, capacity: usize) -> ColumnBuilder {
        match ty {
            DataType::Int64 => ColumnBuilder::Int(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::Real(Float64Builder::with_capacity(capacity)),
            DataType::Binary => ColumnBuilder::Blob(BinaryBuilder::with_capacity(capacity, 0)),
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            _ => ColumnBuilder::Text(StringBuilder::with_capacity(capacity, 0)),
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, row: &SqliteRow) -> Result<(), ConnectorError> {
        for (i, (builder, field)) in self
            .columns
            .iter_mut()
            .zip(self.schema.fields())
            .enumerate()
        {
            let name = field.name();
            let v = value(row, i, name)?;
            let mismatch = |what: &str| {
                ConnectorError::data(
                    name,
                    format!(
                        "a {what} value in a column read as {}; CAST the column in the query",
                        field.data_type()
                    ),
                )
            };
            match (builder, v) {
                (ColumnBuilder::Int(b), Value::Null) => b.append_null(),
                (ColumnBuilder::Real(b), Value::Null) => b.append_null(),
                (ColumnBuilder::Text(b), Value::Null) => b.append_null(),
                (ColumnBuilder::Blob(b), Value::Null) => b.append_null(),
                (ColumnBuilder::Bool(b), Value::Null) => b.append_null(),

                (ColumnBuilder::Int(b), Value::Int(v)) => b.append_value(v),
                (ColumnBuilder::Int(b), Value::Real(v)) => {
                    // Only integral reals in i64's range convert without loss.
                    // (-2^63 is exact as f64; 2^63 is the first value past i64::MAX.)
                    if v.fract() == 0.0
                        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v)
                    {
                        b.append_value(v as i64)
                    } else {
                        return Err(mismatch("non-integral real"));
                    }
                }
                (ColumnBuilder::Int(b), Value::Text(s)) => match s.trim().parse::<i64>() {
                    Ok(v) => b.append_value(v),
                    Err(_) => return Err(mismatch("text")),
                },
                (ColumnBuilder::Int(_), Value::Blob(_)) => return Err(mismatch("blob")),

                (ColumnBuilder::Real(b), Value::Real(v)) => b.append_value(v),
                (ColumnBuilder::Real(b), Value::Int(v)) => b.append_value(v as f64),
                // The SQLite destination stores NaN as the text 'NaN' (a NaN real becomes NULL).
                (ColumnBuilder::Real(b), Value::Text(s)) => match parse_float(s) {
                    Some(v) => b.append_value(v),
                    None => return Err(mismatch("text")),
                },
                (ColumnBuilder::Real(_), Value::Blob(_)) => return Err(mismatch("blob")),

                (ColumnBuilder::Text(b), Value::Text(s)) => b.append_value(s),
                (ColumnBuilder::Text(b), Value::Int(v)) => b.append_value(v.to_string()),
                (ColumnBuilder::Text(b), Value::Real(v)) => b.append_value(v.to_string()),
                (ColumnBuilder::Text(b), Value::Blob(bytes)) => match std::str::from_utf8(bytes) {
                    Ok(s) => b.append_value(s),
                    Err(_) => return Err(mismatch("non-UTF-8 blob")),
                },

                (ColumnBuilder::Blob(b), Value::Blob(v)) => b.append_value(v),
                (ColumnBuilder::Blob(b), Value::Text(s)) => b.append_value(s.as_bytes()),
                (ColumnBuilder::Blob(_), Value::Int(_) | Value::Real(_)) => {
                    return Err(mismatch("numeric"))
                }

                (ColumnBuilder::Bool(b), Value::Int(v)) => b.append_value(v != 0),
                (ColumnBuilder::Bool(b), Value::Real(v)) => b.append_value(v != 0.0),
                (ColumnBuilder::Bool(b), Value::Text(s)) => {
                    match s.trim().to_ascii_lowercase().as_str() {
                        "true" | "t" | "1" => b.append_value(true),
                        "false" | "f" | "0" => b.append_value(false),
                        _ => return Err(mismatch("text")),
                    }
                }
                (ColumnBuilder::Bool(_), Value::Blob(_)) => return Err(mismatch("blob")),
            }
        }
        self.len += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch, ConnectorError> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    ColumnBuilder::Int(b) => Arc::new(b.finish()),
                    ColumnBuilder::Real(b) => Arc::new(b.finish()),
                    ColumnBuilder::Text(b) => Arc::new(b.finish()),
                    ColumnBuilder::Blob(b) => Arc::new(b.finish()),
                    ColumnBuilder::Bool(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(self.len));
        self.len = 0;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim() {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+Infinity" | "+inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}
