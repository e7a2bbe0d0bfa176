//! BigQuery's result schema (the REST `TableSchema`) and its canonical Arrow form.
//!
//! The REST schema, not the Arrow schema of a read session, decides every column's type: it
//! is the same for both read paths, it exists for an empty result (which has no read streams),
//! and it tells `DATETIME` from `TIMESTAMP` where an emulator's Arrow schema does not.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use backflow_connector_core::types::{json_field, UTC};
use backflow_connector_core::ConnectorError;
use serde::Deserialize;

/// A `TableSchema` as the REST API returns it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct TableSchema {
    /// The top-level columns.
    #[serde(default)]
    pub(crate) fields: Vec<FieldSchema>,
}

/// One `TableFieldSchema`: a column, or a field of a `STRUCT`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct FieldSchema {
    /// The column name.
    pub(crate) name: String,
    /// The type name; legacy names (`INTEGER`, `FLOAT`, `BOOLEAN`, `RECORD`) included.
    #[serde(rename = "type")]
    pub(crate) ty: String,
    /// `NULLABLE`, `REQUIRED` or `REPEATED` (an `ARRAY`).
    #[serde(default)]
    pub(crate) mode: Option<String>,
    /// The fields of a `STRUCT`.
    #[serde(default)]
    pub(crate) fields: Vec<FieldSchema>,
}

/// A BigQuery value type, without the `REPEATED` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Int64,
    Float64,
    Numeric,
    BigNumeric,
    Bool,
    String,
    Bytes,
    Date,
    Time,
    Datetime,
    Timestamp,
    Json,
    Geography,
    Struct,
}

impl FieldSchema {
    /// Whether the field is an `ARRAY`.
    pub(crate) fn repeated(&self) -> bool {
        self.mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("REPEATED"))
    }

    /// The field's value type; `column` names the top-level column for the error.
    pub(crate) fn scalar(&self, column: &str) -> Result<Scalar, ConnectorError> {
        Ok(match self.ty.to_ascii_uppercase().as_str() {
            "INT64" | "INTEGER" => Scalar::Int64,
            "FLOAT64" | "FLOAT" => Scalar::Float64,
            "NUMERIC" | "DECIMAL" => Scalar::Numeric,
            "BIGNUMERIC" | "BIGDECIMAL" => Scalar::BigNumeric,
            "BOOL" | "BOOLEAN" => Scalar::Bool,
            "STRING" => Scalar::String,
            "BYTES" => Scalar::Bytes,
            "DATE" => Scalar::Date,
            "TIME" => Scalar::Time,
            "DATETIME" => Scalar::Datetime,
            "TIMESTAMP" => Scalar::Timestamp,
            "JSON" => Scalar::Json,
            "GEOGRAPHY" => Scalar::Geography,
            "RECORD" | "STRUCT" => Scalar::Struct,
            other => {
                return Err(ConnectorError::schema(
                    column,
                    format!(
                        "BigQuery type {other} has no canonical Backflow mapping; cast it in the \
                         query (for example CAST({column} AS STRING))"
                    ),
                ))
            }
        })
    }

    /// Checks that the field and everything nested in it has a mapping.
    fn check(&self, column: &str) -> Result<(), ConnectorError> {
        if self.scalar(column)? == Scalar::Struct {
            for f in &self.fields {
                f.check(column)?;
            }
        }
        Ok(())
    }
}

/// How one result column is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// A scalar column with its own canonical Arrow type.
    Flat(Scalar),
    /// An `ARRAY` or a `STRUCT`, rendered as JSON text.
    Nested,
}

/// A result schema: BigQuery's fields, how each becomes Arrow, and the Arrow schema.
#[derive(Debug, Clone)]
pub(crate) struct ResultSchema {
    pub(crate) fields: Vec<FieldSchema>,
    pub(crate) columns: Vec<Column>,
    pub(crate) arrow: SchemaRef,
}

impl ResultSchema {
    /// Maps `schema` to canonical Arrow, or fails naming the first column without a mapping.
    pub(crate) fn new(schema: TableSchema) -> Result<Self, ConnectorError> {
        let mut columns = Vec::with_capacity(schema.fields.len());
        let mut arrow_fields = Vec::with_capacity(schema.fields.len());
        for field in &schema.fields {
            field.check(&field.name)?;
            let column = if field.repeated() {
                Column::Nested
            } else {
                match field.scalar(&field.name)? {
                    Scalar::Struct => Column::Nested,
                    s => Column::Flat(s),
                }
            };
            arrow_fields.push(arrow_field(&field.name, column));
            columns.push(column);
        }
        Ok(Self {
            fields: schema.fields,
            columns,
            arrow: Arc::new(Schema::new(arrow_fields)),
        })
    }
}

/// The canonical Arrow field of a column (always nullable: BigQuery's `REQUIRED` is not
/// enforced on query results the same way on every path).
fn arrow_field(name: &str, column: Column) -> Field {
    let scalar = match column {
        Column::Nested => return json_field(name),
        Column::Flat(s) => s,
    };
    let dt = match scalar {
        Scalar::Json | Scalar::Struct => return json_field(name),
        Scalar::Int64 => DataType::Int64,
        Scalar::Float64 => DataType::Float64,
        Scalar::Numeric => DataType::Decimal128(38, 9),
        Scalar::Bool => DataType::Boolean,
        Scalar::BigNumeric | Scalar::String | Scalar::Geography => DataType::Utf8,
        Scalar::Bytes => DataType::Binary,
        Scalar::Date => DataType::Date32,
        Scalar::Time => DataType::Time64(TimeUnit::Microsecond),
        Scalar::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
        Scalar::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
    };
    Field::new(name, dt, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::types::is_json;
    use backflow_connector_core::CanonicalType;

    fn field(name: &str, ty: &str, mode: Option<&str>) -> FieldSchema {
        FieldSchema {
            name: name.into(),
            ty: ty.into(),
            mode: mode.map(Into::into),
            fields: vec![],
        }
    }

    #[test]
    fn maps_every_type_to_a_canonical_one() {
        let mut record = field("r", "RECORD", None);
        record.fields = vec![field("a", "INTEGER", None)];
        let schema = ResultSchema::new(TableSchema {
            fields: vec![
                field("i", "INTEGER", None),
                field("n", "NUMERIC", None),
                field("b", "BIGNUMERIC", None),
                field("t", "TIMESTAMP", None),
                field("d", "DATETIME", None),
                field("j", "JSON", None),
                field("a", "STRING", Some("REPEATED")),
                record,
            ],
        })
        .unwrap();
        for f in schema.arrow.fields() {
            assert!(CanonicalType::of(f).is_some(), "{f:?}");
        }
        assert_eq!(
            schema.arrow.field(1).data_type(),
            &DataType::Decimal128(38, 9)
        );
        assert_eq!(schema.arrow.field(2).data_type(), &DataType::Utf8);
        assert!(is_json(schema.arrow.field(5)));
        assert!(is_json(schema.arrow.field(6)));
        assert!(is_json(schema.arrow.field(7)));
    }

    #[test]
    fn unmapped_types_name_the_column() {
        let mut record = field("r", "RECORD", None);
        record.fields = vec![field("span", "INTERVAL", None)];
        let e = ResultSchema::new(TableSchema {
            fields: vec![record],
        })
        .unwrap_err();
        assert_eq!(e.column(), Some("r"));
        assert!(e.message().contains("INTERVAL"), "{e}");
    }
}
