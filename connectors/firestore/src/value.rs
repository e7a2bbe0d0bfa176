//! Arrow values to Firestore `Value`s, and Firestore's document size accounting.
//!
//! | canonical type | Firestore value |
//! |---|---|
//! | `Int16`, `Int32`, `Int64` | integer |
//! | `Float32`, `Float64` | double |
//! | `Boolean` | boolean |
//! | `Utf8` | string |
//! | `Binary` | bytes |
//! | `Decimal128(p, s)` | string, exactly as written (`"12.30"`): Firestore has only 64-bit integers and doubles, and a double would silently round most decimals |
//! | `Date32` | string `YYYY-MM-DD`: a date has no time zone, and a timestamp at midnight UTC shows as the previous day in western consoles |
//! | `Time64(µs)` | string `HH:MM:SS.ffffff` |
//! | `Timestamp(µs)` | timestamp (a zone-less wall clock is taken as UTC) |
//! | `Timestamp(µs, UTC)` | timestamp |
//! | JSON | map / array / scalar values (integers that fit 64 bits stay integers, other numbers become doubles) |
//! | UUID | string, lowercase hyphenated |
//! | NULL | null |

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use backflow_connector_core::CanonicalType;
use chrono::{DateTime, NaiveDate, NaiveTime};
use googleapis_tonic_google_firestore_v1::google::firestore::v1::{
    value::ValueType, ArrayValue, MapValue, Value,
};

/// Firestore's maximum document size.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Firestore timestamps span years 1 to 9999.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// The Firestore value of row `row` of `array`, whose canonical type is `ty`; `Err` carries
/// why the value cannot be stored (the row is rejected, naming the column).
pub(crate) fn value(ty: &CanonicalType, array: &ArrayRef, row: usize) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(wrap(ValueType::NullValue(0)));
    }
    let v = match ty {
        CanonicalType::Int16 => {
            ValueType::IntegerValue(array.as_primitive::<Int16Type>().value(row).into())
        }
        CanonicalType::Int32 => {
            ValueType::IntegerValue(array.as_primitive::<Int32Type>().value(row).into())
        }
        CanonicalType::Int64 => {
            ValueType::IntegerValue(array.as_primitive::<Int64Type>().value(row))
        }
        CanonicalType::Float32 => {
            ValueType::DoubleValue(array.as_primitive::<Float32Type>().value(row).into())
        }
        CanonicalType::Float64 => {
            ValueType::DoubleValue(array.as_primitive::<Float64Type>().value(row))
        }
        CanonicalType::Boolean => ValueType::BooleanValue(array.as_boolean().value(row)),
        CanonicalType::Binary => {
            ValueType::BytesValue(array.as_binary::<i32>().value(row).to_vec())
        }
        CanonicalType::Timestamp | CanonicalType::TimestampTz => ValueType::TimestampValue(
            timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))?,
        ),
        CanonicalType::Json => json_value(
            serde_json::from_str(array.as_string::<i32>().value(row))
                .map_err(|e| format!("not valid JSON: {e}"))?,
            false,
        )?,
        CanonicalType::Text
        | CanonicalType::Decimal { .. }
        | CanonicalType::Date
        | CanonicalType::Time
        | CanonicalType::Uuid => {
            ValueType::StringValue(text(ty, array, row).ok_or_else(|| "no text form".to_string())??)
        }
    };
    Ok(wrap(v))
}

/// The text form of a value, for string-typed Firestore values and document ids; `None` for
/// types without one (floats, bytes, JSON) and `Some(Err)` for a value out of range.
pub(crate) fn text(
    ty: &CanonicalType,
    array: &ArrayRef,
    row: usize,
) -> Option<Result<String, String>> {
    Some(Ok(match ty {
        CanonicalType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        CanonicalType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        CanonicalType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        CanonicalType::Boolean => array.as_boolean().value(row).to_string(),
        CanonicalType::Text => array.as_string::<i32>().value(row).to_string(),
        CanonicalType::Decimal { .. } => {
            array.as_primitive::<Decimal128Type>().value_as_string(row)
        }
        CanonicalType::Date => {
            let days = array.as_primitive::<Date32Type>().value(row);
            match NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163)) {
                Some(d) => d.format("%Y-%m-%d").to_string(),
                None => return Some(Err(format!("date {days} days from 1970 is out of range"))),
            }
        }
        CanonicalType::Time => {
            let micros = array.as_primitive::<Time64MicrosecondType>().value(row);
            let time = u32::try_from(micros / 1_000_000).ok().and_then(|secs| {
                NaiveTime::from_num_seconds_from_midnight_opt(
                    secs,
                    (micros % 1_000_000) as u32 * 1000,
                )
            });
            match time {
                Some(t) => t.format("%H:%M:%S%.6f").to_string(),
                None => return Some(Err(format!("time {micros}µs is out of range"))),
            }
        }
        CanonicalType::Timestamp | CanonicalType::TimestampTz => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            match DateTime::from_timestamp_micros(micros) {
                Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                None => return Some(Err(format!("timestamp {micros}µs is out of range"))),
            }
        }
        CanonicalType::Uuid => hyphenated(array.as_fixed_size_binary().value(row)),
        CanonicalType::Float32
        | CanonicalType::Float64
        | CanonicalType::Binary
        | CanonicalType::Json => return None,
    }))
}

fn wrap(v: ValueType) -> Value {
    Value {
        value_type: Some(v),
    }
}

fn timestamp(micros: i64) -> Result<prost_types::Timestamp, String> {
    let seconds = micros.div_euclid(1_000_000);
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "timestamp {micros}µs is outside Firestore's range (years 1 to 9999)"
        ));
    }
    Ok(prost_types::Timestamp {
        seconds,
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    })
}

fn hyphenated(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A JSON value as a Firestore value. Firestore forbids an array directly inside an array.
fn json_value(json: serde_json::Value, in_array: bool) -> Result<ValueType, String> {
    Ok(match json {
        serde_json::Value::Null => ValueType::NullValue(0),
        serde_json::Value::Bool(b) => ValueType::BooleanValue(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ValueType::IntegerValue(i),
            None => ValueType::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => ValueType::StringValue(s),
        serde_json::Value::Array(items) => {
            if in_array {
                return Err(
                    "Firestore does not allow an array directly inside an array".to_string()
                );
            }
            ValueType::ArrayValue(ArrayValue {
                values: items
                    .into_iter()
                    .map(|v| json_value(v, true).map(wrap))
                    .collect::<Result<_, _>>()?,
            })
        }
        serde_json::Value::Object(map) => ValueType::MapValue(MapValue {
            fields: map
                .into_iter()
                .map(|(k, v)| json_value(v, false).map(|v| (k, wrap(v))))
                .collect::<Result<HashMap<_, _>, _>>()?,
        }),
    })
}

/// The stored size of a document, by Firestore's documented rules
/// (<https://firebase.google.com/docs/firestore/storage-size>): the name's size, plus each
/// field name's and value's size, plus 32 bytes.
pub(crate) fn document_size(relative_name: &str, fields: &HashMap<String, Value>) -> usize {
    let name: usize = relative_name.split('/').map(|s| s.len() + 1).sum::<usize>() + 16;
    name + fields
        .iter()
        .map(|(k, v)| k.len() + 1 + value_size(v))
        .sum::<usize>()
        + 32
}

fn value_size(v: &Value) -> usize {
    match &v.value_type {
        None | Some(ValueType::NullValue(_)) | Some(ValueType::BooleanValue(_)) => 1,
        Some(ValueType::IntegerValue(_))
        | Some(ValueType::DoubleValue(_))
        | Some(ValueType::TimestampValue(_)) => 8,
        Some(ValueType::StringValue(s)) | Some(ValueType::ReferenceValue(s)) => s.len() + 1,
        Some(ValueType::BytesValue(b)) => b.len(),
        Some(ValueType::GeoPointValue(_)) => 16,
        Some(ValueType::ArrayValue(a)) => a.values.iter().map(value_size).sum(),
        Some(ValueType::MapValue(m)) => m
            .fields
            .iter()
            .map(|(k, v)| k.len() + 1 + value_size(v))
            .sum(),
        Some(_) => 0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A string value, for tests.
    pub(crate) fn string(s: &str) -> Value {
        wrap(ValueType::StringValue(s.to_string()))
    }

    #[test]
    fn nested_arrays_are_refused_and_maps_kept() {
        let json =
            serde_json::json!({"a": [1, {"b": [2]}], "n": 1.5, "big": 18446744073709551615u64});
        let ValueType::MapValue(map) = json_value(json, false).unwrap() else {
            panic!("not a map")
        };
        assert_eq!(map.fields.len(), 3);
        assert_eq!(
            map.fields["big"].value_type,
            Some(ValueType::DoubleValue(18446744073709551615.0))
        );
        assert!(json_value(serde_json::json!([[1]]), false).is_err());
    }

    #[test]
    fn sizes_follow_the_documented_rules() {
        // Firestore's own example: a document `users/jeff` in a `tasks` subcollection.
        let mut fields = HashMap::new();
        fields.insert(
            "type".to_string(),
            wrap(ValueType::StringValue("Personal".into())),
        );
        fields.insert("done".to_string(), wrap(ValueType::BooleanValue(false)));
        fields.insert("priority".to_string(), wrap(ValueType::IntegerValue(1)));
        fields.insert(
            "description".to_string(),
            wrap(ValueType::StringValue("Learn Cloud Firestore".into())),
        );
        assert_eq!(document_size("users/jeff/tasks/my_task_id", &fields), 147);
    }

    #[test]
    fn decimals_and_dates_render_as_text() {
        let dec: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(vec![1230, -5])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let ty = CanonicalType::Decimal {
            precision: 10,
            scale: 2,
        };
        assert_eq!(text(&ty, &dec, 0).unwrap().unwrap(), "12.30");
        assert_eq!(text(&ty, &dec, 1).unwrap().unwrap(), "-0.05");
        let date: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![19_000]));
        assert_eq!(
            text(&CanonicalType::Date, &date, 0).unwrap().unwrap(),
            "2022-01-08"
        );
    }
}
