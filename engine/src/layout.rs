//! The column layout of a run: checks a sync definition against the query's schema and
//! derives the destination schema and where the primary key sits in it.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use backflow_connector_core::types::{canonical_schema, canonicalize_batch};

use crate::error::EngineError;
use crate::spec::SyncSpec;

/// The column layout of a run, fixed once the source declared its schema.
#[derive(Debug, Clone)]
pub struct ColumnLayout {
    /// Canonical schema of the query result.
    pub source_schema: SchemaRef,
    /// The same columns under destination names; every field nullable so a NULL is a value,
    /// not a schema violation, and the destination decides.
    pub destination_schema: SchemaRef,
    /// Positions of the primary-key columns.
    pub key_indices: Vec<usize>,
    /// Primary-key fields under destination names.
    pub key_fields: Vec<Field>,
}

fn list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ColumnLayout {
    /// Validates `spec` against the source's declared schema.
    pub fn new(spec: &SyncSpec, declared: &Schema) -> Result<Self, EngineError> {
        let source_schema = canonical_schema(declared).map_err(EngineError::Source)?;
        if spec.object.trim().is_empty() {
            return Err(EngineError::definition(
                "destination.table",
                "the destination object is empty",
            ));
        }
        for (i, m) in spec.mappings.iter().enumerate() {
            if source_schema.index_of(&m.from).is_err() {
                return Err(EngineError::definition(
                    format!("mappings[{i}].from"),
                    format!(
                        "column `{}` is not in the query result (columns: {})",
                        m.from,
                        list(&source_schema)
                    ),
                ));
            }
            if m.to.trim().is_empty() {
                return Err(EngineError::definition(
                    format!("mappings[{i}].to"),
                    "the destination column name is empty",
                ));
            }
        }
        let mut names = HashSet::new();
        let fields: Vec<Field> = source_schema
            .fields()
            .iter()
            .map(|f| {
                let name = spec.destination_column(f.name());
                f.as_ref().clone().with_name(name).with_nullable(true)
            })
            .collect();
        for f in &fields {
            if !names.insert(f.name().clone()) {
                return Err(EngineError::definition(
                    "mappings",
                    format!("two columns map to destination column `{}`", f.name()),
                ));
            }
        }
        if spec.primary_key.is_empty() {
            return Err(EngineError::definition(
                "primary_key",
                "at least one primary-key column is required",
            ));
        }
        let mut key_indices = Vec::with_capacity(spec.primary_key.len());
        for (i, column) in spec.primary_key.iter().enumerate() {
            let index = source_schema.index_of(column).map_err(|_| {
                EngineError::definition(
                    format!("primary_key[{i}]"),
                    format!(
                        "column `{column}` is not in the query result (columns: {})",
                        list(&source_schema)
                    ),
                )
            })?;
            if key_indices.contains(&index) {
                return Err(EngineError::definition(
                    format!("primary_key[{i}]"),
                    format!("column `{column}` is listed twice"),
                ));
            }
            key_indices.push(index);
        }
        let key_fields = key_indices.iter().map(|&i| fields[i].clone()).collect();
        Ok(Self {
            source_schema,
            destination_schema: Arc::new(Schema::new(fields)),
            key_indices,
            key_fields,
        })
    }

    /// Casts a source batch to canonical types and renames it to destination columns.
    pub fn to_destination(&self, batch: &RecordBatch) -> Result<RecordBatch, EngineError> {
        let canonical = canonicalize_batch(batch).map_err(EngineError::Source)?;
        let columns: Vec<ArrayRef> = canonical.columns().to_vec();
        for (declared, actual) in self
            .source_schema
            .fields()
            .iter()
            .zip(canonical.schema().fields())
        {
            if declared.data_type() != actual.data_type() {
                return Err(EngineError::Source(
                    backflow_connector_core::ConnectorError::schema(
                        declared.name(),
                        format!(
                            "the source declared {} but sent {}",
                            declared.data_type(),
                            actual.data_type()
                        ),
                    ),
                ));
            }
        }
        RecordBatch::try_new(self.destination_schema.clone(), columns).map_err(|e| {
            EngineError::Internal(format!("batch does not fit the column layout: {e}"))
        })
    }
}
