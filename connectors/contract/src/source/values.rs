//! The values the source suite writes, and reading canonical Arrow cells back as canonical
//! JSON values so they compare with `crate::values::normalize`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use backflow_connector_core::types::{json_field, uuid_field, UTC};
use backflow_connector_core::CanonicalType;
use chrono::{DateTime, NaiveDate, NaiveTime};
use serde_json::{json, Value};

use super::{TableSpec, TestColumn};
use crate::{hex, Row};

/// One column of the round-trip table: a canonical type and the values written to it (NULL
/// included), so harnesses can inspect what they will be asked to store.
#[derive(Debug, Clone)]
pub struct SampleColumn {
    /// The column name (`c_<type>`).
    pub name: &'static str,
    /// Its canonical type.
    pub ty: CanonicalType,
    /// Its values in canonical JSON forms; row `i` (id `i + 1`) holds value `i`, and rows past
    /// the end hold NULL.
    pub values: Vec<Value>,
}

/// Every column of the round-trip table, one per canonical type.
pub fn sample_columns() -> Vec<SampleColumn> {
    let col = |name, ty, values| SampleColumn { name, ty, values };
    vec![
        col(
            "c_int16",
            CanonicalType::Int16,
            vec![json!(0), json!(-32768), json!(32767), Value::Null, json!(7)],
        ),
        col(
            "c_int32",
            CanonicalType::Int32,
            vec![
                json!(-2147483648i64),
                json!(2147483647),
                Value::Null,
                json!(1),
            ],
        ),
        col(
            "c_int64",
            CanonicalType::Int64,
            vec![
                json!(i64::MIN),
                json!(i64::MAX),
                json!(0),
                Value::Null,
                json!(-42),
            ],
        ),
        col(
            "c_float32",
            CanonicalType::Float32,
            vec![json!(1.5), json!(-0.25), Value::Null, json!(123456.0)],
        ),
        col(
            "c_float64",
            CanonicalType::Float64,
            vec![
                json!(0.1),
                json!(-1.7976931348623157e308),
                json!(2.2250738585072014e-308),
                Value::Null,
                json!(12345.678901234567),
            ],
        ),
        col(
            "c_decimal",
            CanonicalType::Decimal {
                precision: 38,
                scale: 9,
            },
            vec![
                json!("12345678901234567890123456789.123456789"),
                json!("-99999999999999999999999999999.999999999"),
                json!("0.000000001"),
                json!("0"),
                Value::Null,
                json!("-1.5"),
            ],
        ),
        col(
            "c_bool",
            CanonicalType::Boolean,
            vec![json!(true), json!(false), Value::Null],
        ),
        col(
            "c_text",
            CanonicalType::Text,
            vec![
                json!(""),
                json!("plain"),
                json!("ünïcödé ✓ 日本語 🦀"),
                json!("line\nbreak \"double\" 'single' \\ back\ttab"),
                Value::Null,
                json!("  padded  "),
            ],
        ),
        col(
            "c_binary",
            CanonicalType::Binary,
            vec![json!(""), json!("00ff10"), json!("deadbeef"), Value::Null],
        ),
        col(
            "c_date",
            CanonicalType::Date,
            vec![
                json!("1970-01-01"),
                json!("2024-02-29"),
                json!("1900-01-01"),
                json!("2099-12-31"),
                Value::Null,
                json!("1969-07-20"),
            ],
        ),
        col(
            "c_time",
            CanonicalType::Time,
            vec![
                json!("00:00:00"),
                json!("23:59:59.999999"),
                json!("12:34:56.5"),
                Value::Null,
            ],
        ),
        col(
            "c_timestamp",
            CanonicalType::Timestamp,
            vec![
                json!("2024-02-29T12:34:56.123456"),
                json!("1969-12-31T23:59:59.999999"),
                json!("1900-01-01T00:00:00"),
                json!("2099-12-31T23:59:59"),
                Value::Null,
            ],
        ),
        col(
            "c_timestamptz",
            CanonicalType::TimestampTz,
            vec![
                json!("2024-02-29T12:34:56.123456Z"),
                json!("2024-06-01T18:00:00.5+05:30"),
                json!("1969-12-31T16:00:00-08:00"),
                Value::Null,
                json!("2099-12-31T23:59:59.999999Z"),
            ],
        ),
        col(
            "c_json",
            CanonicalType::Json,
            vec![
                json!({"a": 1, "nested": {"list": [1, "two", null, true]}, "unicode": "ü✓🦀"}),
                json!([1, 2.5, "x", {"k": "v"}]),
                json!({}),
                Value::Null,
                json!("just a string"),
                json!(-17),
            ],
        ),
        col(
            "c_uuid",
            CanonicalType::Uuid,
            vec![
                json!("00000000-0000-0000-0000-000000000000"),
                json!("123e4567-e89b-12d3-a456-426614174000"),
                Value::Null,
            ],
        ),
    ]
}

/// The Arrow field the suite uses for a column of canonical type `ty`.
pub(crate) fn field(name: &str, ty: &CanonicalType, nullable: bool) -> Field {
    let dt = match ty {
        CanonicalType::Json => return json_field(name).with_nullable(nullable),
        CanonicalType::Uuid => return uuid_field(name).with_nullable(nullable),
        CanonicalType::Int16 => DataType::Int16,
        CanonicalType::Int32 => DataType::Int32,
        CanonicalType::Int64 => DataType::Int64,
        CanonicalType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        CanonicalType::Float32 => DataType::Float32,
        CanonicalType::Float64 => DataType::Float64,
        CanonicalType::Boolean => DataType::Boolean,
        CanonicalType::Text => DataType::Utf8,
        CanonicalType::Binary => DataType::Binary,
        CanonicalType::Date => DataType::Date32,
        CanonicalType::Time => DataType::Time64(TimeUnit::Microsecond),
        CanonicalType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        CanonicalType::TimestampTz => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
        }
    };
    Field::new(name, dt, nullable)
}

/// A table spec named `name` with an `id` column and `columns`; with `rows` false it holds
/// no rows.
pub(crate) fn table_spec(name: String, columns: &[SampleColumn], rows: bool) -> TableSpec {
    let height = if rows {
        columns.iter().map(|c| c.values.len()).max().unwrap_or(0)
    } else {
        0
    };
    let mut spec_columns = vec![TestColumn {
        name: "id".into(),
        ty: CanonicalType::Int64,
    }];
    let mut fields = vec![field("id", &CanonicalType::Int64, false)];
    for c in columns {
        spec_columns.push(TestColumn {
            name: c.name.into(),
            ty: c.ty.clone(),
        });
        fields.push(field(c.name, &c.ty, true));
    }
    let table_rows: Vec<Row> = (0..height)
        .map(|i| {
            let mut row = Row::new();
            row.insert("id".into(), json!(i as i64 + 1));
            for c in columns {
                row.insert(
                    c.name.into(),
                    c.values.get(i).cloned().unwrap_or(Value::Null),
                );
            }
            row
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = crate::values::batch(&schema, &table_rows);
    TableSpec {
        name,
        columns: spec_columns,
        rows: table_rows,
        batch,
    }
}

/// Cell `i` of a canonical column as a canonical JSON value (NULL as `null`).
pub(crate) fn cell(field: &Field, array: &ArrayRef, i: usize) -> Result<Value, String> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let ty = CanonicalType::require(field).map_err(|e| e.to_string())?;
    let bad = || format!("array of {} for {ty:?}", array.data_type());
    Ok(match ty {
        CanonicalType::Int16 => json!(downcast::<Int16Array>(array).ok_or_else(bad)?.value(i)),
        CanonicalType::Int32 => json!(downcast::<Int32Array>(array).ok_or_else(bad)?.value(i)),
        CanonicalType::Int64 => json!(downcast::<Int64Array>(array).ok_or_else(bad)?.value(i)),
        CanonicalType::Float32 => {
            json!(f64::from(
                downcast::<Float32Array>(array).ok_or_else(bad)?.value(i)
            ))
        }
        CanonicalType::Float64 => json!(downcast::<Float64Array>(array).ok_or_else(bad)?.value(i)),
        CanonicalType::Decimal { .. } => json!(downcast::<Decimal128Array>(array)
            .ok_or_else(bad)?
            .value_as_string(i)),
        CanonicalType::Boolean => json!(downcast::<BooleanArray>(array).ok_or_else(bad)?.value(i)),
        CanonicalType::Text | CanonicalType::Json => {
            json!(downcast::<StringArray>(array).ok_or_else(bad)?.value(i))
        }
        CanonicalType::Binary => json!(hex(downcast::<BinaryArray>(array)
            .ok_or_else(bad)?
            .value(i))),
        CanonicalType::Uuid => json!(hex(downcast::<FixedSizeBinaryArray>(array)
            .ok_or_else(bad)?
            .value(i))),
        CanonicalType::Date => {
            let days = downcast::<Date32Array>(array).ok_or_else(bad)?.value(i);
            let date = NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(days))))
                .ok_or_else(|| format!("date {days} out of range"))?;
            json!(date.format("%Y-%m-%d").to_string())
        }
        CanonicalType::Time => {
            let micros = downcast::<Time64MicrosecondArray>(array)
                .ok_or_else(bad)?
                .value(i);
            let time = NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(micros.div_euclid(1_000_000)).map_err(|e| e.to_string())?,
                u32::try_from(micros.rem_euclid(1_000_000) * 1000).map_err(|e| e.to_string())?,
            )
            .ok_or_else(|| format!("time {micros}µs out of range"))?;
            json!(time.format("%H:%M:%S%.6f").to_string())
        }
        CanonicalType::Timestamp | CanonicalType::TimestampTz => {
            let micros = downcast::<TimestampMicrosecondArray>(array)
                .ok_or_else(bad)?
                .value(i);
            let ts = DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| format!("timestamp {micros}µs out of range"))?;
            json!(ts.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        }
    })
}

fn downcast<T: Array + 'static>(array: &ArrayRef) -> Option<&T> {
    array.as_any().downcast_ref::<T>()
}

/// The integer value of cell `i` of an integer or scale-0 decimal column (the `id` of a
/// series), after canonicalisation.
pub(crate) fn integer(array: &ArrayRef, i: usize) -> Result<i128, String> {
    if array.is_null(i) {
        return Err("NULL".into());
    }
    Ok(match array.data_type() {
        DataType::Int16 => i128::from(array.as_primitive::<arrow::datatypes::Int16Type>().value(i)),
        DataType::Int32 => i128::from(array.as_primitive::<arrow::datatypes::Int32Type>().value(i)),
        DataType::Int64 => i128::from(array.as_primitive::<arrow::datatypes::Int64Type>().value(i)),
        DataType::Decimal128(_, 0) => array
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .value(i),
        other => return Err(format!("{other} is not an integer type")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::normalize;
    use crate::TimestampPrecision;

    #[test]
    fn every_sample_value_survives_arrow_and_back() {
        let columns = sample_columns();
        let spec = table_spec("t".into(), &columns, true);
        let schema = spec.schema();
        let precision = TimestampPrecision::Microseconds;
        for (f, field) in schema.fields().iter().enumerate() {
            let array = spec.batch.column(f);
            for (i, row) in spec.rows.iter().enumerate() {
                let back = cell(field, array, i).unwrap();
                let want = normalize(field, row.get(field.name()), precision).unwrap();
                let got = normalize(field, Some(&back), precision).unwrap();
                assert_eq!(got, want, "column {} row {i}", field.name());
            }
        }
    }

    #[test]
    fn zoned_timestamps_keep_the_instant() {
        let field = field("t", &CanonicalType::TimestampTz, true);
        let precision = TimestampPrecision::Microseconds;
        assert_eq!(
            normalize(
                &field,
                Some(&json!("2024-06-01T18:00:00.5+05:30")),
                precision
            )
            .unwrap(),
            json!("2024-06-01T12:30:00.500000Z")
        );
    }
}
