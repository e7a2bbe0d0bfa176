//! Canonical Arrow values → BSON values (the mapping documented in the crate docs).
//!
//! Values are built as raw BSON so a statement's encoded size is known exactly when batches
//! are cut to the server's limits, and nothing is re-encoded on the way to the socket.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use backflow_connector_core::CanonicalType;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, DateTime, Decimal128, RawArrayBuf, RawBson, RawDocumentBuf};

use crate::config::DecimalsAs;

/// Milliseconds in a day, for dates.
const MS_PER_DAY: i64 = 86_400_000;
/// The largest coefficient a BSON Decimal128 holds: 34 decimal digits.
const DECIMAL128_MAX_COEFFICIENT: u128 = 10u128.pow(34) - 1;
/// The exponent bias of IEEE 754-2008 decimal128.
const DECIMAL128_EXPONENT_BIAS: i32 = 6176;

/// The BSON value of row `row` of `column`, whose canonical type is `canonical`; `Err` is a
/// message for a rejected row (the value has no BSON form).
pub(crate) fn value(
    column: &ArrayRef,
    canonical: &CanonicalType,
    row: usize,
    decimals: DecimalsAs,
) -> Result<RawBson, String> {
    if column.is_null(row) {
        return Ok(RawBson::Null);
    }
    Ok(match canonical {
        CanonicalType::Int16 => {
            RawBson::Int32(column.as_primitive::<Int16Type>().value(row).into())
        }
        CanonicalType::Int32 => RawBson::Int32(column.as_primitive::<Int32Type>().value(row)),
        CanonicalType::Int64 => RawBson::Int64(column.as_primitive::<Int64Type>().value(row)),
        CanonicalType::Decimal { scale, .. } => {
            let v = column.as_primitive::<Decimal128Type>().value(row);
            match decimals {
                DecimalsAs::Decimal128 => RawBson::Decimal128(decimal128(v, *scale)?),
                DecimalsAs::String => RawBson::String(decimal_text(v, *scale)),
                DecimalsAs::Double => RawBson::Double(v as f64 / 10f64.powi((*scale).into())),
            }
        }
        CanonicalType::Float32 => {
            RawBson::Double(column.as_primitive::<Float32Type>().value(row).into())
        }
        CanonicalType::Float64 => RawBson::Double(column.as_primitive::<Float64Type>().value(row)),
        CanonicalType::Boolean => RawBson::Boolean(column.as_boolean().value(row)),
        CanonicalType::Text => RawBson::String(column.as_string::<i32>().value(row).to_string()),
        CanonicalType::Binary => RawBson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: column.as_binary::<i32>().value(row).to_vec(),
        }),
        CanonicalType::Uuid => RawBson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: column.as_fixed_size_binary().value(row).to_vec(),
        }),
        CanonicalType::Date => {
            let days = i64::from(column.as_primitive::<Date32Type>().value(row));
            RawBson::DateTime(DateTime::from_millis(days * MS_PER_DAY))
        }
        CanonicalType::Time => RawBson::String(time_text(
            column.as_primitive::<Time64MicrosecondType>().value(row),
        )),
        CanonicalType::Timestamp | CanonicalType::TimestampTz => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            RawBson::DateTime(DateTime::from_millis(micros.div_euclid(1000)))
        }
        CanonicalType::Json => json(column.as_string::<i32>().value(row))?,
    })
}

/// A decimal as BSON Decimal128 (IEEE 754-2008 BID encoding), exactly or not at all.
fn decimal128(value: i128, scale: i8) -> Result<Decimal128, String> {
    let negative = value < 0;
    let mut coefficient = value.unsigned_abs();
    let mut exponent = -i32::from(scale);
    // Trailing zeros cost digits but no value: drop them when the coefficient is too long.
    while coefficient > DECIMAL128_MAX_COEFFICIENT && coefficient.is_multiple_of(10) {
        coefficient /= 10;
        exponent += 1;
    }
    if coefficient > DECIMAL128_MAX_COEFFICIENT {
        return Err(format!(
            "{} has more than the 34 significant digits a BSON Decimal128 holds",
            decimal_text(value, scale)
        ));
    }
    let biased = u128::try_from(exponent + DECIMAL128_EXPONENT_BIAS)
        .map_err(|_| "decimal exponent out of Decimal128 range".to_string())?;
    let bits = (u128::from(negative) << 127) | (biased << 113) | coefficient;
    Ok(Decimal128::from_bytes(bits.to_le_bytes()))
}

/// A decimal's exact text, `-12.340` for (-12340, 3).
pub(crate) fn decimal_text(value: i128, scale: i8) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        return if value == 0 {
            "0".to_string()
        } else {
            format!("{sign}{digits}{zeros}")
        };
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// A time of day as `HH:MM:SS` or `HH:MM:SS.ffffff`: MongoDB has no time type.
fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{frac:06}")
    }
}

/// JSON text as BSON: objects become embedded documents, arrays arrays, integers Int32 when
/// they fit and Int64 otherwise, other numbers doubles.
fn json(text: &str) -> Result<RawBson, String> {
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    json_value(&parsed)
}

fn json_value(v: &serde_json::Value) -> Result<RawBson, String> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => RawBson::Null,
        Value::Bool(b) => RawBson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(small) => RawBson::Int32(small),
                Err(_) => RawBson::Int64(i),
            },
            None => RawBson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => RawBson::String(s.clone()),
        Value::Array(items) => {
            let mut array = RawArrayBuf::new();
            for item in items {
                array.push(json_value(item)?);
            }
            RawBson::Array(array)
        }
        Value::Object(map) => {
            let mut doc = RawDocumentBuf::new();
            for (key, item) in map {
                if key.contains('\0') {
                    return Err("a JSON object key contains a NUL character".to_string());
                }
                doc.append(key, json_value(item)?);
            }
            RawBson::Document(doc)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal128_matches_the_bson_parser() {
        for (v, s, text) in [
            (12345i128, 2i8, "123.45"),
            (-1, 0, "-1"),
            (0, 4, "0.0000"),
            (5, -3, "5E+3"),
            (10i128.pow(37), 0, "1000000000000000000000000000000000E+4"),
        ] {
            let ours = decimal128(v, s).unwrap();
            let theirs: Decimal128 = text.parse().unwrap();
            assert_eq!(ours.bytes(), theirs.bytes(), "{v} scale {s}");
        }
        assert!(decimal128(10i128.pow(35) + 1, 0).is_err());
    }

    #[test]
    fn decimal_and_time_text() {
        assert_eq!(decimal_text(-12340, 3), "-12.340");
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(5, -2), "500");
        assert_eq!(time_text(3_723_000_001), "01:02:03.000001");
        assert_eq!(time_text(0), "00:00:00");
    }

    #[test]
    fn json_maps_to_documents_and_arrays() {
        let RawBson::Document(doc) =
            json(r#"{"a":[1,2.5,"x",null],"b":{"c":5000000000}}"#).unwrap()
        else {
            panic!("not a document")
        };
        let doc = doc.to_document().unwrap();
        assert_eq!(
            doc,
            mongodb::bson::doc! {"a": [1, 2.5, "x", null], "b": {"c": 5_000_000_000i64}}
        );
        assert!(json("{").unwrap_err().contains("invalid JSON"));
    }
}
