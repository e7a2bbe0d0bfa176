//! Rows of a batch turned into what the commands carry: the filter selecting a row's
//! document, the document an `insert` creates, and the statement an `update` runs.

use arrow::array::RecordBatch;
use backflow_connector_core::{RowFailure, WriteMode};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{RawBson, RawDocumentBuf};

use crate::encode;
use crate::plan::Plan;
use crate::reply::MAX_DOCUMENT_BYTES;

/// One row, encoded.
pub(crate) struct Row {
    /// Index of the row in the batch.
    pub(crate) index: usize,
    /// The query selecting the row's document (`{_id: key}` or the key fields).
    pub(crate) filter: RawDocumentBuf,
    /// The key as one value (the `_id`, or a document of the key fields), for matching
    /// lookups and as an `$in` element.
    pub(crate) key: RawBson,
    /// The mapped fields written with `$set`: the non-key columns, or every column when keys
    /// are ordinary fields.
    fields: RawDocumentBuf,
    /// The `_id` a new document gets: the key, or a fresh ObjectId when keys are fields.
    /// Upserts are matched back to rows by it: FerretDB 1.24 numbers `upserted[].index` by
    /// upsert, not by statement, so the index alone cannot be trusted.
    pub(crate) id: RawBson,
}

/// Encodes every row of `batch` (the key columns only, in key order, when `keys_only`); rows
/// that cannot be encoded land in `failed` with the reason.
pub(crate) fn encode_rows(
    plan: &Plan,
    batch: &RecordBatch,
    keys_only: bool,
    failed: &mut Vec<RowFailure>,
) -> Vec<Row> {
    let mut rows = Vec::with_capacity(batch.num_rows());
    'rows: for index in 0..batch.num_rows() {
        let mut key_values: Vec<(&str, RawBson)> = Vec::with_capacity(plan.key.len());
        for (position, &k) in plan.key.iter().enumerate() {
            let column = &plan.columns[k];
            let array = batch.column(if keys_only { position } else { k });
            match encode::value(array, &column.canonical, index, plan.decimals) {
                Ok(RawBson::Null) => {
                    failed.push(RowFailure {
                        row: index,
                        column: Some(column.name.clone()),
                        message: format!("primary key column `{}` is NULL", column.name),
                    });
                    continue 'rows;
                }
                Ok(v) => key_values.push((&column.name, v)),
                Err(message) => {
                    failed.push(RowFailure {
                        row: index,
                        column: Some(column.name.clone()),
                        message,
                    });
                    continue 'rows;
                }
            }
        }
        let mut key_doc = RawDocumentBuf::new();
        for (name, v) in &key_values {
            key_doc.append(*name, v.clone());
        }
        let (filter, key) = if plan.key_as_id {
            let key = if key_values.len() == 1 {
                key_values.pop().map(|(_, v)| v).unwrap_or(RawBson::Null)
            } else {
                RawBson::Document(key_doc)
            };
            let mut filter = RawDocumentBuf::new();
            filter.append("_id", key.clone());
            (filter, key)
        } else {
            (key_doc.clone(), RawBson::Document(key_doc))
        };
        let mut fields = RawDocumentBuf::new();
        if !keys_only {
            for (i, column) in plan.columns.iter().enumerate() {
                if column.key && plan.key_as_id {
                    continue;
                }
                match encode::value(batch.column(i), &column.canonical, index, plan.decimals) {
                    Ok(v) => fields.append(&column.name, v),
                    Err(message) => {
                        failed.push(RowFailure {
                            row: index,
                            column: Some(column.name.clone()),
                            message,
                        });
                        continue 'rows;
                    }
                }
            }
            let size = fields.as_bytes().len() + filter.as_bytes().len();
            if size > MAX_DOCUMENT_BYTES {
                failed.push(RowFailure {
                    row: index,
                    column: None,
                    message: format!(
                        "the document is {size} bytes, over MongoDB's 16 MiB document limit"
                    ),
                });
                continue;
            }
        }
        let id = if plan.key_as_id {
            key.clone()
        } else {
            RawBson::ObjectId(ObjectId::new())
        };
        rows.push(Row {
            index,
            filter,
            key,
            fields,
            id,
        });
    }
    rows
}

impl Row {
    /// The whole document an `insert` creates for the row: `_id` first, then the fields.
    pub(crate) fn document(&self) -> RawDocumentBuf {
        let mut doc = RawDocumentBuf::new();
        doc.append("_id", self.id.clone());
        for (name, value) in self.fields.iter().flatten() {
            doc.append_ref(name, value);
        }
        doc
    }

    /// The row's `update` statement in `mode`.
    ///
    /// Every statement is `multi: true`. At most one document matches a key (`_id`, or a
    /// unique index), so on MongoDB this changes nothing; FerretDB 1.x keeps a backend
    /// connection per matched `multi: false` statement until the command ends and deadlocks
    /// once a command has more matched statements than its pool has connections.
    pub(crate) fn statement(&self, mode: WriteMode, key_as_id: bool) -> RawDocumentBuf {
        let mut update = RawDocumentBuf::new();
        let mut on_insert = RawDocumentBuf::new();
        if !key_as_id {
            on_insert.append("_id", self.id.clone());
        }
        let empty = self.fields.as_bytes().len() <= 5;
        match mode {
            // `$set` of the mapped fields only: fields other writers own survive.
            WriteMode::Upsert | WriteMode::Update if !empty => {
                update.append("$set", self.fields.clone());
            }
            // `$setOnInsert` never touches an existing document.
            WriteMode::Insert if !empty => {
                for (name, value) in self.fields.iter().flatten() {
                    on_insert.append_ref(name, value);
                }
            }
            // Only key columns are synced: create the document, change nothing.
            _ => {
                for (name, value) in self.filter.iter().flatten() {
                    if name != "_id" || key_as_id {
                        on_insert.append_ref(name, value);
                    }
                }
            }
        }
        if on_insert.as_bytes().len() > 5 {
            update.append("$setOnInsert", on_insert);
        }
        let mut statement = RawDocumentBuf::new();
        statement.append("q", self.filter.clone());
        statement.append("u", update);
        statement.append("upsert", mode != WriteMode::Update);
        statement.append("multi", true);
        statement
    }
}

/// Comparable bytes of a key value.
pub(crate) fn key_bytes(key: &RawBson) -> Vec<u8> {
    let mut d = RawDocumentBuf::new();
    d.append("k", key.clone());
    d.into_bytes()
}
