//! The Arrow → SQLite type mapping: the column type a created table gets, and the value each
//! canonical Arrow value is bound as.
//!
//! | canonical type | column type | bound value |
//! |---|---|---|
//! | `Int16`, `Int32`, `Int64` | `INTEGER` | integer |
//! | `Boolean` | `INTEGER` | `0` / `1` |
//! | `Float32`, `Float64` | `REAL` | real; NaN is bound as the text `'NaN'` because SQLite turns a NaN real into NULL (±infinity are stored as reals) |
//! | `Decimal(p, s)` | `TEXT` | the exact decimal string (`-12.3400`), never a lossy real |
//! | `Text` | `TEXT` | text |
//! | `Binary` | `BLOB` | blob |
//! | `Date` | `TEXT` | `YYYY-MM-DD` |
//! | `Time` | `TEXT` | `HH:MM:SS.ffffff` |
//! | `Timestamp` | `TEXT` | `YYYY-MM-DD HH:MM:SS.ffffff` |
//! | `TimestampTz` | `TEXT` | RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS.ffffffZ` |
//! | `Json` | `TEXT` | the JSON text |
//! | `Uuid` | `TEXT` | hyphenated lowercase (`67e55044-10b1-426f-9247-bb680e5fe0c8`) |
//!
//! The text forms sort chronologically and are what SQLite's own date functions read. NULL is
//! NULL for every type.

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Field;
use arrow::temporal_conversions::{date32_to_datetime, time64us_to_time, timestamp_us_to_datetime};
use backflow_connector_core::{CanonicalType, ConnectorError};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments};

/// One value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Binds `values` in order (statements refer to them as `?1`, `?2`, …).
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments<'q>>,
    values: &'q [SqlValue],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for value in values {
        query = match value {
            SqlValue::Null => query.bind(None::<i64>),
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Real(v) => query.bind(*v),
            SqlValue::Text(v) => query.bind(v.as_str()),
            SqlValue::Blob(v) => query.bind(v.as_slice()),
        };
    }
    query
}

/// The declared column type of a created table for `ty` (see the module table).
pub(crate) fn column_type(ty: &CanonicalType) -> &'static str {
    match ty {
        CanonicalType::Int16
        | CanonicalType::Int32
        | CanonicalType::Int64
        | CanonicalType::Boolean => "INTEGER",
        CanonicalType::Float32 | CanonicalType::Float64 => "REAL",
        CanonicalType::Binary => "BLOB",
        CanonicalType::Decimal { .. }
        | CanonicalType::Text
        | CanonicalType::Date
        | CanonicalType::Time
        | CanonicalType::Timestamp
        | CanonicalType::TimestampTz
        | CanonicalType::Json
        | CanonicalType::Uuid => "TEXT",
    }
}

/// Reads one column of a batch as SQLite values, checked once per batch against the canonical
/// type the writer was opened with.
pub(crate) struct ColumnReader<'a> {
    name: &'a str,
    ty: &'a CanonicalType,
    array: &'a ArrayRef,
}

impl<'a> ColumnReader<'a> {
    /// Pairs a column with its canonical type, failing (naming the column) when the batch's
    /// array does not have the physical type that canonical type requires.
    pub(crate) fn new(
        field: &'a Field,
        ty: &'a CanonicalType,
        array: &'a ArrayRef,
    ) -> Result<Self, ConnectorError> {
        if !same_physical(ty, array) {
            return Err(ConnectorError::schema(
                field.name(),
                format!(
                    "batch column has type {} but the writer was opened for {ty:?}",
                    array.data_type()
                ),
            ));
        }
        Ok(Self {
            name: field.name(),
            ty,
            array,
        })
    }

    /// The value at `row`, or a message when it cannot be represented (a date out of range).
    pub(crate) fn value(&self, row: usize) -> Result<SqlValue, String> {
        let a = self.array;
        if a.is_null(row) {
            return Ok(SqlValue::Null);
        }
        let out_of_range = || {
            format!(
                "value of column `{}` is out of the representable range",
                self.name
            )
        };
        Ok(match self.ty {
            CanonicalType::Int16 => SqlValue::Int(downcast::<Int16Array>(a).value(row).into()),
            CanonicalType::Int32 => SqlValue::Int(downcast::<Int32Array>(a).value(row).into()),
            CanonicalType::Int64 => SqlValue::Int(downcast::<Int64Array>(a).value(row)),
            CanonicalType::Boolean => {
                SqlValue::Int(i64::from(downcast::<BooleanArray>(a).value(row)))
            }
            CanonicalType::Float32 => real(f64::from(downcast::<Float32Array>(a).value(row))),
            CanonicalType::Float64 => real(downcast::<Float64Array>(a).value(row)),
            CanonicalType::Decimal { .. } => {
                SqlValue::Text(downcast::<Decimal128Array>(a).value_as_string(row))
            }
            CanonicalType::Text | CanonicalType::Json => {
                SqlValue::Text(downcast::<StringArray>(a).value(row).to_string())
            }
            CanonicalType::Binary => SqlValue::Blob(downcast::<BinaryArray>(a).value(row).to_vec()),
            CanonicalType::Date => {
                let days = downcast::<Date32Array>(a).value(row);
                let dt = date32_to_datetime(days).ok_or_else(out_of_range)?;
                SqlValue::Text(dt.format("%Y-%m-%d").to_string())
            }
            CanonicalType::Time => {
                let micros = downcast::<Time64MicrosecondArray>(a).value(row);
                let t = time64us_to_time(micros).ok_or_else(out_of_range)?;
                SqlValue::Text(t.format("%H:%M:%S%.6f").to_string())
            }
            CanonicalType::Timestamp => {
                let micros = downcast::<TimestampMicrosecondArray>(a).value(row);
                let dt = timestamp_us_to_datetime(micros).ok_or_else(out_of_range)?;
                SqlValue::Text(dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            }
            CanonicalType::TimestampTz => {
                // Canonical zoned timestamps are UTC instants: render the UTC wall clock + Z.
                let micros = downcast::<TimestampMicrosecondArray>(a).value(row);
                let dt = timestamp_us_to_datetime(micros).ok_or_else(out_of_range)?;
                SqlValue::Text(dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            }
            CanonicalType::Uuid => {
                let bytes = downcast::<FixedSizeBinaryArray>(a).value(row);
                let uuid = uuid::Uuid::from_slice(bytes).map_err(|e| e.to_string())?;
                SqlValue::Text(uuid.hyphenated().to_string())
            }
        })
    }
}

fn real(v: f64) -> SqlValue {
    if v.is_nan() {
        SqlValue::Text("NaN".to_string())
    } else {
        SqlValue::Real(v)
    }
}

/// The array type behind each canonical type (checked in [`ColumnReader::new`], so the
/// downcasts in `value` cannot fail).
fn same_physical(ty: &CanonicalType, array: &ArrayRef) -> bool {
    use arrow::datatypes::{DataType, TimeUnit};
    let dt = array.data_type();
    match ty {
        CanonicalType::Int16 => dt == &DataType::Int16,
        CanonicalType::Int32 => dt == &DataType::Int32,
        CanonicalType::Int64 => dt == &DataType::Int64,
        CanonicalType::Decimal { .. } => matches!(dt, DataType::Decimal128(..)),
        CanonicalType::Float32 => dt == &DataType::Float32,
        CanonicalType::Float64 => dt == &DataType::Float64,
        CanonicalType::Boolean => dt == &DataType::Boolean,
        CanonicalType::Text | CanonicalType::Json => dt == &DataType::Utf8,
        CanonicalType::Binary => dt == &DataType::Binary,
        CanonicalType::Date => dt == &DataType::Date32,
        CanonicalType::Time => dt == &DataType::Time64(TimeUnit::Microsecond),
        CanonicalType::Timestamp | CanonicalType::TimestampTz => {
            matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _))
        }
        CanonicalType::Uuid => dt == &DataType::FixedSizeBinary(16),
    }
}

fn downcast<T: 'static>(array: &ArrayRef) -> &T {
    array
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| unreachable!("physical type checked in ColumnReader::new"))
}
