//! Canonical Arrow values rendered in the PostgreSQL text input syntax both PostgreSQL and
//! CockroachDB parse, so each column travels as one `text[]` parameter and is cast to its
//! native type in SQL.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use backflow_connector_core::{CanonicalType, ConnectorError};

/// The column's values as text (NULL stays `None`), after checking the array really has the
/// canonical type the target declared: a mismatched batch is an error, never a panic.
pub(crate) fn encode(
    name: &str,
    canonical: &CanonicalType,
    array: &ArrayRef,
    field: &arrow::datatypes::Field,
) -> Result<Vec<Option<String>>, ConnectorError> {
    if CanonicalType::of(field).as_ref() != Some(canonical) {
        return Err(ConnectorError::schema(
            name,
            format!(
                "the batch's column `{name}` is {} but the target declares {canonical:?}",
                array.data_type()
            ),
        ));
    }
    let a = array.as_ref();
    Ok(match canonical {
        CanonicalType::Int16 => {
            let v = array.as_primitive::<Int16Type>();
            collect(a, |i| v.value(i).to_string())
        }
        CanonicalType::Int32 => {
            let v = array.as_primitive::<Int32Type>();
            collect(a, |i| v.value(i).to_string())
        }
        CanonicalType::Int64 => {
            let v = array.as_primitive::<Int64Type>();
            collect(a, |i| v.value(i).to_string())
        }
        CanonicalType::Float32 => {
            let v = array.as_primitive::<Float32Type>();
            collect(a, |i| float(f64::from(v.value(i)), v.value(i).to_string()))
        }
        CanonicalType::Float64 => {
            let v = array.as_primitive::<Float64Type>();
            collect(a, |i| float(v.value(i), v.value(i).to_string()))
        }
        CanonicalType::Decimal { .. } => {
            let v = array.as_primitive::<Decimal128Type>();
            collect(a, |i| v.value_as_string(i))
        }
        CanonicalType::Boolean => {
            let v = array.as_boolean();
            collect(a, |i| if v.value(i) { "t" } else { "f" }.to_string())
        }
        CanonicalType::Text | CanonicalType::Json => {
            let v = array.as_string::<i32>();
            collect(a, |i| v.value(i).to_string())
        }
        CanonicalType::Binary => {
            let v = array.as_binary::<i32>();
            collect(a, |i| format!("\\x{}", hex(v.value(i))))
        }
        CanonicalType::Uuid => {
            let v = array.as_fixed_size_binary();
            collect(a, |i| uuid(v.value(i)))
        }
        CanonicalType::Date => {
            let v = array.as_primitive::<Date32Type>();
            collect(a, |i| {
                v.value_as_date(i)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| format!("{} days", v.value(i)))
            })
        }
        CanonicalType::Time => {
            let v = array.as_primitive::<Time64MicrosecondType>();
            collect(a, |i| {
                v.value_as_time(i)
                    .map(|t| t.format("%H:%M:%S%.6f").to_string())
                    .unwrap_or_else(|| format!("{} microseconds", v.value(i)))
            })
        }
        CanonicalType::Timestamp => {
            let v = array.as_primitive::<TimestampMicrosecondType>();
            collect(a, |i| timestamp(v.value(i), ""))
        }
        CanonicalType::TimestampTz => {
            let v = array.as_primitive::<TimestampMicrosecondType>();
            collect(a, |i| timestamp(v.value(i), "+00:00"))
        }
    })
}

fn collect(array: &dyn Array, f: impl Fn(usize) -> String) -> Vec<Option<String>> {
    (0..array.len())
        .map(|i| (!array.is_null(i)).then(|| f(i)))
        .collect()
}

/// Rust's shortest round-trip rendering, with PostgreSQL's spellings of the special values.
fn float(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shortest
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid(b: &[u8]) -> String {
    let h = hex(b);
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Microseconds since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff`, years before 1 in BC form.
fn timestamp(micros: i64, zone: &str) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => format!("{}{zone}", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")),
        // Out of chrono's range: let the database refuse the row with its own message.
        None => format!("{micros} microseconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, TimeUnit};

    #[test]
    fn renders_postgres_input_syntax() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![Some(1e300), None, Some(f64::NAN)]));
        let f = Field::new("x", DataType::Float64, true);
        let v = encode("x", &CanonicalType::Float64, &a, &f).unwrap();
        assert_eq!(v[1], None);
        assert_eq!(v[2].as_deref(), Some("NaN"));
        assert_eq!(v[0].as_deref().unwrap().parse::<f64>().unwrap(), 1e300);

        let a: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(-1)]).with_timezone("UTC"));
        let f = Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        );
        let v = encode("t", &CanonicalType::TimestampTz, &a, &f).unwrap();
        assert_eq!(v[0].as_deref(), Some("1969-12-31 23:59:59.999999+00:00"));
    }

    #[test]
    fn a_mismatched_column_is_an_error_naming_it() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let f = Field::new("score", DataType::Float64, true);
        let e = encode("score", &CanonicalType::Int32, &a, &f).unwrap_err();
        assert_eq!(e.column(), Some("score"));
    }
}
