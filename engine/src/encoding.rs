//! The canonical row encoding that keys and row hashes are computed over.
//!
//! Snapshots outlive binaries, so the bytes hashed and stored must not depend on a library's
//! internal layout (Arrow's row format makes no cross-version promise). This module defines
//! Backflow's own encoding, version 1, over the canonical type set:
//!
//! * every value starts with a tag byte: `0` for NULL, `1` for a value;
//! * fixed-width values follow big-endian (integers at their own width, floats as IEEE bits
//!   with every NaN folded to one pattern, decimals as `i128`, dates `i32` days, times and
//!   timestamps `i64` microseconds, booleans one byte, UUIDs 16 bytes);
//! * variable-width values (text, JSON, binary) follow as a little-endian `u32` length and the
//!   bytes.
//!
//! The same encoder writes primary keys (stored in snapshots, decoded back for deletes) and
//! whole rows (hashed with xxh3-128, never stored).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use backflow_connector_core::CanonicalType;

use crate::error::EngineError;

/// One column prepared for encoding: the typed view is resolved once per batch, so the per-row
/// loop is a plain `match` with no downcasts.
enum Column<'a> {
    I16(&'a arrow::array::PrimitiveArray<Int16Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    Decimal(&'a arrow::array::PrimitiveArray<Decimal128Type>),
    F32(&'a arrow::array::PrimitiveArray<Float32Type>),
    F64(&'a arrow::array::PrimitiveArray<Float64Type>),
    Bool(&'a arrow::array::BooleanArray),
    Text(&'a arrow::array::StringArray),
    Binary(&'a arrow::array::BinaryArray),
    Date(&'a arrow::array::PrimitiveArray<Date32Type>),
    Time(&'a arrow::array::PrimitiveArray<Time64MicrosecondType>),
    Timestamp(&'a arrow::array::PrimitiveArray<TimestampMicrosecondType>),
    Uuid(&'a arrow::array::FixedSizeBinaryArray),
}

/// Encodes rows of a fixed set of columns of one batch.
pub struct RowEncoder<'a> {
    columns: Vec<Column<'a>>,
}

impl<'a> RowEncoder<'a> {
    /// Prepares `arrays` (canonical types, described by `fields`) for encoding.
    pub fn new(fields: &[&Field], arrays: &[&'a ArrayRef]) -> Result<Self, EngineError> {
        let columns = fields
            .iter()
            .zip(arrays)
            .map(|(field, array)| column(field, array))
            .collect::<Result<_, _>>()?;
        Ok(Self { columns })
    }

    /// Appends the encoding of `row` to `out`.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) {
        for column in &self.columns {
            encode_value(column, row, out);
        }
    }
}

fn column<'a>(field: &Field, array: &'a ArrayRef) -> Result<Column<'a>, EngineError> {
    let ty = CanonicalType::require(field).map_err(EngineError::Source)?;
    Ok(match ty {
        CanonicalType::Int16 => Column::I16(array.as_primitive()),
        CanonicalType::Int32 => Column::I32(array.as_primitive()),
        CanonicalType::Int64 => Column::I64(array.as_primitive()),
        CanonicalType::Decimal { .. } => Column::Decimal(array.as_primitive()),
        CanonicalType::Float32 => Column::F32(array.as_primitive()),
        CanonicalType::Float64 => Column::F64(array.as_primitive()),
        CanonicalType::Boolean => Column::Bool(array.as_boolean()),
        CanonicalType::Text | CanonicalType::Json => Column::Text(array.as_string()),
        CanonicalType::Binary => Column::Binary(array.as_binary()),
        CanonicalType::Date => Column::Date(array.as_primitive()),
        CanonicalType::Time => Column::Time(array.as_primitive()),
        CanonicalType::Timestamp | CanonicalType::TimestampTz => {
            Column::Timestamp(array.as_primitive())
        }
        CanonicalType::Uuid => Column::Uuid(array.as_fixed_size_binary()),
    })
}

#[inline]
fn encode_value(column: &Column<'_>, row: usize, out: &mut Vec<u8>) {
    macro_rules! fixed {
        ($a:expr, $to_bytes:expr) => {{
            if $a.is_null(row) {
                out.push(0);
            } else {
                out.push(1);
                out.extend_from_slice(&$to_bytes($a.value(row)));
            }
        }};
    }
    macro_rules! var {
        ($a:expr) => {{
            if $a.is_null(row) {
                out.push(0);
            } else {
                let v: &[u8] = $a.value(row).as_ref();
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }};
    }
    match column {
        Column::I16(a) => fixed!(a, i16::to_be_bytes),
        Column::I32(a) => fixed!(a, i32::to_be_bytes),
        Column::I64(a) => fixed!(a, i64::to_be_bytes),
        Column::Decimal(a) => fixed!(a, i128::to_be_bytes),
        Column::F32(a) => fixed!(a, |v: f32| if v.is_nan() { f32::NAN } else { v }
            .to_bits()
            .to_be_bytes()),
        Column::F64(a) => fixed!(a, |v: f64| if v.is_nan() { f64::NAN } else { v }
            .to_bits()
            .to_be_bytes()),
        Column::Bool(a) => fixed!(a, |v: bool| [v as u8]),
        Column::Text(a) => var!(a),
        Column::Binary(a) => var!(a),
        Column::Date(a) => fixed!(a, i32::to_be_bytes),
        Column::Time(a) => fixed!(a, i64::to_be_bytes),
        Column::Timestamp(a) => fixed!(a, i64::to_be_bytes),
        Column::Uuid(a) => {
            if a.is_null(row) {
                out.push(0);
            } else {
                out.push(1);
                out.extend_from_slice(a.value(row));
            }
        }
    }
}

/// Decodes encoded keys back into Arrow columns typed by `fields`, for deleting removed keys.
pub fn decode_keys<'k>(
    fields: &[Field],
    keys: impl ExactSizeIterator<Item = &'k [u8]>,
) -> Result<Vec<ArrayRef>, EngineError> {
    let n = keys.len();
    let mut builders = fields
        .iter()
        .map(|f| KeyBuilder::new(f, n))
        .collect::<Result<Vec<_>, _>>()?;
    for key in keys {
        let mut rest = key;
        for builder in &mut builders {
            rest = builder.push(rest)?;
        }
        if !rest.is_empty() {
            return Err(EngineError::Internal(
                "snapshot key has trailing bytes: key schema does not match".into(),
            ));
        }
    }
    Ok(builders.into_iter().map(KeyBuilder::finish).collect())
}

enum KeyBuilder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    Decimal(Decimal128Builder, u8, i8),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Uuid(FixedSizeBinaryBuilder),
}

fn utf8(v: &[u8]) -> Result<&str, EngineError> {
    std::str::from_utf8(v)
        .map_err(|_| EngineError::Internal("snapshot key text is not UTF-8".into()))
}

fn truncated() -> EngineError {
    EngineError::Internal("snapshot key is truncated: key schema does not match".into())
}

fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), EngineError> {
    if bytes.len() < n {
        return Err(truncated());
    }
    Ok(bytes.split_at(n))
}

impl KeyBuilder {
    fn new(field: &Field, n: usize) -> Result<Self, EngineError> {
        let ty = CanonicalType::require(field).map_err(EngineError::Source)?;
        Ok(match ty {
            CanonicalType::Int16 => Self::I16(Int16Builder::with_capacity(n)),
            CanonicalType::Int32 => Self::I32(Int32Builder::with_capacity(n)),
            CanonicalType::Int64 => Self::I64(Int64Builder::with_capacity(n)),
            CanonicalType::Decimal { precision, scale } => {
                Self::Decimal(Decimal128Builder::with_capacity(n), precision, scale)
            }
            CanonicalType::Float32 => Self::F32(Float32Builder::with_capacity(n)),
            CanonicalType::Float64 => Self::F64(Float64Builder::with_capacity(n)),
            CanonicalType::Boolean => Self::Bool(BooleanBuilder::with_capacity(n)),
            CanonicalType::Text | CanonicalType::Json => {
                Self::Text(StringBuilder::with_capacity(n, n * 8))
            }
            CanonicalType::Binary => Self::Binary(BinaryBuilder::with_capacity(n, n * 8)),
            CanonicalType::Date => Self::Date(Date32Builder::with_capacity(n)),
            CanonicalType::Time => Self::Time(Time64MicrosecondBuilder::with_capacity(n)),
            CanonicalType::Timestamp | CanonicalType::TimestampTz => {
                let tz = match field.data_type() {
                    arrow::datatypes::DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(n), tz)
            }
            CanonicalType::Uuid => Self::Uuid(FixedSizeBinaryBuilder::with_capacity(n, 16)),
        })
    }

    fn push<'b>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], EngineError> {
        let (tag, rest) = split(bytes, 1)?;
        let null = tag[0] == 0;
        macro_rules! fixed {
            ($b:expr, $t:ty, $n:expr) => {{
                if null {
                    $b.append_null();
                    Ok(rest)
                } else {
                    let (v, rest) = split(rest, $n)?;
                    $b.append_value(<$t>::from_be_bytes(v.try_into().expect("length checked")));
                    Ok(rest)
                }
            }};
        }
        macro_rules! var {
            ($b:expr, $conv:expr) => {{
                if null {
                    $b.append_null();
                    Ok(rest)
                } else {
                    let (len, rest) = split(rest, 4)?;
                    let len = u32::from_le_bytes(len.try_into().expect("length checked")) as usize;
                    let (v, rest) = split(rest, len)?;
                    $b.append_value($conv(v)?);
                    Ok(rest)
                }
            }};
        }
        match self {
            Self::I16(b) => fixed!(b, i16, 2),
            Self::I32(b) => fixed!(b, i32, 4),
            Self::I64(b) => fixed!(b, i64, 8),
            Self::Decimal(b, _, _) => fixed!(b, i128, 16),
            Self::F32(b) => {
                if null {
                    b.append_null();
                    Ok(rest)
                } else {
                    let (v, rest) = split(rest, 4)?;
                    b.append_value(f32::from_bits(u32::from_be_bytes(v.try_into().expect("4"))));
                    Ok(rest)
                }
            }
            Self::F64(b) => {
                if null {
                    b.append_null();
                    Ok(rest)
                } else {
                    let (v, rest) = split(rest, 8)?;
                    b.append_value(f64::from_bits(u64::from_be_bytes(v.try_into().expect("8"))));
                    Ok(rest)
                }
            }
            Self::Bool(b) => {
                if null {
                    b.append_null();
                    Ok(rest)
                } else {
                    let (v, rest) = split(rest, 1)?;
                    b.append_value(v[0] != 0);
                    Ok(rest)
                }
            }
            Self::Text(b) => var!(b, utf8),
            Self::Binary(b) => var!(b, Ok::<&[u8], EngineError>),
            Self::Date(b) => fixed!(b, i32, 4),
            Self::Time(b) => fixed!(b, i64, 8),
            Self::Timestamp(b, _) => fixed!(b, i64, 8),
            Self::Uuid(b) => {
                if null {
                    b.append_null();
                    Ok(rest)
                } else {
                    let (v, rest) = split(rest, 16)?;
                    b.append_value(v)
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    Ok(rest)
                }
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::I16(mut b) => Arc::new(b.finish()),
            Self::I32(mut b) => Arc::new(b.finish()),
            Self::I64(mut b) => Arc::new(b.finish()),
            Self::Decimal(mut b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(p, s)
                    .expect("precision and scale come from a valid field"),
            ),
            Self::F32(mut b) => Arc::new(b.finish()),
            Self::F64(mut b) => Arc::new(b.finish()),
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Text(mut b) => Arc::new(b.finish()),
            Self::Binary(mut b) => Arc::new(b.finish()),
            Self::Date(mut b) => Arc::new(b.finish()),
            Self::Time(mut b) => Arc::new(b.finish()),
            Self::Timestamp(mut b, tz) => Arc::new(b.finish().with_timezone_opt(tz)),
            Self::Uuid(mut b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;
    use backflow_connector_core::types::uuid_field;

    #[test]
    fn keys_round_trip_through_the_encoding() {
        let fields = vec![
            Field::new("id", DataType::Int64, false),
            Field::new("region", DataType::Utf8, true),
            uuid_field("u"),
        ];
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, 0, i64::MAX]));
        let regions: ArrayRef = Arc::new(StringArray::from(vec![Some("é"), None, Some("")]));
        let mut uuids = FixedSizeBinaryBuilder::new(16);
        for i in 0..3u8 {
            uuids.append_value([i; 16]).unwrap();
        }
        let uuids: ArrayRef = Arc::new(uuids.finish());
        let field_refs: Vec<&Field> = fields.iter().collect();
        let encoder = RowEncoder::new(&field_refs, &[&ids, &regions, &uuids]).unwrap();
        let encoded: Vec<Vec<u8>> = (0..3)
            .map(|row| {
                let mut out = Vec::new();
                encoder.encode(row, &mut out);
                out
            })
            .collect();
        assert_ne!(encoded[0], encoded[1]);
        let decoded = decode_keys(&fields, encoded.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(&decoded[0], &ids);
        assert_eq!(&decoded[1], &regions);
        assert_eq!(&decoded[2], &uuids);
    }

    #[test]
    fn null_and_empty_text_encode_differently() {
        let field = Field::new("s", DataType::Utf8, true);
        let a: ArrayRef = Arc::new(StringArray::from(vec![None, Some("")]));
        let enc = RowEncoder::new(&[&field], &[&a]).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        enc.encode(0, &mut x);
        enc.encode(1, &mut y);
        assert_ne!(x, y);
    }
}
