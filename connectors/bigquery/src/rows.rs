//! The fallback read path's rows: `getQueryResults` pages (`{"f": [{"v": …}]}` with every
//! scalar as text) to canonical Arrow batches.
//!
//! Rows deserialize straight into [`Row`]s of compact [`Cell`]s rather than through
//! `serde_json::Value`, whose maps cost tens of times the page's size in memory.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType;
use backflow_connector_core::types::UTC;
use backflow_connector_core::ConnectorError;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::schema::{Column, FieldSchema, ResultSchema, Scalar};
use crate::values;

/// One row of a page: `{"f": [{"v": …}, …]}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct Row {
    #[serde(default)]
    f: Vec<V>,
}

/// One `{"v": …}` wrapper, in a row or an array.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
struct V {
    #[serde(default)]
    v: Cell,
}

/// A value as the REST API encodes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Cell {
    /// `null`.
    #[default]
    Null,
    /// A scalar: the API sends text; numbers and booleans are kept as they print.
    Text(String),
    /// An `ARRAY`: `[{"v": …}, …]`.
    Array(Vec<Cell>),
    /// A `STRUCT`: `{"f": [{"v": …}, …]}`.
    Record(Vec<Cell>),
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;

        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a BigQuery cell value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
                Ok(Cell::Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<V>()? {
                    items.push(item.v);
                }
                Ok(Cell::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "f" {
                        fields = map
                            .next_value::<Vec<V>>()?
                            .into_iter()
                            .map(|v| v.v)
                            .collect();
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(Cell::Record(fields))
            }
        }

        deserializer.deserialize_any(CellVisitor)
    }
}

/// Builds one batch of `schema` from REST `rows`.
pub(crate) fn rows_to_batch(
    schema: &ResultSchema,
    rows: &[Row],
) -> Result<RecordBatch, ConnectorError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.columns.len());
    for (i, (field, column)) in schema.fields.iter().zip(&schema.columns).enumerate() {
        let cells = rows
            .iter()
            .map(|row| row.f.get(i).map_or(&Cell::Null, |v| &v.v));
        columns.push(build_column(field, *column, cells, rows.len())?);
    }
    Ok(RecordBatch::try_new(schema.arrow.clone(), columns)?)
}

/// One canonical column from the `v` of each row's cell.
fn build_column<'a>(
    field: &FieldSchema,
    column: Column,
    cells: impl Iterator<Item = &'a Cell>,
    len: usize,
) -> Result<ArrayRef, ConnectorError> {
    let name = field.name.as_str();
    let bad = |text: &str, what: &str| {
        ConnectorError::data(name, format!("`{text}` is not a valid {what}"))
    };
    let scalar = match column {
        Column::Nested => {
            let mut b = StringBuilder::with_capacity(len, len * 16);
            for cell in cells {
                match cell {
                    Cell::Null => b.append_null(),
                    c => b.append_value(nested_json(field, c, name)?.to_string()),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        Column::Flat(s) => s,
    };
    Ok(match scalar {
        Scalar::Int64 => {
            let mut b = Int64Builder::with_capacity(len);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| t.parse::<i64>().map_err(|_| bad(t, "INT64")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Float64 => {
            let mut b = Float64Builder::with_capacity(len);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| t.parse::<f64>().map_err(|_| bad(t, "FLOAT64")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Numeric => {
            let mut b =
                Decimal128Builder::with_capacity(len).with_data_type(DataType::Decimal128(38, 9));
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| values::parse_decimal(t, 9).ok_or_else(|| bad(t, "NUMERIC")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Bool => {
            let mut b = BooleanBuilder::with_capacity(len);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| match t {
                            "true" | "TRUE" => Ok(true),
                            "false" | "FALSE" => Ok(false),
                            _ => Err(bad(t, "BOOL")),
                        })
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::BigNumeric => {
            let mut b = StringBuilder::with_capacity(len, len * 8);
            for cell in cells {
                b.append_option(text(cell).map(values::normalize_decimal));
            }
            Arc::new(b.finish())
        }
        Scalar::String | Scalar::Geography | Scalar::Json | Scalar::Struct => {
            let mut b = StringBuilder::with_capacity(len, len * 8);
            for cell in cells {
                b.append_option(text(cell));
            }
            Arc::new(b.finish())
        }
        Scalar::Bytes => {
            let mut b = BinaryBuilder::with_capacity(len, len * 8);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| values::parse_bytes(t).ok_or_else(|| bad(t, "base64 BYTES")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Date => {
            let mut b = Date32Builder::with_capacity(len);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| values::parse_date(t).ok_or_else(|| bad(t, "DATE")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Time => {
            let mut b = Time64MicrosecondBuilder::with_capacity(len);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| values::parse_time(t).ok_or_else(|| bad(t, "TIME")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Datetime => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(len);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| values::parse_datetime(t).ok_or_else(|| bad(t, "DATETIME")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        Scalar::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(len).with_timezone(UTC);
            for cell in cells {
                b.append_option(
                    text(cell)
                        .map(|t| values::parse_timestamp(t).ok_or_else(|| bad(t, "TIMESTAMP")))
                        .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
    })
}

/// A cell's scalar text; `None` for NULL (and for a nested value where a scalar belongs,
/// which the schema rules out).
fn text(cell: &Cell) -> Option<&str> {
    match cell {
        Cell::Text(s) => Some(s),
        Cell::Null | Cell::Array(_) | Cell::Record(_) => None,
    }
}

/// The JSON value of an `ARRAY` or `STRUCT` cell (`[{"v": …}]`, `{"f": [{"v": …}]}`), in the
/// same rendering the Storage path uses (see the crate docs).
fn nested_json(field: &FieldSchema, v: &Cell, column: &str) -> Result<Value, ConnectorError> {
    if field.repeated() {
        let items = match v {
            Cell::Null => return Ok(Value::Null),
            Cell::Array(items) => items,
            other => {
                return Err(ConnectorError::data(
                    column,
                    format!(
                        "expected an ARRAY value for `{}`, got {other:?}",
                        field.name
                    ),
                ))
            }
        };
        return items
            .iter()
            .map(|item| element_json(field, item, column))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    element_json(field, v, column)
}

/// One non-repeated value as JSON.
fn element_json(field: &FieldSchema, v: &Cell, column: &str) -> Result<Value, ConnectorError> {
    let bad = |what: &str| ConnectorError::data(column, format!("`{v:?}` is not a valid {what}"));
    let scalar = field.scalar(column)?;
    let t = match (scalar, v) {
        (_, Cell::Null) => return Ok(Value::Null),
        (Scalar::Struct, Cell::Record(cells)) => {
            let mut object = serde_json::Map::new();
            for (i, sub) in field.fields.iter().enumerate() {
                let cell = cells.get(i).unwrap_or(&Cell::Null);
                object.insert(sub.name.clone(), nested_json(sub, cell, column)?);
            }
            return Ok(Value::Object(object));
        }
        (Scalar::Struct, _) => return Err(bad("STRUCT")),
        (_, Cell::Text(t)) => t.as_str(),
        (_, _) => return Err(bad(&field.ty)),
    };
    Ok(match scalar {
        Scalar::Int64 => Value::from(t.parse::<i64>().map_err(|_| bad("INT64"))?),
        Scalar::Float64 => values::float_json(t.parse::<f64>().map_err(|_| bad("FLOAT64"))?),
        Scalar::Numeric | Scalar::BigNumeric => Value::String(values::normalize_decimal(t)),
        Scalar::Bool => Value::Bool(t == "true" || t == "TRUE"),
        Scalar::String | Scalar::Geography | Scalar::Bytes => Value::String(t.to_string()),
        Scalar::Json => serde_json::from_str(t).map_err(|_| bad("JSON"))?,
        Scalar::Date => Value::String(values::date_text(
            values::parse_date(t).ok_or_else(|| bad("DATE"))?,
        )),
        Scalar::Time => Value::String(values::time_text(
            values::parse_time(t).ok_or_else(|| bad("TIME"))?,
        )),
        Scalar::Datetime => Value::String(values::datetime_text(
            values::parse_datetime(t).ok_or_else(|| bad("DATETIME"))?,
        )),
        Scalar::Timestamp => Value::String(values::timestamp_text(
            values::parse_timestamp(t).ok_or_else(|| bad("TIMESTAMP"))?,
        )),
        Scalar::Struct => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableSchema;
    use arrow::array::{Array, AsArray, Decimal128Array};
    use serde_json::json;

    #[test]
    fn builds_a_batch_from_rest_rows() {
        let schema: TableSchema = serde_json::from_value(json!({"fields": [
            {"name": "id", "type": "INTEGER"},
            {"name": "amount", "type": "NUMERIC"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "at", "type": "TIMESTAMP"},
            {"name": "s", "type": "RECORD", "fields": [
                {"name": "x", "type": "FLOAT"}, {"name": "b", "type": "BYTES"}
            ]}
        ]}))
        .unwrap();
        let schema = ResultSchema::new(schema).unwrap();
        let rows: Vec<Row> = serde_json::from_value(json!([
            {"f": [{"v": "1"}, {"v": "-12.5"}, {"v": [{"v": "a"}, {"v": "b"}]},
                   {"v": "1500000"}, {"v": {"f": [{"v": "1.5"}, {"v": "AP8="}]}}]},
            {"f": [{"v": null}, {"v": null}, {"v": []}, {"v": null}, {"v": null}]},
        ]))
        .unwrap();
        let batch = rows_to_batch(&schema, &rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let amount = batch
            .column(1)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(amount.value(0), -12_500_000_000);
        assert!(amount.is_null(1));
        let tags = batch.column(2).as_string::<i32>();
        assert_eq!(tags.value(0), r#"["a","b"]"#);
        assert_eq!(tags.value(1), "[]");
        let s = batch.column(4).as_string::<i32>();
        // Key order follows serde_json's map (sorted, or insertion order when another crate
        // enables `preserve_order`), so compare values.
        let object: serde_json::Value = serde_json::from_str(s.value(0)).unwrap();
        assert_eq!(object, json!({"x": 1.5, "b": "AP8="}));
        assert!(s.is_null(1));
    }

    #[test]
    fn a_bad_value_names_the_column() {
        let schema: TableSchema =
            serde_json::from_value(json!({"fields": [{"name": "n", "type": "INT64"}]})).unwrap();
        let schema = ResultSchema::new(schema).unwrap();
        let rows: Vec<Row> = serde_json::from_value(json!([{"f": [{"v": "x"}]}])).unwrap();
        let e = rows_to_batch(&schema, &rows).unwrap_err();
        assert_eq!(e.column(), Some("n"));
    }
}
