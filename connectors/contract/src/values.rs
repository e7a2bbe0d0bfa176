//! Canonical values: building Arrow batches from them, and normalising what a harness reads
//! back so that equal values compare equal whatever their textual form.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, SchemaRef};
use backflow_connector_core::CanonicalType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::Value;

use crate::{Row, TimestampPrecision};

/// A name unique to this test process and call: `prefix_` followed by 16 random hex digits,
/// so cases running in parallel never share an object.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// Lowercase hex of `bytes`: the canonical form of a `Binary` value in a read-back row.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s
        .strip_prefix("\\x")
        .or_else(|| s.strip_prefix("0x"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex {s:?}: {e}")))
        .collect()
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d);
    }
    let ts = parse_timestamp(s)?;
    if ts.time() != NaiveTime::MIN {
        return Err(format!("date {s:?} is not at midnight"));
    }
    Ok(ts.date())
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f").map_err(|e| format!("time {s:?}: {e}"))
}

/// A timestamp in any of the accepted forms, as a UTC wall clock.
fn parse_timestamp(s: &str) -> Result<NaiveDateTime, String> {
    let mut t = s.trim().replacen('T', " ", 1);
    if let Some(stripped) = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')) {
        t = format!("{stripped}+00:00");
    }
    let date_len = t.find(' ').unwrap_or(t.len());
    let has_zone = t[date_len..].contains(['+', '-']);
    if has_zone {
        DateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f%#z")
            .map(|d| d.naive_utc())
            .map_err(|e| format!("timestamp {s:?}: {e}"))
    } else {
        NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f")
            .map_err(|e| format!("timestamp {s:?}: {e}"))
    }
}

fn micros(ts: NaiveDateTime) -> i64 {
    ts.and_utc().timestamp_micros()
}

fn truncate(ts: NaiveDateTime, precision: TimestampPrecision) -> NaiveDateTime {
    match precision {
        TimestampPrecision::Microseconds => ts,
        TimestampPrecision::Milliseconds => {
            let us = micros(ts);
            DateTime::from_timestamp_micros(us.div_euclid(1000) * 1000)
                .map(|d| d.naive_utc())
                .unwrap_or(ts)
        }
    }
}

/// `s` (a decimal in text) as the unscaled integer of a `Decimal128(_, scale)`.
fn parse_decimal(s: &str, scale: i8) -> Result<i128, String> {
    let norm = normalize_decimal(s)?;
    let (neg, digits) = match norm.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, norm.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = scale.max(0) as usize;
    if frac.len() > scale {
        return Err(format!(
            "decimal {s:?} has more than {scale} fraction digits"
        ));
    }
    let text = format!("{int}{frac:0<scale$}");
    let v: i128 = text.parse().map_err(|e| format!("decimal {s:?}: {e}"))?;
    Ok(if neg { -v } else { v })
}

/// A decimal without sign noise, leading zeros or trailing fraction zeros.
fn normalize_decimal(s: &str) -> Result<String, String> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("not a decimal: {s:?}"));
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    Ok(if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    })
}

fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected a string or number, got {other}")),
    }
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("not an i64: {n}")),
        Value::String(s) => s.trim().parse().map_err(|e| format!("integer {s:?}: {e}")),
        other => Err(format!("expected an integer, got {other}")),
    }
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("not a float: {n}")),
        Value::String(s) => s.trim().parse().map_err(|e| format!("float {s:?}: {e}")),
        other => Err(format!("expected a number, got {other}")),
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        other => Err(format!("expected a bool, got {other}")),
    }
}

fn uuid(v: &Value) -> Result<[u8; 16], String> {
    let s = text(v)?.replace('-', "");
    let bytes = unhex(&s)?;
    bytes
        .try_into()
        .map_err(|_| format!("uuid {v} is not 16 bytes"))
}

fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn json(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

/// `v` (absent = NULL) of a column of `field`'s type, in one comparable form.
pub(crate) fn normalize(
    field: &Field,
    v: Option<&Value>,
    precision: TimestampPrecision,
) -> Result<Value, String> {
    let v = match v {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(v) => v,
    };
    let ty = CanonicalType::require(field).map_err(|e| e.to_string())?;
    Ok(match ty {
        CanonicalType::Int16 | CanonicalType::Int32 | CanonicalType::Int64 => Value::from(int(v)?),
        CanonicalType::Float32 => Value::from(float(v)? as f32 as f64),
        CanonicalType::Float64 => Value::from(float(v)?),
        CanonicalType::Decimal { .. } => Value::from(normalize_decimal(&text(v)?)?),
        CanonicalType::Boolean => Value::from(boolean(v)?),
        CanonicalType::Text => Value::from(text(v)?),
        CanonicalType::Binary => Value::from(hex(&unhex(&text(v)?.to_ascii_lowercase())?)),
        CanonicalType::Date => Value::from(parse_date(&text(v)?)?.format("%Y-%m-%d").to_string()),
        CanonicalType::Time => {
            Value::from(parse_time(&text(v)?)?.format("%H:%M:%S%.6f").to_string())
        }
        CanonicalType::Timestamp => {
            let ts = truncate(parse_timestamp(&text(v)?)?, precision);
            Value::from(ts.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        }
        CanonicalType::TimestampTz => {
            let ts = truncate(parse_timestamp(&text(v)?)?, precision);
            Value::from(ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        }
        CanonicalType::Json => json(v),
        CanonicalType::Uuid => Value::from(format_uuid(&uuid(v)?)),
    })
}

/// `rows` projected on `schema`'s columns and normalised, keyed by their rendered primary key.
pub(crate) fn normalize_rows(
    schema: &SchemaRef,
    primary_key: &[String],
    rows: &[Row],
    precision: TimestampPrecision,
) -> Result<BTreeMap<String, Row>, String> {
    let mut out = BTreeMap::new();
    for row in rows {
        let mut norm = Row::new();
        for field in schema.fields() {
            let value = normalize(field, row.get(field.name()), precision)
                .map_err(|e| format!("column `{}` of row {row:?}: {e}", field.name()))?;
            norm.insert(field.name().clone(), value);
        }
        let key: Vec<String> = primary_key
            .iter()
            .map(|k| norm.get(k).map(Value::to_string).unwrap_or_default())
            .collect();
        let key = format!("({})", key.join(", "));
        if out.insert(key.clone(), norm).is_some() {
            return Err(format!("key {key} appears twice"));
        }
    }
    Ok(out)
}

/// An Arrow batch of `schema` holding `rows` (canonical value forms; absent = NULL).
pub(crate) fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            column(field, rows).unwrap_or_else(|e| panic!("column `{}`: {e}", field.name()))
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("suite batch matches its schema")
}

fn column(field: &Field, rows: &[Row]) -> Result<ArrayRef, String> {
    let ty = CanonicalType::require(field).map_err(|e| e.to_string())?;
    let values: Vec<Option<&Value>> = rows
        .iter()
        .map(|r| r.get(field.name()).filter(|v| !v.is_null()))
        .collect();
    macro_rules! build {
        ($builder:expr, $convert:expr) => {{
            let mut b = $builder;
            for v in &values {
                match v {
                    Some(v) => b.append_value($convert(v)?),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        CanonicalType::Int16 => build!(Int16Builder::new(), |v: &Value| int(v)?
            .try_into()
            .map_err(|e| format!("{e}"))),
        CanonicalType::Int32 => build!(Int32Builder::new(), |v: &Value| int(v)?
            .try_into()
            .map_err(|e| format!("{e}"))),
        CanonicalType::Int64 => build!(Int64Builder::new(), int),
        CanonicalType::Float32 => build!(Float32Builder::new(), |v: &Value| float(v)
            .map(|f| f as f32)),
        CanonicalType::Float64 => build!(Float64Builder::new(), float),
        CanonicalType::Decimal { precision, scale } => {
            let b = Decimal128Builder::new()
                .with_precision_and_scale(precision, scale)
                .map_err(|e| e.to_string())?;
            build!(b, |v: &Value| parse_decimal(&text(v)?, scale))
        }
        CanonicalType::Boolean => build!(BooleanBuilder::new(), boolean),
        CanonicalType::Text => build!(StringBuilder::new(), text),
        CanonicalType::Binary => build!(BinaryBuilder::new(), |v: &Value| unhex(&text(v)?)),
        CanonicalType::Date => build!(Date32Builder::new(), |v: &Value| parse_date(&text(v)?)
            .map(|d| (d - EPOCH).num_days() as i32)),
        CanonicalType::Time => build!(Time64MicrosecondBuilder::new(), |v: &Value| {
            parse_time(&text(v)?).map(|t| {
                i64::from(t.num_seconds_from_midnight()) * 1_000_000
                    + i64::from(t.nanosecond() / 1000)
            })
        }),
        CanonicalType::Timestamp => {
            build!(TimestampMicrosecondBuilder::new(), |v: &Value| {
                parse_timestamp(&text(v)?).map(micros)
            })
        }
        CanonicalType::TimestampTz => build!(
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            |v: &Value| parse_timestamp(&text(v)?).map(micros)
        ),
        CanonicalType::Json => build!(StringBuilder::new(), |v: &Value| Ok::<_, String>(
            v.to_string()
        )),
        CanonicalType::Uuid => {
            let mut b = FixedSizeBinaryBuilder::new(16);
            for v in &values {
                match v {
                    Some(v) => b.append_value(uuid(v)?).map_err(|e| e.to_string())?,
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, TimeUnit};

    fn f(dt: DataType) -> Field {
        Field::new("c", dt, true)
    }

    #[test]
    fn equal_values_in_different_forms_normalise_alike() {
        let n = |field: &Field, v: Value| {
            normalize(field, Some(&v), TimestampPrecision::Microseconds).unwrap()
        };
        let dec = f(DataType::Decimal128(38, 9));
        assert_eq!(
            n(&dec, Value::from("-0012.5000")),
            n(&dec, Value::from("-12.5"))
        );
        assert_eq!(n(&dec, Value::from("-0.000")), Value::from("0"));
        let tz = f(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        ));
        assert_eq!(
            n(&tz, Value::from("2024-01-02 04:04:05.5+01")),
            Value::from("2024-01-02T03:04:05.500000Z")
        );
        assert_eq!(
            n(&tz, Value::from("2024-01-02T03:04:05.5")),
            Value::from("2024-01-02T03:04:05.500000Z")
        );
        let bin = f(DataType::Binary);
        assert_eq!(n(&bin, Value::from("\\xDEAD")), Value::from("dead"));
        let date = f(DataType::Date32);
        assert_eq!(
            n(&date, Value::from("1969-07-20T00:00:00Z")),
            Value::from("1969-07-20")
        );
    }

    #[test]
    fn milliseconds_truncate_towards_the_past() {
        let ts = f(DataType::Timestamp(TimeUnit::Microsecond, None));
        let v = Value::from("1969-12-31 23:59:59.999999");
        assert_eq!(
            normalize(&ts, Some(&v), TimestampPrecision::Milliseconds).unwrap(),
            Value::from("1969-12-31T23:59:59.999000")
        );
    }

    #[test]
    fn decimals_parse_at_their_scale() {
        assert_eq!(parse_decimal("-1.5", 3).unwrap(), -1500);
        assert_eq!(parse_decimal("12", 0).unwrap(), 12);
        assert!(parse_decimal("1.2345", 2).is_err());
    }
}
