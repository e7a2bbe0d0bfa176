//! Redshift types → canonical Arrow, and decoding their text form (what a `FETCH` returns
//! over the simple query protocol) into Arrow builders.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use backflow_connector_core::types::{json_field, UTC};
use backflow_connector_core::ConnectorError;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Precision and scale given to a `NUMERIC` without a declared precision.
const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// How one column's text values are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal(i8),
    Bool,
    Text,
    Json,
    Binary,
    Date,
    Time,
    Timestamp,
    TimestampTz,
}

/// One result column as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnType {
    /// The column name.
    pub name: String,
    /// `pg_type.typname` (`int8`, `numeric`, `super`, `varbyte`, …).
    pub type_name: String,
    /// `pg_attribute.atttypmod`.
    pub typmod: i32,
}

/// The decoder and Arrow field of a column, or a schema error naming it and suggesting a cast.
pub(crate) fn source_field(column: &ColumnType) -> Result<(Kind, Field), ConnectorError> {
    let name = column.name.as_str();
    let plain = |dt: DataType| Field::new(name, dt, true);
    Ok(match column.type_name.as_str() {
        "int2" => (Kind::Int16, plain(DataType::Int16)),
        "int4" => (Kind::Int32, plain(DataType::Int32)),
        "int8" => (Kind::Int64, plain(DataType::Int64)),
        "float4" => (Kind::Float32, plain(DataType::Float32)),
        "float8" => (Kind::Float64, plain(DataType::Float64)),
        "numeric" => {
            let (precision, scale) = numeric_typmod(name, column.typmod)?;
            (
                Kind::Decimal(scale),
                plain(DataType::Decimal128(precision, scale)),
            )
        }
        "bool" => (Kind::Bool, plain(DataType::Boolean)),
        "bpchar" | "varchar" | "text" | "name" | "char" => (Kind::Text, plain(DataType::Utf8)),
        "super" | "json" | "jsonb" => (Kind::Json, json_field(name)),
        "varbyte" | "bytea" => (Kind::Binary, plain(DataType::Binary)),
        "date" => (Kind::Date, plain(DataType::Date32)),
        "time" => (Kind::Time, plain(DataType::Time64(TimeUnit::Microsecond))),
        "timestamp" => (
            Kind::Timestamp,
            plain(DataType::Timestamp(TimeUnit::Microsecond, None)),
        ),
        "timestamptz" => (
            Kind::TimestampTz,
            plain(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))),
        ),
        other => {
            return Err(ConnectorError::schema(
                name,
                format!(
                    "column `{name}` has Redshift type {other}, which Backflow cannot read; \
                     cast it in the query (for example {name}::varchar)"
                ),
            ))
        }
    })
}

/// Precision and scale of a `numeric` column from its typmod.
fn numeric_typmod(name: &str, typmod: i32) -> Result<(u8, i8), ConnectorError> {
    if typmod < 4 {
        return Ok(UNCONSTRAINED_NUMERIC);
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = t & 0xffff;
    if !(1..=38).contains(&precision) || scale > precision {
        return Err(ConnectorError::schema(
            name,
            format!(
                "column `{name}` is numeric({precision},{scale}), outside Arrow's 38-digit \
                 Decimal128; cast it in the query"
            ),
        ));
    }
    Ok((precision as u8, scale as i8))
}

/// One Arrow builder per column.
enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, u8, i8),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder),
}

/// Builds batches of `schema` from rows of text values.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    builders: Vec<Builder>,
    rows: usize,
}

impl BatchBuilder {
    /// Builders for `schema`, whose columns decode as `kinds`.
    pub(crate) fn new(schema: SchemaRef, kinds: Vec<Kind>) -> Self {
        let builders = schema
            .fields()
            .iter()
            .zip(&kinds)
            .map(|(f, kind)| match (kind, f.data_type()) {
                (Kind::Int16, _) => Builder::I16(Int16Builder::new()),
                (Kind::Int32, _) => Builder::I32(Int32Builder::new()),
                (Kind::Int64, _) => Builder::I64(Int64Builder::new()),
                (Kind::Float32, _) => Builder::F32(Float32Builder::new()),
                (Kind::Float64, _) => Builder::F64(Float64Builder::new()),
                (Kind::Decimal(_), DataType::Decimal128(p, s)) => Builder::Dec(
                    Decimal128Builder::new().with_data_type(DataType::Decimal128(*p, *s)),
                    *p,
                    *s,
                ),
                (Kind::Bool, _) => Builder::Bool(BooleanBuilder::new()),
                (Kind::Text | Kind::Json | Kind::Decimal(_), _) => {
                    Builder::Text(StringBuilder::new())
                }
                (Kind::Binary, _) => Builder::Bin(BinaryBuilder::new()),
                (Kind::Date, _) => Builder::Date(Date32Builder::new()),
                (Kind::Time, _) => Builder::Time(Time64MicrosecondBuilder::new()),
                (Kind::Timestamp, _) => Builder::Ts(TimestampMicrosecondBuilder::new()),
                (Kind::TimestampTz, _) => {
                    Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone(UTC))
                }
            })
            .collect();
        Self {
            schema,
            kinds,
            builders,
            rows: 0,
        }
    }

    /// Rows appended since the last batch.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Appends one row; `values[i]` is column `i`'s text, `None` for NULL.
    pub(crate) fn push(&mut self, values: &[Option<&str>]) -> Result<(), ConnectorError> {
        for (i, value) in values.iter().enumerate() {
            let name = self.schema.field(i).name();
            let bad = |what: &str| {
                ConnectorError::data(name, format!("cannot read {what} from the server's text"))
            };
            let builder = &mut self.builders[i];
            let Some(text) = value else {
                append_null(builder);
                continue;
            };
            match (builder, self.kinds[i]) {
                (Builder::I16(b), _) => b.append_value(text.parse().map_err(|_| bad("int2"))?),
                (Builder::I32(b), _) => b.append_value(text.parse().map_err(|_| bad("int4"))?),
                (Builder::I64(b), _) => b.append_value(text.parse().map_err(|_| bad("int8"))?),
                (Builder::F32(b), _) => b.append_value(text.parse().map_err(|_| bad("float4"))?),
                (Builder::F64(b), _) => b.append_value(text.parse().map_err(|_| bad("float8"))?),
                (Builder::Dec(b, precision, scale), _) => {
                    let v = parse_decimal(text, *scale).ok_or_else(|| {
                        ConnectorError::data(
                            name,
                            format!(
                                "the numeric value does not fit numeric({precision},{scale}) \
                                 (NaN and infinities have no decimal form)"
                            ),
                        )
                    })?;
                    b.append_value(v)
                }
                (Builder::Bool(b), _) => b.append_value(match *text {
                    "t" | "true" => true,
                    "f" | "false" => false,
                    _ => return Err(bad("a boolean")),
                }),
                (Builder::Text(b), _) => b.append_value(text),
                (Builder::Bin(b), _) => b.append_value(unhex(text).ok_or_else(|| bad("bytes"))?),
                (Builder::Date(b), _) => {
                    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                        ConnectorError::data(name, "the date has no Arrow form (BC or infinite)")
                    })?;
                    b.append_value((d - epoch()).num_days() as i32)
                }
                (Builder::Time(b), _) => {
                    let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
                        .map_err(|_| bad("a time"))?;
                    b.append_value(
                        i64::from(t.num_seconds_from_midnight()) * 1_000_000
                            + i64::from(t.nanosecond() / 1000),
                    )
                }
                (Builder::Ts(b), Kind::TimestampTz) => {
                    let ts = parse_timestamptz(text).ok_or_else(|| {
                        ConnectorError::data(
                            name,
                            "the timestamp has no Arrow form (BC or infinite)",
                        )
                    })?;
                    b.append_value(ts)
                }
                (Builder::Ts(b), _) => {
                    let ts = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map_err(
                        |_| {
                            ConnectorError::data(
                                name,
                                "the timestamp has no Arrow form (BC or infinite)",
                            )
                        },
                    )?;
                    b.append_value(ts.and_utc().timestamp_micros())
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows appended so far as one batch; the builders start over.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ConnectorError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::I16(b) => Arc::new(b.finish()),
                    Builder::I32(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::F32(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Dec(b, _, _) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Bin(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn append_null(builder: &mut Builder) {
    match builder {
        Builder::I16(b) => b.append_null(),
        Builder::I32(b) => b.append_null(),
        Builder::I64(b) => b.append_null(),
        Builder::F32(b) => b.append_null(),
        Builder::F64(b) => b.append_null(),
        Builder::Dec(b, _, _) => b.append_null(),
        Builder::Bool(b) => b.append_null(),
        Builder::Text(b) => b.append_null(),
        Builder::Bin(b) => b.append_null(),
        Builder::Date(b) => b.append_null(),
        Builder::Time(b) => b.append_null(),
        Builder::Ts(b) => b.append_null(),
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date")
}

/// A decimal in text as the unscaled integer at `scale`; `None` if it has more fraction
/// digits than the scale, does not fit, or is not a number (NaN).
fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale
        || int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut value: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    for _ in frac.len()..scale {
        value = value.checked_mul(10)?;
    }
    Some(if negative { -value } else { value })
}

/// Bytes from the text of a `VARBYTE` (plain hex) or `bytea` (`\x` hex).
fn unhex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x").unwrap_or(text);
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Microseconds since the epoch of a `timestamptz` in text, whatever the zone offset
/// (`+00`, `+05:30`, `-08`).
fn parse_timestamptz(text: &str) -> Option<i64> {
    let split = text.rfind(['+', '-']).filter(|&i| i > 10)?;
    let (local, offset) = text.split_at(split);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let seconds: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let offset_micros = sign * (hours * 3600 + minutes * 60 + seconds) * 1_000_000;
    Some(local.and_utc().timestamp_micros() - offset_micros)
}

/// The instant a `timestamptz` text stands for, for tests.
#[cfg(test)]
fn instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(parse_timestamptz(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_name: &str, typmod: i32) -> ColumnType {
        ColumnType {
            name: "c".into(),
            type_name: type_name.into(),
            typmod,
        }
    }

    #[test]
    fn maps_redshift_types() {
        let field = |t, m| source_field(&column(t, m)).unwrap().1;
        assert!(backflow_connector_core::types::is_json(&field("super", -1)));
        assert_eq!(field("varbyte", -1).data_type(), &DataType::Binary);
        assert_eq!(
            field("numeric", ((38 << 16) | 9) + 4).data_type(),
            &DataType::Decimal128(38, 9)
        );
        assert_eq!(
            field("numeric", -1).data_type(),
            &DataType::Decimal128(38, 10)
        );
        let e = source_field(&column("geometry", -1)).unwrap_err();
        assert_eq!(e.column(), Some("c"));
        assert!(e.message().contains("geometry"), "{e}");
    }

    #[test]
    fn parses_text_values() {
        assert_eq!(parse_decimal("-12.5", 3), Some(-12500));
        assert_eq!(parse_decimal("1.2345", 2), None);
        assert_eq!(parse_decimal("NaN", 2), None);
        assert_eq!(unhex("\\x00ff"), Some(vec![0, 255]));
        assert_eq!(unhex("00ff"), Some(vec![0, 255]));
        assert_eq!(
            instant("2024-06-01 18:00:00.5+05:30").unwrap().to_rfc3339(),
            "2024-06-01T12:30:00.500+00:00"
        );
        assert_eq!(
            instant("1969-12-31 16:00:00-08")
                .unwrap()
                .timestamp_micros(),
            0
        );
    }
}
