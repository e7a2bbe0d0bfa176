//! The writer: rows to documents, existence checks for `insert` and `update`, and commits
//! split until refused documents stand alone.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use backflow_connector_core::support::{AttemptError, Bisection};
use backflow_connector_core::{
    CanonicalType, ConnectorError, DestinationWriter, RowFailure, WriteMode, WriteOutcome,
    WriteTarget,
};
use googleapis_tonic_google_firestore_v1::google::firestore::v1::{
    precondition::ConditionType, write::Operation, Document, DocumentMask, Precondition, Write,
};
use prost::Message;
use tonic::Code;

use crate::client::{Client, CommitError};
use crate::docid::{self, KeyColumns};
use crate::ramp::RampUp;
use crate::value::{self, MAX_DOCUMENT_BYTES};

/// Firestore's limit of writes per commit.
pub(crate) const MAX_WRITES: usize = 500;
/// Requests stay under Firestore's 10 MiB request limit, with room for the envelope.
const MAX_REQUEST_BYTES: usize = 9 << 20;
/// Documents asked for per `BatchGetDocuments` call.
const GET_CHUNK: usize = 500;

/// What a run writes: the collection, the fields and how the key becomes a document id.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The collection path relative to the database's documents.
    pub(crate) collection: String,
    mode: WriteMode,
    /// Every mapped column, which is a field of the document.
    fields: Vec<(String, CanonicalType)>,
    /// The Arrow type each column must arrive as.
    types: Vec<DataType>,
    /// Indices into `fields` of the key columns, in key order.
    key: Vec<usize>,
    /// The update mask: every mapped field, as Firestore field paths.
    mask: Vec<String>,
}

impl Plan {
    /// Checks the target without I/O: collection path, field names, key types.
    pub(crate) fn new(target: &WriteTarget) -> Result<Self, ConnectorError> {
        let collection = docid::collection_path(&target.object)?;
        let names: Vec<&str> = target
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        docid::check_destination_names(&target.object, &names)?;
        let mut fields = Vec::with_capacity(target.schema.fields().len());
        for field in target.schema.fields() {
            fields.push((field.name().clone(), CanonicalType::require(field)?));
        }
        let types = target
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if target.primary_key.is_empty() {
            return Err(ConnectorError::config(
                "primary_key",
                "Firestore needs a primary key to name documents",
            ));
        }
        let mut key = Vec::with_capacity(target.primary_key.len());
        for column in &target.primary_key {
            let index = fields
                .iter()
                .position(|(name, _)| name == column)
                .ok_or_else(|| {
                    ConnectorError::config(
                        "primary_key",
                        format!("primary key column `{column}` is not among the mapped columns"),
                    )
                    .with_column(column)
                })?;
            if !docid::key_type_supported(&fields[index].1) {
                return Err(ConnectorError::schema(
                    column,
                    format!(
                        "a primary key of type {:?} cannot name a Firestore document (use \
                         integers, text, decimals, dates, timestamps, UUIDs or booleans)",
                        fields[index].1
                    ),
                ));
            }
            key.push(index);
        }
        let mask = fields.iter().map(|(name, _)| field_path(name)).collect();
        Ok(Self {
            collection,
            mode: target.mode,
            fields,
            types,
            key,
            mask,
        })
    }
}

/// A field name as a Firestore field path: simple names as they are, others in backticks
/// with `` ` `` and `\` escaped.
pub(crate) fn field_path(name: &str) -> String {
    let simple = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if simple {
        name.to_string()
    } else {
        format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
    }
}

/// One document write tied to its row of the batch.
struct Pending {
    row: usize,
    name: String,
    write: Write,
    bytes: usize,
}

/// Writes one run's changes into one collection.
pub(crate) struct FirestoreWriter {
    client: Client,
    plan: Plan,
    /// `projects/…/documents/{collection}/`.
    prefix: String,
    ramp: Option<RampUp>,
    commits: u64,
    splits: u64,
}

impl FirestoreWriter {
    pub(crate) fn new(client: Client, plan: Plan) -> Self {
        let prefix = format!("{}/{}/", client.documents_root(), plan.collection);
        let ramp = (!client.is_emulator()).then(RampUp::new);
        Self {
            client,
            plan,
            prefix,
            ramp,
            commits: 0,
            splits: 0,
        }
    }

    /// The columns of `batch` for the plan's fields at `indices`, by name.
    fn bind<'b>(
        &'b self,
        batch: &'b RecordBatch,
        indices: &[usize],
    ) -> Result<Vec<(&'b str, &'b CanonicalType, &'b ArrayRef)>, ConnectorError> {
        indices
            .iter()
            .map(|&i| {
                let (name, ty) = &self.plan.fields[i];
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| ConnectorError::schema(name, "column missing from the batch"))?;
                let expected = &self.plan.types[i];
                if column.data_type() != expected {
                    return Err(ConnectorError::schema(
                        name,
                        format!(
                            "column arrives as {}, but the target schema says {expected}",
                            column.data_type()
                        ),
                    ));
                }
                Ok((name.as_str(), ty, column))
            })
            .collect()
    }

    async fn write_batch(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let all: Vec<usize> = (0..self.plan.fields.len()).collect();
        let columns = self.bind(batch, &all)?;
        let keys = KeyColumns::new(self.plan.key.iter().map(|&i| columns[i]).collect());
        let mut outcome = WriteOutcome::default();
        let mut pending = Vec::with_capacity(batch.num_rows());
        'rows: for row in 0..batch.num_rows() {
            let id = match keys.id(row) {
                Ok(id) => id,
                Err((column, message)) => {
                    outcome.failed.push(RowFailure {
                        row,
                        column,
                        message,
                    });
                    continue;
                }
            };
            let mut fields = HashMap::with_capacity(columns.len());
            for (name, ty, array) in &columns {
                match value::value(ty, array, row) {
                    Ok(v) => {
                        fields.insert(name.to_string(), v);
                    }
                    Err(message) => {
                        outcome.failed.push(RowFailure {
                            row,
                            column: Some(name.to_string()),
                            message,
                        });
                        continue 'rows;
                    }
                }
            }
            let size = value::document_size(&format!("{}/{id}", self.plan.collection), &fields);
            if size > MAX_DOCUMENT_BYTES {
                outcome.failed.push(RowFailure {
                    row,
                    column: None,
                    message: format!(
                        "the document is {size} bytes, over Firestore's limit of \
                         {MAX_DOCUMENT_BYTES} bytes (1 MiB)"
                    ),
                });
                continue;
            }
            let name = format!("{}{id}", self.prefix);
            let (mask, exists) = match self.plan.mode {
                WriteMode::Upsert => (Some(self.plan.mask.clone()), None),
                WriteMode::Insert => (None, Some(false)),
                WriteMode::Update => (Some(self.plan.mask.clone()), Some(true)),
            };
            let write = Write {
                update_mask: mask.map(|field_paths| DocumentMask { field_paths }),
                update_transforms: Vec::new(),
                current_document: exists.map(|e| Precondition {
                    condition_type: Some(ConditionType::Exists(e)),
                }),
                operation: Some(Operation::Update(Document {
                    name: name.clone(),
                    fields,
                    create_time: None,
                    update_time: None,
                })),
            };
            pending.push(Pending {
                row,
                bytes: write.encoded_len(),
                name,
                write,
            });
        }
        let pending = match self.plan.mode {
            WriteMode::Upsert => pending,
            WriteMode::Insert => self.keep(pending, false, &mut outcome).await?,
            WriteMode::Update => self.keep(pending, true, &mut outcome).await?,
        };
        self.commit_all(pending, &mut outcome).await?;
        outcome.failed.sort_by_key(|f| f.row);
        outcome.skipped.sort_unstable();
        tracing::debug!(
            rows = batch.num_rows(),
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            "batch written"
        );
        Ok(outcome)
    }

    async fn delete_batch(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let columns = self.bind(keys, &self.plan.key.clone())?;
        let ids = KeyColumns::new(columns);
        let mut outcome = WriteOutcome::default();
        let mut pending = Vec::with_capacity(keys.num_rows());
        for row in 0..keys.num_rows() {
            match ids.id(row) {
                Ok(id) => {
                    let name = format!("{}{id}", self.prefix);
                    let write = Write {
                        update_mask: None,
                        update_transforms: Vec::new(),
                        current_document: None,
                        operation: Some(Operation::Delete(name.clone())),
                    };
                    pending.push(Pending {
                        row,
                        bytes: write.encoded_len(),
                        name,
                        write,
                    });
                }
                Err((column, message)) => outcome.failed.push(RowFailure {
                    row,
                    column,
                    message,
                }),
            }
        }
        // Deleting a missing document succeeds in Firestore; asking first reports those keys
        // as skipped, like the other destinations do.
        let pending = self.keep(pending, true, &mut outcome).await?;
        self.commit_all(pending, &mut outcome).await?;
        outcome.skipped.sort_unstable();
        tracing::debug!(
            keys = keys.num_rows(),
            failed = outcome.failed.len(),
            missing = outcome.skipped.len(),
            "keys deleted"
        );
        Ok(outcome)
    }

    /// Keeps the writes whose document exists (`exists`) or does not; the others are skipped.
    async fn keep(
        &self,
        pending: Vec<Pending>,
        exists: bool,
        outcome: &mut WriteOutcome,
    ) -> Result<Vec<Pending>, ConnectorError> {
        let mut found = HashSet::new();
        let names: Vec<String> = pending.iter().map(|p| p.name.clone()).collect();
        for chunk in names.chunks(GET_CHUNK) {
            found.extend(self.client.existing(chunk).await?);
        }
        let (kept, dropped): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|p| found.contains(&p.name) == exists);
        outcome.skipped.extend(dropped.iter().map(|p| p.row));
        Ok(kept)
    }

    /// Commits `pending` in requests within Firestore's limits (500 writes, 10 MiB, one write
    /// per document).
    async fn commit_all(
        &mut self,
        pending: Vec<Pending>,
        outcome: &mut WriteOutcome,
    ) -> Result<(), ConnectorError> {
        let mut chunk: Vec<Pending> = Vec::new();
        let mut bytes = 0;
        let mut names = HashSet::new();
        for p in pending {
            if chunk.len() == MAX_WRITES
                || (bytes + p.bytes > MAX_REQUEST_BYTES && !chunk.is_empty())
                || names.contains(&p.name)
            {
                self.commit_isolating(std::mem::take(&mut chunk), outcome)
                    .await?;
                bytes = 0;
                names.clear();
            }
            bytes += p.bytes;
            names.insert(p.name.clone());
            chunk.push(p);
        }
        if !chunk.is_empty() {
            self.commit_isolating(chunk, outcome).await?;
        }
        Ok(())
    }

    /// Commits `writes`; when the server refuses the commit, splits it in halves until each
    /// refused document stands alone, then rejects it with the server's message (or skips it
    /// when the refusal is the mode's own precondition: an existing document in `insert`
    /// mode, a missing one in `update` mode).
    ///
    /// Google's `Commit` is atomic, so a refused half left nothing behind. The emulator applies
    /// writes in order and stops at the first refusal, so after a split the writes before it
    /// are re-sent: idempotent for upserts, updates and deletes; in `insert` mode they come
    /// back as "already exists" and are reported skipped although this run created them.
    async fn commit_isolating(
        &mut self,
        writes: Vec<Pending>,
        outcome: &mut WriteOutcome,
    ) -> Result<(), ConnectorError> {
        let mut bisection = Bisection::new(0..writes.len());
        while let Some(group) = bisection.next_group() {
            if let Some(ramp) = self.ramp.as_mut() {
                ramp.admit(group.len()).await;
            }
            let commit: Vec<Write> = writes[group].iter().map(|p| p.write.clone()).collect();
            self.commits += 1;
            let result = self.client.commit(&commit).await;
            bisection.record(result.map_err(|e| match e {
                CommitError::Refused(status) => AttemptError::Refused(status),
                CommitError::Fatal(e) => AttemptError::Fatal(e),
            }))?;
        }
        let settled = bisection.finish();
        self.splits += settled.splits as u64;
        for (i, status) in settled.refused {
            let p = &writes[i];
            // A refused precondition is the mode's own guard (another writer raced the
            // existence check); anything else is the document's fault.
            let precondition = matches!(
                (self.plan.mode, status.code()),
                (WriteMode::Insert, Code::AlreadyExists) | (WriteMode::Update, Code::NotFound)
            );
            if precondition {
                outcome.skipped.push(p.row);
            } else {
                tracing::debug!(row = p.row, code = ?status.code(), "document refused");
                outcome.failed.push(RowFailure {
                    row: p.row,
                    column: None,
                    message: format!(
                        "Firestore refused the document ({:?}): {}",
                        status.code(),
                        status.message().trim()
                    ),
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DestinationWriter for FirestoreWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        self.write_batch(batch).await
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        self.delete_batch(keys).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        tracing::info!(
            collection = %self.plan.collection,
            commits = self.commits,
            splits = self.splits,
            "destination writer closed"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FirestoreConfig;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    /// A writer for `collection` against the emulator the test services run.
    async fn emulator_writer(collection: &str, mode: WriteMode) -> FirestoreWriter {
        let host = std::env::var("BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST").expect(
            "BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST is not set; run scripts/services.sh start",
        );
        let config = FirestoreConfig::validate(
            &serde_json::json!({"project": "backflow-test", "emulator_host": host}),
        )
        .unwrap();
        let target = WriteTarget {
            object: collection.to_string(),
            schema: Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)])),
            primary_key: vec!["v".to_string()],
            mode,
            create_table: true,
            deletes: false,
            initial_load: false,
        };
        let client = Client::connect(&config).await.unwrap();
        FirestoreWriter::new(client, Plan::new(&target).unwrap())
    }

    /// One write per id, guarded by `exists: true`.
    fn updates(writer: &FirestoreWriter, ids: std::ops::Range<usize>) -> Vec<Pending> {
        ids.map(|row| {
            let name = format!("{}{row}", writer.prefix);
            let mut fields = HashMap::new();
            fields.insert("v".to_string(), crate::value::tests::string("new"));
            let write = Write {
                update_mask: Some(DocumentMask {
                    field_paths: vec!["v".into()],
                }),
                update_transforms: Vec::new(),
                current_document: Some(Precondition {
                    condition_type: Some(ConditionType::Exists(true)),
                }),
                operation: Some(Operation::Update(Document {
                    name: name.clone(),
                    fields,
                    create_time: None,
                    update_time: None,
                })),
            };
            Pending {
                row,
                bytes: write.encoded_len(),
                name,
                write,
            }
        })
        .collect()
    }

    /// Creates the documents of `updates` except rows 2 and 5, straight through the client.
    async fn seed_all_but_2_and_5(writer: &mut FirestoreWriter) {
        let seeds: Vec<Write> = updates(writer, 0..8)
            .into_iter()
            .filter(|p| p.row != 2 && p.row != 5)
            .map(|mut p| {
                p.write.current_document = None;
                p.write
            })
            .collect();
        writer.client.commit(&seeds).await.unwrap();
    }

    #[tokio::test]
    async fn refused_documents_are_isolated_and_rejected_with_the_servers_message() {
        let collection = format!("isolate_{:016x}", rand::random::<u64>());
        let mut writer = emulator_writer(&collection, WriteMode::Upsert).await;
        seed_all_but_2_and_5(&mut writer).await;
        let mut outcome = WriteOutcome::default();
        writer
            .commit_isolating(updates(&writer, 0..8), &mut outcome)
            .await
            .unwrap();
        let rows: Vec<usize> = outcome.failed.iter().map(|f| f.row).collect();
        assert_eq!(rows, vec![2, 5], "{outcome:?}");
        assert!(
            outcome.failed[0].message.contains("NotFound"),
            "{outcome:?}"
        );
        assert!(
            outcome.failed[0].message.contains("no entity to update"),
            "{outcome:?}"
        );
        assert!(writer.splits >= 2);
        let names: Vec<String> = updates(&writer, 0..8).into_iter().map(|p| p.name).collect();
        assert_eq!(writer.client.existing(&names).await.unwrap().len(), 6);
    }

    #[tokio::test]
    async fn a_lost_precondition_race_is_a_skip_in_update_mode() {
        let collection = format!("race_{:016x}", rand::random::<u64>());
        let mut writer = emulator_writer(&collection, WriteMode::Update).await;
        seed_all_but_2_and_5(&mut writer).await;
        let mut outcome = WriteOutcome::default();
        writer
            .commit_isolating(updates(&writer, 0..8), &mut outcome)
            .await
            .unwrap();
        assert_eq!(outcome.skipped, vec![2, 5], "{outcome:?}");
        assert!(outcome.failed.is_empty(), "{outcome:?}");
    }

    #[test]
    fn field_paths_quote_what_is_not_an_identifier() {
        assert_eq!(field_path("churn_risk2"), "churn_risk2");
        assert_eq!(field_path("2x"), "`2x`");
        assert_eq!(field_path("a.b`c\\"), "`a.b\\`c\\\\`");
    }
}
