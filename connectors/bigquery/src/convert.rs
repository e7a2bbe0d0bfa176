//! The Storage Read path's batches (BigQuery's own Arrow types) to canonical Arrow batches.
//!
//! BigQuery sends `NUMERIC` as `Decimal128(38, 9)`, `BIGNUMERIC` as `Decimal256(76, 38)`,
//! `DATETIME` as a zoneless and `TIMESTAMP` as a UTC `Timestamp(µs)`, `ARRAY` as `List` and
//! `STRUCT` as `Struct`. Columns are matched by name; the REST schema decides each one's
//! canonical type (see [`crate::schema`]).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int64Type,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use backflow_connector_core::types::UTC;
use backflow_connector_core::ConnectorError;
use serde_json::Value;

use crate::schema::{Column, FieldSchema, ResultSchema, Scalar};
use crate::values;

/// Converts one decoded Storage batch to `schema`'s canonical batch.
pub(crate) fn storage_to_canonical(
    schema: &ResultSchema,
    batch: &RecordBatch,
) -> Result<RecordBatch, ConnectorError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.columns.len());
    for ((field, column), target) in schema
        .fields
        .iter()
        .zip(&schema.columns)
        .zip(schema.arrow.fields())
    {
        let name = field.name.as_str();
        let array = batch.column_by_name(name).ok_or_else(|| {
            ConnectorError::internal(format!("the BigQuery Storage read has no column `{name}`"))
                .with_column(name)
        })?;
        let converted = match column {
            Column::Nested => nested_to_json(field, array)?,
            Column::Flat(Scalar::BigNumeric) => decimal_to_text(name, array)?,
            Column::Flat(Scalar::Datetime) => with_zone(name, array, None)?,
            Column::Flat(Scalar::Timestamp) => with_zone(name, array, Some(UTC))?,
            Column::Flat(_) => cast(name, array, target.data_type())?,
        };
        columns.push(converted);
    }
    Ok(RecordBatch::try_new(schema.arrow.clone(), columns)?)
}

fn cast(name: &str, array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ConnectorError> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, to, &options).map_err(|e| {
        ConnectorError::data(
            name,
            format!("cannot convert {} to {to}: {e}", array.data_type()),
        )
    })
}

/// The same microsecond values with the zone BigQuery's type implies: the values are wall
/// clock for `DATETIME` and instants for `TIMESTAMP`, whatever zone the server labelled them.
fn with_zone(name: &str, array: &ArrayRef, zone: Option<&str>) -> Result<ArrayRef, ConnectorError> {
    let micros = match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => array.clone(),
        DataType::Timestamp(_, tz) => cast(
            name,
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        )?,
        other => {
            return Err(ConnectorError::data(
                name,
                format!("expected a timestamp from BigQuery Storage, got {other}"),
            ))
        }
    };
    let values: TimestampMicrosecondArray = micros
        .as_primitive::<TimestampMicrosecondType>()
        .clone()
        .with_timezone_opt(zone.map(Arc::<str>::from));
    Ok(Arc::new(values))
}

/// `BIGNUMERIC` (76 digits) as exact decimal text: the canonical set has no wider decimal
/// than 38 digits.
fn decimal_to_text(name: &str, array: &ArrayRef) -> Result<ArrayRef, ConnectorError> {
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 8);
    match array.data_type() {
        DataType::Decimal256(_, scale) => {
            let scale = u32::try_from(*scale).unwrap_or(0);
            let a = array.as_primitive::<Decimal256Type>();
            for i in 0..a.len() {
                if a.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(values::scaled_text(&a.value(i).to_string(), scale));
                }
            }
        }
        DataType::Decimal128(_, scale) => {
            let scale = u32::try_from(*scale).unwrap_or(0);
            let a = array.as_primitive::<Decimal128Type>();
            for i in 0..a.len() {
                if a.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(values::scaled_text(&a.value(i).to_string(), scale));
                }
            }
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            for v in a.iter() {
                b.append_option(v.map(values::normalize_decimal));
            }
        }
        other => {
            return Err(ConnectorError::data(
                name,
                format!("expected a decimal from BigQuery Storage, got {other}"),
            ))
        }
    }
    Ok(Arc::new(b.finish()))
}

/// An `ARRAY` or `STRUCT` column as one JSON text per row.
fn nested_to_json(field: &FieldSchema, array: &ArrayRef) -> Result<ArrayRef, ConnectorError> {
    let name = field.name.as_str();
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 16);
    for i in 0..array.len() {
        if array.is_null(i) {
            b.append_null();
        } else {
            b.append_value(nested_json(field, array, i, name)?.to_string());
        }
    }
    Ok(Arc::new(b.finish()))
}

/// The value at `i` of a (possibly repeated) field as JSON.
fn nested_json(
    field: &FieldSchema,
    array: &dyn Array,
    i: usize,
    column: &str,
) -> Result<Value, ConnectorError> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    if field.repeated() {
        let items = match array.data_type() {
            DataType::List(_) => array.as_list::<i32>().value(i),
            DataType::LargeList(_) => array.as_list::<i64>().value(i),
            other => {
                return Err(ConnectorError::data(
                    column,
                    format!("expected a list for an ARRAY from BigQuery Storage, got {other}"),
                ))
            }
        };
        return (0..items.len())
            .map(|j| element_json(field, items.as_ref(), j, column))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    element_json(field, array, i, column)
}

/// The non-repeated value at `i` as JSON, rendered as the REST path renders it.
fn element_json(
    field: &FieldSchema,
    array: &dyn Array,
    i: usize,
    column: &str,
) -> Result<Value, ConnectorError> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let unexpected = || {
        ConnectorError::data(
            column,
            format!(
                "BigQuery Storage sent {} for the {} field `{}`",
                array.data_type(),
                field.ty,
                field.name
            ),
        )
    };
    Ok(match (field.scalar(column)?, array.data_type()) {
        (Scalar::Struct, DataType::Struct(_)) => {
            let s = array.as_struct();
            let mut object = serde_json::Map::new();
            for sub in &field.fields {
                let child = s.column_by_name(&sub.name).ok_or_else(unexpected)?;
                object.insert(
                    sub.name.clone(),
                    nested_json(sub, child.as_ref(), i, column)?,
                );
            }
            Value::Object(object)
        }
        (Scalar::Int64, DataType::Int64) => Value::from(array.as_primitive::<Int64Type>().value(i)),
        (Scalar::Float64, DataType::Float64) => {
            values::float_json(array.as_primitive::<Float64Type>().value(i))
        }
        (Scalar::Bool, DataType::Boolean) => Value::Bool(array.as_boolean().value(i)),
        (Scalar::Numeric | Scalar::BigNumeric, DataType::Decimal128(_, s)) => {
            let v = array.as_primitive::<Decimal128Type>().value(i);
            Value::String(values::scaled_text(&v.to_string(), *s as u32))
        }
        (Scalar::Numeric | Scalar::BigNumeric, DataType::Decimal256(_, s)) => {
            let v = array.as_primitive::<Decimal256Type>().value(i);
            Value::String(values::scaled_text(&v.to_string(), *s as u32))
        }
        (Scalar::Json, DataType::Utf8) => {
            let text = array.as_string::<i32>().value(i);
            serde_json::from_str(text)
                .map_err(|_| ConnectorError::data(column, format!("`{text}` is not valid JSON")))?
        }
        (Scalar::Numeric | Scalar::BigNumeric, DataType::Utf8) => {
            Value::String(values::normalize_decimal(array.as_string::<i32>().value(i)))
        }
        (_, DataType::Utf8) => Value::String(array.as_string::<i32>().value(i).to_string()),
        (Scalar::Bytes, DataType::Binary) => values::bytes_json(array.as_binary::<i32>().value(i)),
        (Scalar::Date, DataType::Date32) => Value::String(values::date_text(
            array.as_primitive::<Date32Type>().value(i),
        )),
        (Scalar::Time, DataType::Time64(TimeUnit::Microsecond)) => Value::String(
            values::time_text(array.as_primitive::<Time64MicrosecondType>().value(i)),
        ),
        (Scalar::Datetime, DataType::Timestamp(TimeUnit::Microsecond, _)) => Value::String(
            values::datetime_text(array.as_primitive::<TimestampMicrosecondType>().value(i)),
        ),
        (Scalar::Timestamp, DataType::Timestamp(TimeUnit::Microsecond, _)) => Value::String(
            values::timestamp_text(array.as_primitive::<TimestampMicrosecondType>().value(i)),
        ),
        _ => return Err(unexpected()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableSchema;
    use arrow::array::{Decimal256Array, Int64Array, Int64Builder, ListBuilder, StructArray};
    use arrow::datatypes::{i256, Field, Schema};
    use serde_json::json;

    #[test]
    fn converts_bigquery_arrow_to_canonical() {
        let schema: TableSchema = serde_json::from_value(json!({"fields": [
            {"name": "big", "type": "BIGNUMERIC"},
            {"name": "dt", "type": "DATETIME"},
            {"name": "ids", "type": "INTEGER", "mode": "REPEATED"},
            {"name": "s", "type": "RECORD", "fields": [{"name": "n", "type": "INTEGER"}]},
        ]}))
        .unwrap();
        let schema = ResultSchema::new(schema).unwrap();
        let mut ids = ListBuilder::new(Int64Builder::new());
        ids.values().append_value(1);
        ids.values().append_value(2);
        ids.append(true);
        ids.append(true);
        let s = StructArray::from(vec![(
            Arc::new(Field::new("n", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![Some(7), None])) as ArrayRef,
        )]);
        let big = Decimal256Array::from(vec![
            Some(i256::from_i128(-15) * i256::from_i128(10i128.pow(37))),
            None,
        ])
        .with_precision_and_scale(76, 38)
        .unwrap();
        let dt = TimestampMicrosecondArray::from(vec![Some(1_500_000), None]).with_timezone("UTC");
        let ids = ids.finish();
        let input = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("big", big.data_type().clone(), true),
                Field::new("dt", dt.data_type().clone(), true),
                Field::new("ids", ids.data_type().clone(), true),
                Field::new("s", s.data_type().clone(), true),
            ])),
            vec![Arc::new(big), Arc::new(dt), Arc::new(ids), Arc::new(s)],
        )
        .unwrap();
        let out = storage_to_canonical(&schema, &input).unwrap();
        assert_eq!(out.schema(), schema.arrow);
        assert_eq!(out.column(0).as_string::<i32>().value(0), "-1.5");
        assert_eq!(
            out.column(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(out.column(2).as_string::<i32>().value(0), "[1,2]");
        assert_eq!(out.column(2).as_string::<i32>().value(1), "[]");
        assert_eq!(out.column(3).as_string::<i32>().value(0), r#"{"n":7}"#);
        assert_eq!(out.column(3).as_string::<i32>().value(1), r#"{"n":null}"#);
    }
}
