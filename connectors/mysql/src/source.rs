//! The MySQL/MariaDB source: describe the query, then stream its rows into Arrow batches.
//!
//! The query's column types come from a temporary table created from it with `LIMIT 0`
//! (`SHOW COLUMNS` then gives `decimal(12,2)`, `tinyint(1)`, `varbinary(16)`, which the
//! protocol's column metadata, as sqlx exposes it, cannot tell apart). Rows are read with the
//! binary protocol, so floats arrive exactly rather than as 6-digit text. A spawned task owns
//! the connection and hands batches over a channel of one slot, so memory stays bounded by
//! about two batches whatever the result size.

use backflow_connector_core::support::ReaderMessage as Message;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use backflow_connector_core::types::{json_field, uuid_field, UTC};
use backflow_connector_core::{BatchStream, ConnectorError, ReadOptions, Source};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use futures::TryStreamExt;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::{Connection, Executor, Row};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::config::{MysqlConfig, Role};
use crate::error::{classify, classify_during};

/// The temporary table a query is described through.
const DESCRIBE: &str = "`__backflow_describe`";

/// A validated MySQL/MariaDB source; it connects only in `check` and `read`, one dedicated
/// connection per call.
#[derive(Debug, Clone)]
pub struct MysqlSource {
    config: MysqlConfig,
}

impl MysqlSource {
    pub(crate) fn new(config: MysqlConfig) -> Self {
        Self { config }
    }
}

/// How one result column is decoded.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Signed16,
    Signed32,
    Signed64,
    Unsigned16,
    Unsigned32,
    Unsigned64,
    /// `bigint unsigned`: Decimal128(20, 0).
    UnsignedBig,
    Bool,
    Bit,
    Float32,
    Float64,
    Decimal(i8),
    Text,
    Json,
    Uuid,
    Binary,
    Date,
    Time,
    Datetime,
    Timestamp,
}

/// The Arrow field and decoder for a column of MySQL type `column_type` (as `SHOW COLUMNS`
/// prints it), or a schema error naming the column.
fn source_field(name: &str, column_type: &str) -> Result<(Kind, Field), ConnectorError> {
    let t = column_type.to_ascii_lowercase();
    let unsigned = t.contains("unsigned");
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let args: Vec<i64> = t
        .find('(')
        .and_then(|s| t[s + 1..].find(')').map(|e| &t[s + 1..s + 1 + e]))
        .map(|a| a.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default();
    let plain = |dt: DataType| Field::new(name, dt, true);
    let (kind, field) = match (base, unsigned) {
        ("tinyint", false) if args.first() == Some(&1) => (Kind::Bool, plain(DataType::Boolean)),
        ("tinyint", false) | ("smallint", false) | ("year", _) => {
            (Kind::Signed16, plain(DataType::Int16))
        }
        ("tinyint", true) => (Kind::Unsigned16, plain(DataType::Int16)),
        ("smallint", true) => (Kind::Unsigned32, plain(DataType::Int32)),
        ("mediumint", false) | ("int", false) | ("integer", false) => {
            (Kind::Signed32, plain(DataType::Int32))
        }
        ("mediumint", true) => (Kind::Unsigned32, plain(DataType::Int32)),
        ("int", true) | ("integer", true) => (Kind::Unsigned64, plain(DataType::Int64)),
        ("bigint", false) => (Kind::Signed64, plain(DataType::Int64)),
        ("bigint", true) => (Kind::UnsignedBig, plain(DataType::Decimal128(20, 0))),
        ("bit", _) => (Kind::Bit, plain(DataType::Int64)),
        ("float", _) => (Kind::Float32, plain(DataType::Float32)),
        ("double", _) | ("real", _) => (Kind::Float64, plain(DataType::Float64)),
        ("decimal", _) | ("numeric", _) => {
            let precision = args.first().copied().unwrap_or(10);
            let scale = args.get(1).copied().unwrap_or(0);
            if precision > 38 {
                return Err(ConnectorError::schema(
                    name,
                    format!(
                        "column `{name}` is {column_type}, wider than Arrow's 38-digit \
                         Decimal128; cast it in the query (CAST({name} AS DECIMAL(38,{})))",
                        scale.min(38)
                    ),
                ));
            }
            (
                Kind::Decimal(scale as i8),
                plain(DataType::Decimal128(precision as u8, scale as i8)),
            )
        }
        (
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
            | "inet4" | "inet6",
            _,
        ) => (Kind::Text, plain(DataType::Utf8)),
        ("json", _) => (Kind::Json, json_field(name)),
        ("uuid", _) => (Kind::Uuid, uuid_field(name)),
        ("binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob", _) => {
            (Kind::Binary, plain(DataType::Binary))
        }
        ("date", _) => (Kind::Date, plain(DataType::Date32)),
        ("time", _) => (Kind::Time, plain(DataType::Time64(TimeUnit::Microsecond))),
        ("datetime", _) => (
            Kind::Datetime,
            plain(DataType::Timestamp(TimeUnit::Microsecond, None)),
        ),
        ("timestamp", _) => (
            Kind::Timestamp,
            plain(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))),
        ),
        _ => {
            return Err(ConnectorError::schema(
                name,
                format!(
                    "column `{name}` has MySQL type {column_type}, which Backflow cannot read; \
                     cast it in the query (for example CAST({name} AS CHAR))"
                ),
            ))
        }
    };
    Ok((kind, field))
}

#[async_trait]
impl Source for MysqlSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("source.check", url = %self.config.redacted_url());
        async {
            let mut conn = self.config.connect(Role::Source).await?;
            conn.execute("SELECT 1")
                .await
                .map_err(classify_during("checking the connection"))?;
            let _ = conn.close().await;
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
        let (schema, kinds, conn, query) = async {
            let query = backflow_connector_core::support::normalize_query(query)?.to_string();
            let mut conn = self.config.connect(Role::Source).await?;
            let columns = describe(&mut conn, &query).await?;
            let mut fields = Vec::with_capacity(columns.len());
            let mut kinds = Vec::with_capacity(columns.len());
            for (name, column_type) in &columns {
                let (kind, field) = source_field(name, column_type)?;
                kinds.push(kind);
                fields.push(field);
            }
            let schema: SchemaRef = Arc::new(Schema::new(fields));
            tracing::Span::current().record("columns", schema.fields().len());
            // The describe step needed a writable session for its temporary table; the query
            // itself runs read-only, so a pasted `UPDATE` cannot change the source.
            conn.execute("SET SESSION TRANSACTION READ ONLY")
                .await
                .map_err(classify_during("making the session read-only"))?;
            Ok::<_, ConnectorError>((schema, kinds, conn, query))
        }
        .instrument(span.clone())
        .await?;

        let (tx, rx) = mpsc::channel::<Message>(1);
        let batch_size = options.batch_size.max(1);
        let task_schema = schema.clone();
        tokio::spawn(pump(conn, query, task_schema, kinds, batch_size, tx).instrument(span));
        Ok(backflow_connector_core::support::reader_stream(
            schema, rx, "mysql",
        ))
    }
}

/// The result columns of `query` with their full MySQL types.
async fn describe(
    conn: &mut MySqlConnection,
    query: &str,
) -> Result<Vec<(String, String)>, ConnectorError> {
    let create =
        format!("CREATE TEMPORARY TABLE {DESCRIBE} AS SELECT * FROM (\n{query}\n) AS q LIMIT 0");
    conn.execute(format!("DROP TEMPORARY TABLE IF EXISTS {DESCRIBE}").as_str())
        .await
        .map_err(classify_during("describing the query"))?;
    conn.execute(create.as_str()).await.map_err(classify)?;
    let show = format!("SHOW COLUMNS FROM {DESCRIBE}");
    let columns: Vec<(String, String)> = (&mut *conn)
        .fetch_all(show.as_str())
        .await
        .map_err(classify_during("describing the query"))?
        .iter()
        .map(|r| {
            let name: Vec<u8> = r.get_unchecked(0);
            let column_type: Vec<u8> = r.get_unchecked(1);
            (
                String::from_utf8_lossy(&name).into_owned(),
                String::from_utf8_lossy(&column_type).into_owned(),
            )
        })
        .collect();
    conn.execute(format!("DROP TEMPORARY TABLE {DESCRIBE}").as_str())
        .await
        .map_err(classify_during("describing the query"))?;
    Ok(columns)
}

/// Reads the query and sends batches until the end, an error, or the receiver going away.
async fn pump(
    mut conn: MySqlConnection,
    query: String,
    schema: SchemaRef,
    kinds: Vec<Kind>,
    batch_size: usize,
    tx: mpsc::Sender<Message>,
) {
    let mut builders = Builders::new(&schema, &kinds, batch_size);
    let result: Result<(), ConnectorError> = async {
        let mut rows = sqlx::query(&query).persistent(false).fetch(&mut conn);
        while let Some(row) = rows.try_next().await.map_err(classify)? {
            builders.push(&row)?;
            if builders.len() >= batch_size {
                let batch = builders.finish(&schema)?;
                if tx.send(Message::Batch(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if builders.len() > 0 {
            let batch = builders.finish(&schema)?;
            if tx.send(Message::Batch(batch)).await.is_err() {
                return Ok(());
            }
        }
        let _ = tx.send(Message::End).await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Message::Failed(e)).await;
    }
    let _ = conn.close().await;
}

/// One Arrow builder per column.
enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    Dec(Decimal128Builder),
    Bool(BooleanBuilder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder),
}

struct Builders {
    names: Vec<String>,
    kinds: Vec<Kind>,
    builders: Vec<Builder>,
    rows: usize,
}

impl Builders {
    fn new(schema: &SchemaRef, kinds: &[Kind], capacity: usize) -> Self {
        let builders = schema
            .fields()
            .iter()
            .zip(kinds)
            .map(|(f, k)| Self::builder(f.data_type(), *k, capacity))
            .collect();
        Self {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            kinds: kinds.to_vec(),
            builders,
            rows: 0,
        }
    }

    fn builder(dt: &DataType, kind: Kind, capacity: usize) -> Builder {
        match (kind, dt) {
            (Kind::Uuid, _) => Builder::Uuid(FixedSizeBinaryBuilder::with_capacity(capacity, 16)),
            (Kind::Bool, _) => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            (_, DataType::Int16) => Builder::I16(Int16Builder::with_capacity(capacity)),
            (_, DataType::Int32) => Builder::I32(Int32Builder::with_capacity(capacity)),
            (_, DataType::Int64) => Builder::I64(Int64Builder::with_capacity(capacity)),
            (_, DataType::Decimal128(p, s)) => Builder::Dec(
                Decimal128Builder::with_capacity(capacity)
                    .with_data_type(DataType::Decimal128(*p, *s)),
            ),
            (_, DataType::Float32) => Builder::F32(Float32Builder::with_capacity(capacity)),
            (_, DataType::Float64) => Builder::F64(Float64Builder::with_capacity(capacity)),
            (_, DataType::Binary) => Builder::Bin(BinaryBuilder::with_capacity(capacity, 0)),
            (_, DataType::Date32) => Builder::Date(Date32Builder::with_capacity(capacity)),
            (_, DataType::Time64(_)) => {
                Builder::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            (_, DataType::Timestamp(_, tz)) => Builder::Ts(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
            ),
            _ => Builder::Text(StringBuilder::with_capacity(capacity, 0)),
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn push(&mut self, row: &MySqlRow) -> Result<(), ConnectorError> {
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let name = &self.names[i];
            let kind = self.kinds[i];
            let bad = |e: sqlx::Error| {
                ConnectorError::data(name, format!("cannot read column `{name}`: {e}"))
            };
            let range = |v: i128| {
                ConnectorError::data(
                    name,
                    format!("value {v} of column `{name}` is out of range"),
                )
            };
            match (builder, kind) {
                (Builder::Bool(b), _) => {
                    let v: Option<i64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(v.map(|v| v != 0));
                }
                (Builder::I16(b), Kind::Signed16) => {
                    let v: Option<i64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(
                        v.map(|v| i16::try_from(v).map_err(|_| range(v.into())))
                            .transpose()?,
                    );
                }
                (Builder::I16(b), _) => {
                    let v: Option<u64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(
                        v.map(|v| i16::try_from(v).map_err(|_| range(v.into())))
                            .transpose()?,
                    );
                }
                (Builder::I32(b), Kind::Signed32) => {
                    let v: Option<i64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(
                        v.map(|v| i32::try_from(v).map_err(|_| range(v.into())))
                            .transpose()?,
                    );
                }
                (Builder::I32(b), _) => {
                    let v: Option<u64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(
                        v.map(|v| i32::try_from(v).map_err(|_| range(v.into())))
                            .transpose()?,
                    );
                }
                (Builder::I64(b), Kind::Signed64) => {
                    b.append_option(row.try_get_unchecked::<Option<i64>, _>(i).map_err(bad)?);
                }
                (Builder::I64(b), Kind::Bit) => {
                    let v: Option<Vec<u8>> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(
                        v.map(|bytes| bytes.iter().fold(0i64, |acc, x| (acc << 8) | i64::from(*x))),
                    );
                }
                (Builder::I64(b), _) => {
                    let v: Option<u64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(
                        v.map(|v| i64::try_from(v).map_err(|_| range(v.into())))
                            .transpose()?,
                    );
                }
                (Builder::Dec(b), Kind::UnsignedBig) => {
                    let v: Option<u64> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(v.map(i128::from));
                }
                (Builder::Dec(b), kind) => {
                    let scale = match kind {
                        Kind::Decimal(s) => s,
                        _ => 0,
                    };
                    let v: Option<String> = row.try_get_unchecked(i).map_err(bad)?;
                    let v = v
                        .map(|text| {
                            parse_decimal(&text, scale).ok_or_else(|| {
                                ConnectorError::data(
                                    name,
                                    format!("decimal `{text}` of column `{name}` does not fit"),
                                )
                            })
                        })
                        .transpose()?;
                    b.append_option(v);
                }
                (Builder::F32(b), _) => {
                    b.append_option(row.try_get_unchecked::<Option<f32>, _>(i).map_err(bad)?);
                }
                (Builder::F64(b), _) => {
                    b.append_option(row.try_get_unchecked::<Option<f64>, _>(i).map_err(bad)?);
                }
                (Builder::Text(b), _) => {
                    let v: Option<String> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(v);
                }
                (Builder::Bin(b), _) => {
                    let v: Option<Vec<u8>> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(v);
                }
                (Builder::Uuid(b), _) => {
                    let v: Option<String> = row.try_get_unchecked(i).map_err(bad)?;
                    match v {
                        None => b.append_null(),
                        Some(text) => {
                            let bytes = parse_uuid(&text).ok_or_else(|| {
                                ConnectorError::data(name, format!("`{text}` is not a UUID"))
                            })?;
                            b.append_value(bytes)?;
                        }
                    }
                }
                (Builder::Date(b), _) => {
                    let v: Option<NaiveDate> = row.try_get_unchecked(i).map_err(bad)?;
                    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                    b.append_option(v.map(|d| (d - epoch).num_days() as i32));
                }
                (Builder::Time(b), _) => {
                    let v: Option<NaiveTime> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(v.map(|t| {
                        i64::from(t.num_seconds_from_midnight()) * 1_000_000
                            + i64::from(t.nanosecond() / 1000)
                    }));
                }
                (Builder::Ts(b), _) => {
                    let v: Option<NaiveDateTime> = row.try_get_unchecked(i).map_err(bad)?;
                    b.append_option(v.map(|t| t.and_utc().timestamp_micros()));
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, ConnectorError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::I16(b) => Arc::new(b.finish()),
                    Builder::I32(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::Dec(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::F32(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Bin(b) => Arc::new(b.finish()),
                    Builder::Uuid(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// A decimal's text (`-12.5`) as an integer scaled by `scale`, if it fits without losing
/// digits.
fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    if frac.len() > scale && frac[scale..].bytes().any(|b| b != b'0') {
        return None;
    }
    let mut value: i128 = 0;
    for b in int
        .bytes()
        .chain(frac.bytes().chain(std::iter::repeat(b'0')).take(scale))
    {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// The 16 bytes of a hyphenated or plain hex UUID.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_column_types() {
        let kind = |t: &str| source_field("c", t).map(|(_, f)| f.data_type().clone());
        assert_eq!(kind("tinyint(1)").unwrap(), DataType::Boolean);
        assert_eq!(kind("int(10) unsigned").unwrap(), DataType::Int64);
        assert_eq!(
            kind("bigint(20) unsigned").unwrap(),
            DataType::Decimal128(20, 0)
        );
        assert_eq!(kind("decimal(12,2)").unwrap(), DataType::Decimal128(12, 2));
        assert_eq!(kind("varbinary(16)").unwrap(), DataType::Binary);
        assert!(kind("decimal(65,2)").is_err());
        let e = source_field("shape", "geometry").unwrap_err();
        assert_eq!(e.column(), Some("shape"));
    }

    #[test]
    fn parses_decimals_and_uuids() {
        assert_eq!(parse_decimal("-12.5", 2), Some(-1250));
        assert_eq!(parse_decimal("0.00", 2), Some(0));
        assert_eq!(parse_decimal("1.234", 2), None);
        assert_eq!(parse_decimal("7", 0), Some(7));
        assert_eq!(
            parse_uuid("00112233-4455-6677-8899-aabbccddeeff").map(|u| u[15]),
            Some(0xff)
        );
    }
}
