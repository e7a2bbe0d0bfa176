//! Snowflake result columns → canonical Arrow.
//!
//! The declared schema comes from the query response's `rowtype` (known before any chunk is
//! read). The physical Arrow type of a column may differ from chunk to chunk: Snowflake picks
//! the narrowest integer that holds a chunk's values for `NUMBER`, and encodes timestamps as
//! scaled integers or as structs depending on their scale. Each chunk's arrays are converted
//! to the declared type here, so every batch has the declared schema.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, StructArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Field, Int16Type, Int32Type, Int64Type, Int8Type, Schema, TimeUnit,
};
use backflow_connector_core::types::{canonicalize_batch, json_field, UTC};
use backflow_connector_core::ConnectorError;
use serde::Deserialize;

/// One column of a query response's `rowtype`. Fields fakesnow omits default to `None`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RowType {
    /// Column name as Snowflake spells it (unquoted identifiers are upper case).
    pub(crate) name: String,
    /// Snowflake's lower-case type name: `fixed`, `real`, `text`, `timestamp_ntz`, …
    #[serde(rename = "type")]
    pub(crate) type_name: String,
    /// `NUMBER` precision.
    #[serde(default)]
    pub(crate) precision: Option<i64>,
    /// `NUMBER` scale, or the fractional-second digits of times and timestamps.
    #[serde(default)]
    pub(crate) scale: Option<i64>,
    /// Whether the column may hold NULL (defaults to true when absent).
    #[serde(default)]
    pub(crate) nullable: Option<bool>,
}

/// How a column is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `NUMBER(p,0)`: Int64.
    Integer,
    /// `NUMBER(p,s)`, s > 0: Decimal128(p,s).
    Decimal(u8, i8),
    /// `FLOAT` / `DOUBLE` / `REAL`: Float64.
    Float,
    /// `VARCHAR` and text-like types: Utf8.
    Text,
    /// `BINARY`: Binary.
    Binary,
    /// `BOOLEAN`.
    Boolean,
    /// `DATE`: Date32.
    Date,
    /// `TIME(scale)`: Time64(µs).
    Time(i64),
    /// `TIMESTAMP_NTZ(scale)`: Timestamp(µs).
    TimestampNtz(i64),
    /// `TIMESTAMP_LTZ(scale)` / `TIMESTAMP_TZ(scale)`: Timestamp(µs, UTC).
    TimestampInstant(i64),
    /// `VARIANT` / `OBJECT` / `ARRAY`: Utf8 tagged `arrow.json`.
    Json,
}

/// The canonical field and conversion for one `rowtype` entry, or a schema error naming the
/// column and its Snowflake type.
pub(crate) fn column(rt: &RowType) -> Result<(Kind, Field), ConnectorError> {
    let name = rt.name.as_str();
    let nullable = rt.nullable.unwrap_or(true);
    let plain = |dt: DataType| Field::new(name, dt, nullable);
    // Snowflake's default fractional-second precision is 9 (nanoseconds).
    let time_scale = rt.scale.unwrap_or(9);
    let kind = match rt.type_name.to_ascii_lowercase().as_str() {
        "fixed" => {
            let precision = rt.precision.unwrap_or(38);
            let scale = rt.scale.unwrap_or(0);
            if !(1..=38).contains(&precision) || !(0..=37).contains(&scale) || scale > precision {
                return Err(ConnectorError::schema(
                    name,
                    format!("NUMBER({precision},{scale}) is outside Arrow's Decimal128"),
                ));
            }
            if scale == 0 {
                Kind::Integer
            } else {
                Kind::Decimal(precision as u8, scale as i8)
            }
        }
        "real" | "float" | "double" => Kind::Float,
        "text" | "char" | "varchar" | "string" | "geography" | "geometry" => Kind::Text,
        "binary" | "varbinary" => Kind::Binary,
        "boolean" => Kind::Boolean,
        "date" => Kind::Date,
        "time" => Kind::Time(time_scale),
        "timestamp_ntz" | "timestamp" | "datetime" => Kind::TimestampNtz(time_scale),
        "timestamp_ltz" | "timestamp_tz" => Kind::TimestampInstant(time_scale),
        "variant" | "object" | "array" | "map" => Kind::Json,
        other => {
            return Err(ConnectorError::schema(
                name,
                format!(
                    "column `{name}` has Snowflake type {}, which Backflow cannot read; cast it \
                     in the query (for example {name}::VARCHAR)",
                    other.to_uppercase()
                ),
            ))
        }
    };
    let field = match kind {
        Kind::Integer => plain(DataType::Int64),
        Kind::Decimal(p, s) => plain(DataType::Decimal128(p, s)),
        Kind::Float => plain(DataType::Float64),
        Kind::Text => plain(DataType::Utf8),
        Kind::Binary => plain(DataType::Binary),
        Kind::Boolean => plain(DataType::Boolean),
        Kind::Date => plain(DataType::Date32),
        Kind::Time(_) => plain(DataType::Time64(TimeUnit::Microsecond)),
        Kind::TimestampNtz(_) => plain(DataType::Timestamp(TimeUnit::Microsecond, None)),
        Kind::TimestampInstant(_) => {
            plain(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())))
        }
        Kind::Json => json_field(name).with_nullable(nullable),
    };
    Ok((kind, field))
}

/// Converts one physical column of a result chunk to the declared canonical type.
///
/// `physical` is the chunk's own field: its `scale` metadata, when present, is the scale of
/// the encoded integers (it wins over the `rowtype`'s).
pub(crate) fn convert(
    kind: Kind,
    target: &Field,
    physical: &Field,
    array: &ArrayRef,
) -> Result<ArrayRef, ConnectorError> {
    let name = target.name();
    let scale = physical
        .metadata()
        .get("scale")
        .and_then(|s| s.parse::<i64>().ok());
    let out = match kind {
        Kind::Integer => match array.data_type() {
            DataType::Int64 => array.clone(),
            _ => cast(name, array, &DataType::Int64).map_err(|e| {
                e.with_message(format!(
                    "a value of `{name}` does not fit a 64-bit integer; cast it in the query \
                     ({name}::VARCHAR or {name}::NUMBER(38,1))"
                ))
            })?,
        },
        Kind::Decimal(p, s) => decimal(name, array, p, s)?,
        Kind::Float | Kind::Text | Kind::Binary | Kind::Boolean | Kind::Date | Kind::Json => {
            let dt = target.data_type();
            if array.data_type() == dt {
                array.clone()
            } else if kind == Kind::Json && array.data_type().is_nested() {
                nested_to_json(array)?
            } else {
                cast(name, array, dt)?
            }
        }
        Kind::Time(declared) => time(name, array, scale.unwrap_or(declared))?,
        Kind::TimestampNtz(declared) | Kind::TimestampInstant(declared) => {
            timestamp(name, array, scale.unwrap_or(declared), target.data_type())?
        }
    };
    Ok(out)
}

fn cast(name: &str, array: &ArrayRef, dt: &DataType) -> Result<ArrayRef, ConnectorError> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, dt, &options)
        .map_err(|e| ConnectorError::data(name, format!("cannot convert to {dt}: {e}")))
}

/// `NUMBER(p,s)`: scaled integers (Snowflake's usual encoding) or Decimal128.
fn decimal(name: &str, array: &ArrayRef, p: u8, s: i8) -> Result<ArrayRef, ConnectorError> {
    let scaled: Decimal128Array = match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().unary(i128::from),
        DataType::Int16 => array.as_primitive::<Int16Type>().unary(i128::from),
        DataType::Int32 => array.as_primitive::<Int32Type>().unary(i128::from),
        DataType::Int64 => array.as_primitive::<Int64Type>().unary(i128::from),
        DataType::Decimal128(_, physical) if *physical == s => array
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .clone(),
        _ => return cast(name, array, &DataType::Decimal128(p, s)),
    };
    Ok(Arc::new(scaled.with_precision_and_scale(p, s).map_err(
        |e| ConnectorError::data(name, format!("invalid NUMBER({p},{s}): {e}")),
    )?))
}

/// Integer ticks of 10^-scale seconds → microseconds, truncating towards the past.
fn to_micros(name: &str, value: i64, scale: i64) -> Result<i64, ConnectorError> {
    let overflow = || ConnectorError::data(name, "timestamp out of range");
    if scale <= 6 {
        let factor = 10i64
            .checked_pow((6 - scale.max(0)) as u32)
            .ok_or_else(overflow)?;
        value.checked_mul(factor).ok_or_else(overflow)
    } else {
        let divisor = 10i64.checked_pow((scale - 6) as u32).ok_or_else(overflow)?;
        Ok(value.div_euclid(divisor))
    }
}

/// `TIME`: integer ticks of 10^-scale seconds since midnight (or an Arrow time).
fn time(name: &str, array: &ArrayRef, scale: i64) -> Result<ArrayRef, ConnectorError> {
    let ticks: Int64Array = match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().clone(),
        DataType::Int32 | DataType::Int16 | DataType::Int8 => cast(name, array, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
        _ => return cast(name, array, &DataType::Time64(TimeUnit::Microsecond)),
    };
    let out: Time64MicrosecondArray = ticks.try_unary(|v| to_micros(name, v, scale))?;
    Ok(Arc::new(out))
}

/// Timestamps in any of Snowflake's encodings, to microseconds in the target zone:
/// - an integer: ticks of 10^-scale seconds since the epoch;
/// - a struct `{epoch, fraction[, timezone]}`: seconds since the epoch and nanoseconds;
/// - a struct `{epoch, timezone}` (`TIMESTAMP_TZ`, scale ≤ 7): ticks and the zone;
/// - a plain Arrow timestamp.
///
/// The zone of a `TIMESTAMP_TZ` (minutes + 1440) does not change the instant: `epoch` is
/// in UTC, so it is dropped. A NULL is a NULL struct or a NULL `epoch` (fakesnow nulls the
/// children only).
fn timestamp(
    name: &str,
    array: &ArrayRef,
    scale: i64,
    target: &DataType,
) -> Result<ArrayRef, ConnectorError> {
    let DataType::Timestamp(_, zone) = target else {
        return Err(ConnectorError::internal(
            "timestamp target is not a timestamp",
        ));
    };
    let micros: TimestampMicrosecondArray = match array.data_type() {
        DataType::Int64 | DataType::Int32 => {
            let ticks = cast(name, array, &DataType::Int64)?;
            ticks
                .as_primitive::<Int64Type>()
                .try_unary(|v| to_micros(name, v, scale))?
        }
        DataType::Struct(_) => struct_timestamp(name, array.as_struct(), scale)?,
        DataType::Timestamp(_, _) => {
            let physical_target = DataType::Timestamp(TimeUnit::Microsecond, zone.clone());
            return cast(name, array, &physical_target);
        }
        other => {
            return Err(ConnectorError::data(
                name,
                format!("unexpected Arrow encoding {other} for a Snowflake timestamp"),
            ))
        }
    };
    Ok(Arc::new(micros.with_timezone_opt(zone.clone())))
}

fn struct_timestamp(
    name: &str,
    array: &StructArray,
    scale: i64,
) -> Result<TimestampMicrosecondArray, ConnectorError> {
    let child = |n: &str| -> Option<ArrayRef> { array.column_by_name(n).cloned() };
    let epoch = child("epoch")
        .ok_or_else(|| ConnectorError::data(name, "timestamp struct without an `epoch` field"))?;
    let epoch = cast(name, &epoch, &DataType::Int64)?;
    let epoch = epoch.as_primitive::<Int64Type>();
    let fraction = child("fraction")
        .map(|f| cast(name, &f, &DataType::Int64))
        .transpose()?;
    let fraction = fraction.as_ref().map(|f| f.as_primitive::<Int64Type>());
    let mut out = Vec::with_capacity(array.len());
    for i in 0..array.len() {
        if array.is_null(i) || epoch.is_null(i) {
            out.push(None);
            continue;
        }
        let value = match fraction {
            Some(f) => {
                let nanos = if f.is_null(i) { 0 } else { f.value(i) };
                epoch
                    .value(i)
                    .checked_mul(1_000_000)
                    .and_then(|s| s.checked_add(nanos.div_euclid(1_000)))
                    .ok_or_else(|| ConnectorError::data(name, "timestamp out of range"))?
            }
            None => to_micros(name, epoch.value(i), scale)?,
        };
        out.push(Some(value));
    }
    Ok(TimestampMicrosecondArray::from(out))
}

/// A structured OBJECT / ARRAY / MAP sent as nested Arrow: rendered as JSON text.
fn nested_to_json(array: &ArrayRef) -> Result<ArrayRef, ConnectorError> {
    let field = Field::new("v", array.data_type().clone(), true);
    let one = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])?;
    Ok(canonicalize_batch(&one)?.column(0).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int8Array};
    use arrow::datatypes::Fields;

    fn rt(type_name: &str, precision: Option<i64>, scale: Option<i64>) -> RowType {
        RowType {
            name: "C".into(),
            type_name: type_name.into(),
            precision,
            scale,
            nullable: None,
        }
    }

    #[test]
    fn scaled_integers_become_decimals_at_full_precision() {
        let (kind, field) = column(&rt("fixed", Some(12), Some(2))).unwrap();
        let physical = Field::new("C", DataType::Int8, true);
        let array: ArrayRef = Arc::new(Int8Array::from(vec![Some(-125), None]));
        let out = convert(kind, &field, &physical, &array).unwrap();
        let out = out.as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(out.value_as_string(0), "-1.25");
        assert!(out.is_null(1));
        assert_eq!(out.data_type(), &DataType::Decimal128(12, 2));
    }

    #[test]
    fn integer_columns_are_int64_whatever_the_chunk_width() {
        let (kind, field) = column(&rt("fixed", Some(38), Some(0))).unwrap();
        assert_eq!(field.data_type(), &DataType::Int64);
        let physical = Field::new("C", DataType::Int32, true);
        let array: ArrayRef = Arc::new(Int32Array::from(vec![7]));
        let out = convert(kind, &field, &physical, &array).unwrap();
        assert_eq!(out.as_primitive::<Int64Type>().value(0), 7);
        let physical = Field::new("C", DataType::Decimal128(38, 0), true);
        let big: ArrayRef = Arc::new(
            Decimal128Array::from(vec![i128::from(i64::MAX) + 1])
                .with_precision_and_scale(38, 0)
                .unwrap(),
        );
        let e = convert(kind, &field, &physical, &big).unwrap_err();
        assert_eq!(e.column(), Some("C"));
    }

    #[test]
    fn timestamps_in_every_encoding() {
        // 2024-01-02 03:04:05.123456789 UTC.
        let secs = 1_704_164_645i64;
        let (kind, field) = column(&rt("timestamp_ntz", None, Some(9))).unwrap();
        let physical = Field::new("C", DataType::Int64, true);
        let scaled: ArrayRef = Arc::new(Int64Array::from(vec![secs * 1_000_000_000 + 123_456_789]));
        let out = convert(kind, &field, &physical, &scaled).unwrap();
        let expected = secs * 1_000_000 + 123_456;
        assert_eq!(
            out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            expected
        );

        let (kind, field) = column(&rt("timestamp_tz", None, Some(9))).unwrap();
        // fakesnow's NULL: a valid struct whose children are NULL.
        let fields = Fields::from(vec![
            Field::new("epoch", DataType::Int64, true),
            Field::new("fraction", DataType::Int32, true),
            Field::new("timezone", DataType::Int32, true),
        ]);
        let st: ArrayRef = Arc::new(StructArray::new(
            fields.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(secs), None])),
                Arc::new(Int32Array::from(vec![Some(123_456_789), None])),
                Arc::new(Int32Array::from(vec![1440 + 120, 1440])),
            ],
            None,
        ));
        let physical = Field::new("C", st.data_type().clone(), true);
        let out = convert(kind, &field, &physical, &st).unwrap();
        assert_eq!(out.data_type(), field.data_type());
        let ts = out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), expected);
        assert!(ts.is_null(1));

        // TIMESTAMP_TZ(3) as {epoch in milliseconds, timezone}.
        let (kind, field) = column(&rt("timestamp_tz", None, Some(3))).unwrap();
        let st: ArrayRef = Arc::new(StructArray::new(
            Fields::from(vec![
                Field::new("epoch", DataType::Int64, false),
                Field::new("timezone", DataType::Int32, false),
            ]),
            vec![
                Arc::new(Int64Array::from(vec![-1])),
                Arc::new(Int32Array::from(vec![1440])),
            ],
            None,
        ));
        let physical = Field::new("C", st.data_type().clone(), true);
        let out = convert(kind, &field, &physical, &st).unwrap();
        assert_eq!(
            out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            -1_000
        );
    }

    #[test]
    fn unknown_types_name_the_column() {
        let e = column(&rt("vector", None, None)).unwrap_err();
        assert_eq!(e.column(), Some("C"));
        assert!(e.message().contains("VECTOR"), "{e}");
    }
}
