//! The canonical Arrow type set that flows between sources, the engine and destinations.
//!
//! Sources may produce any Arrow type; the engine casts each batch to the canonical set with
//! [`canonical_schema`] and [`canonicalize_batch`] before hashing and writing, so destinations
//! implement one mapping table each and hashes stay stable whatever a source's physical types.
//!
//! | canonical type | arrives from |
//! |---|---|
//! | `Int16`, `Int32`, `Int64` | every signed integer; `Int8`/`UInt8` widen to `Int16`, `UInt16` to `Int32`, `UInt32` to `Int64` |
//! | `Decimal128(p, s)` | decimals up to 38 digits; `UInt64` becomes `Decimal128(20, 0)` |
//! | `Float32`, `Float64` | floats (`Float16` widens to `Float32`) |
//! | `Boolean` | booleans |
//! | `Utf8` | `Utf8`, `LargeUtf8`, `Utf8View`, dictionaries of strings |
//! | `Binary` | `Binary`, `LargeBinary`, `BinaryView`, `FixedSizeBinary` (not UUID) |
//! | `Date32` | `Date32`, `Date64` |
//! | `Time64(µs)` | every time type (nanoseconds truncate to microseconds) |
//! | `Timestamp(µs, None)` | timestamps without zone |
//! | `Timestamp(µs, "UTC")` | timestamps with any zone: an instant, normalised to UTC |
//! | JSON: `Utf8` + extension `arrow.json` | JSON columns; lists, structs and maps are rendered as JSON text |
//! | UUID: `FixedSizeBinary(16)` + extension `arrow.uuid` | UUID columns |
//!
//! Anything else (intervals, durations, `Decimal256` wider than 38 digits, unions) is rejected
//! with an error naming the column and its type.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use crate::error::ConnectorError;

/// Arrow field metadata key naming an extension type.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
/// The canonical JSON extension name (Arrow's own `arrow.json`).
pub const JSON_EXTENSION: &str = "arrow.json";
/// The canonical UUID extension name (Arrow's own `arrow.uuid`).
pub const UUID_EXTENSION: &str = "arrow.uuid";
/// The zone every zoned timestamp is normalised to.
pub const UTC: &str = "UTC";

/// A nullable JSON column: `Utf8` tagged `arrow.json`.
pub fn json_field(name: &str) -> Field {
    with_extension(Field::new(name, DataType::Utf8, true), JSON_EXTENSION)
}

/// A nullable UUID column: `FixedSizeBinary(16)` tagged `arrow.uuid`.
pub fn uuid_field(name: &str) -> Field {
    with_extension(
        Field::new(name, DataType::FixedSizeBinary(16), true),
        UUID_EXTENSION,
    )
}

/// Tags `field` with an Arrow extension name.
pub fn with_extension(field: Field, extension: &str) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(EXTENSION_NAME_KEY.to_string(), extension.to_string());
    field.with_metadata(metadata)
}

/// The extension name a field carries, if any.
pub fn extension(field: &Field) -> Option<&str> {
    field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str)
}

/// Whether a field holds JSON text.
pub fn is_json(field: &Field) -> bool {
    extension(field) == Some(JSON_EXTENSION) && field.data_type() == &DataType::Utf8
}

/// Whether a field holds UUIDs.
pub fn is_uuid(field: &Field) -> bool {
    extension(field) == Some(UUID_EXTENSION) && field.data_type() == &DataType::FixedSizeBinary(16)
}

/// The canonical types a destination must handle, as a closed enum so a `match` in a
/// destination's type mapping is checked for exhaustiveness by the compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalType {
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// Exact decimal with precision and scale.
    Decimal {
        /// Total digits (1..=38).
        precision: u8,
        /// Digits after the point (may be negative in Arrow; destinations reject that).
        scale: i8,
    },
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Boolean,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Binary,
    /// Calendar date.
    Date,
    /// Time of day, microseconds.
    Time,
    /// Wall-clock timestamp without zone, microseconds.
    Timestamp,
    /// Instant in time (normalised to UTC), microseconds.
    TimestampTz,
    /// JSON document as text.
    Json,
    /// UUID as 16 bytes.
    Uuid,
}

impl CanonicalType {
    /// Classifies a field of a canonical schema; `None` means the field is not canonical (a
    /// bug in the caller, who should have canonicalised first).
    pub fn of(field: &Field) -> Option<Self> {
        if is_json(field) {
            return Some(Self::Json);
        }
        if is_uuid(field) {
            return Some(Self::Uuid);
        }
        Some(match field.data_type() {
            DataType::Int16 => Self::Int16,
            DataType::Int32 => Self::Int32,
            DataType::Int64 => Self::Int64,
            DataType::Decimal128(p, s) => Self::Decimal {
                precision: *p,
                scale: *s,
            },
            DataType::Float32 => Self::Float32,
            DataType::Float64 => Self::Float64,
            DataType::Boolean => Self::Boolean,
            DataType::Utf8 => Self::Text,
            DataType::Binary => Self::Binary,
            DataType::Date32 => Self::Date,
            DataType::Time64(TimeUnit::Microsecond) => Self::Time,
            DataType::Timestamp(TimeUnit::Microsecond, None) => Self::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Self::TimestampTz,
            _ => return None,
        })
    }

    /// Like [`CanonicalType::of`], as an error naming the column for destinations.
    pub fn require(field: &Field) -> Result<Self, ConnectorError> {
        Self::of(field).ok_or_else(|| {
            ConnectorError::schema(
                field.name(),
                format!(
                    "type {} is not a canonical Backflow type",
                    field.data_type()
                ),
            )
        })
    }
}

/// How a source type is brought to the canonical set.
enum Conversion {
    Keep,
    Cast(DataType),
    ToJson,
}

fn conversion(field: &Field) -> Result<(Field, Conversion), ConnectorError> {
    use Conversion::*;
    let name = field.name();
    let nullable = field.is_nullable();
    let plain = |dt: DataType| Field::new(name, dt, nullable);
    if is_json(field) || is_uuid(field) {
        return Ok((field.clone(), Keep));
    }
    if extension(field) == Some(JSON_EXTENSION) {
        // JSON stored as LargeUtf8 or Utf8View: cast but keep the tag.
        let target = with_extension(plain(DataType::Utf8), JSON_EXTENSION);
        return Ok((target, Cast(DataType::Utf8)));
    }
    let (dt, conv) = match field.data_type() {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => (field.data_type().clone(), Keep),
        DataType::Int8 | DataType::UInt8 => (DataType::Int16, Cast(DataType::Int16)),
        DataType::UInt16 => (DataType::Int32, Cast(DataType::Int32)),
        DataType::UInt32 => (DataType::Int64, Cast(DataType::Int64)),
        DataType::UInt64 => (
            DataType::Decimal128(20, 0),
            Cast(DataType::Decimal128(20, 0)),
        ),
        DataType::Float16 => (DataType::Float32, Cast(DataType::Float32)),
        DataType::Float32 | DataType::Float64 | DataType::Boolean => {
            (field.data_type().clone(), Keep)
        }
        DataType::Decimal128(_, _) => (field.data_type().clone(), Keep),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
            let dt = DataType::Decimal128(*p, *s);
            (dt.clone(), Cast(dt))
        }
        DataType::Decimal256(p, s) if *p <= 38 => {
            let dt = DataType::Decimal128(*p, *s);
            (dt.clone(), Cast(dt))
        }
        DataType::Utf8 => (DataType::Utf8, Keep),
        DataType::LargeUtf8 | DataType::Utf8View => (DataType::Utf8, Cast(DataType::Utf8)),
        DataType::Dictionary(_, value)
            if matches!(
                value.as_ref(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            (DataType::Utf8, Cast(DataType::Utf8))
        }
        DataType::Binary => (DataType::Binary, Keep),
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            (DataType::Binary, Cast(DataType::Binary))
        }
        DataType::Date32 => (DataType::Date32, Keep),
        DataType::Date64 => (DataType::Date32, Cast(DataType::Date32)),
        DataType::Time64(TimeUnit::Microsecond) => (field.data_type().clone(), Keep),
        DataType::Time32(_) | DataType::Time64(_) => {
            let dt = DataType::Time64(TimeUnit::Microsecond);
            (dt.clone(), Cast(dt))
        }
        DataType::Timestamp(unit, tz) => {
            let dt = DataType::Timestamp(
                TimeUnit::Microsecond,
                tz.as_ref().map(|_| Arc::<str>::from(UTC)),
            );
            let keep = *unit == TimeUnit::Microsecond
                && tz.as_deref().is_none_or(|z| z == UTC || z == "+00:00");
            if keep && tz.as_deref() != Some("+00:00") {
                (dt, Keep)
            } else {
                (dt.clone(), Cast(dt))
            }
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::Struct(_)
        | DataType::Map(_, _) => {
            let target = with_extension(plain(DataType::Utf8), JSON_EXTENSION);
            return Ok((target, ToJson));
        }
        other => {
            return Err(ConnectorError::schema(
                name,
                format!("type {other} has no canonical Backflow mapping"),
            ))
        }
    };
    let mut target = plain(dt);
    if !field.metadata().is_empty() {
        target = target.with_metadata(field.metadata().clone());
    }
    Ok((target, conv))
}

/// The canonical schema for a source schema, or an error naming the first unsupported column.
pub fn canonical_schema(schema: &Schema) -> Result<SchemaRef, ConnectorError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| conversion(f).map(|(target, _)| target))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Casts `batch` to the canonical types; fails naming the column when a value does not fit.
pub fn canonicalize_batch(batch: &RecordBatch) -> Result<RecordBatch, ConnectorError> {
    let schema = batch.schema();
    let mut fields: Vec<FieldRef> = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let (target, conv) = conversion(field)?;
        let converted = match conv {
            Conversion::Keep => column.clone(),
            Conversion::Cast(dt) => cast_with_options(column, &dt, &options).map_err(|e| {
                ConnectorError::data(field.name(), format!("cannot convert to {dt}: {e}"))
            })?,
            Conversion::ToJson => nested_to_json(field.name(), column)?,
        };
        fields.push(Arc::new(target));
        columns.push(converted);
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, HashMap::new()));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Renders a nested column (list, struct, map) as one JSON text per row, NULL for NULL.
fn nested_to_json(name: &str, column: &ArrayRef) -> Result<ArrayRef, ConnectorError> {
    let field = Field::new("v", column.data_type().clone(), true);
    let one = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column.clone()])?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer
        .write(&one)
        .map_err(|e| ConnectorError::data(name, format!("cannot render as JSON: {e}")))?;
    writer
        .finish()
        .map_err(|e| ConnectorError::data(name, format!("cannot render as JSON: {e}")))?;
    let bytes = writer.into_inner();
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ConnectorError::internal(format!("json writer output: {e}")))?
    };
    let mut builder = StringBuilder::with_capacity(column.len(), bytes.len());
    for (i, row) in rows.iter().enumerate() {
        if column.is_null(i) {
            builder.append_null();
        } else {
            match row.get("v") {
                Some(v) => builder.append_value(v.to_string()),
                None => builder.append_null(),
            }
        }
    }
    for _ in rows.len()..column.len() {
        builder.append_null();
    }
    Ok(Arc::new(builder.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        AsArray, Int32Array, Int64Builder, ListBuilder, StringViewArray, TimestampNanosecondArray,
        UInt8Array,
    };

    #[test]
    fn casts_to_canonical_types() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::UInt8, true),
            Field::new("s", DataType::Utf8View, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
                true,
            ),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
        ]));
        let mut list = ListBuilder::new(Int64Builder::new());
        list.values().append_value(1);
        list.values().append_value(2);
        list.append(true);
        list.append(false);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt8Array::from(vec![Some(255), None])),
                Arc::new(StringViewArray::from(vec![Some("é"), Some("")])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_500), None]).with_timezone("+02:00"),
                ),
                Arc::new(list.finish()),
            ],
        )
        .unwrap();
        let out = canonicalize_batch(&batch).unwrap();
        let types: Vec<_> = out
            .schema()
            .fields()
            .iter()
            .map(|f| CanonicalType::of(f).unwrap())
            .collect();
        assert_eq!(
            types,
            vec![
                CanonicalType::Int16,
                CanonicalType::Text,
                CanonicalType::TimestampTz,
                CanonicalType::Json
            ]
        );
        let json = out.column(3).as_string::<i32>();
        assert_eq!(json.value(0), "[1,2]");
        assert!(json.is_null(1));
        assert_eq!(
            out.column(2)
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            1
        );
        assert_eq!(
            canonical_schema(&batch.schema()).unwrap().fields(),
            out.schema().fields()
        );
    }

    #[test]
    fn unsupported_type_names_the_column() {
        let schema = Schema::new(vec![Field::new(
            "span",
            DataType::Duration(TimeUnit::Second),
            true,
        )]);
        let e = canonical_schema(&schema).unwrap_err();
        assert_eq!(e.column(), Some("span"));
        assert!(e.message().contains("Duration"), "{e}");
        let _ = Int32Array::from(vec![1]);
    }
}
