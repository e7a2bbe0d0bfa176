//! The writer of one run: `insert` commands for a first load and for `insert` mode, unordered
//! `update` commands of upsert statements otherwise, `delete` commands for removals.
//!
//! A statement or document the server refuses comes back in `writeErrors` and becomes a
//! rejected row with the server's message. A command refused as a whole for a data reason (a
//! server that cannot store one value), or answered in a way that does not say what became of
//! each statement (FerretDB 1.x stops an unordered `update` at its first error), is re-run in
//! halves until the offending rows stand alone; statements are idempotent, so re-running them
//! is safe. Up to [`MAX_IN_FLIGHT`] commands run at once.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Instant;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use backflow_connector_core::support::{AttemptError, Bisection};
use backflow_connector_core::{
    CanonicalType, ConnectorError, DestinationWriter, ErrorKind, RowFailure, WriteMode,
    WriteOutcome,
};
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf};
use mongodb::Database;

use crate::error::{classify, classify_during};
use crate::plan::{Column, Plan};
use crate::reply::{
    chunks, per_command, splittable, WriteError, WriteReply, DUPLICATE_KEY, MAX_STATEMENTS,
};
use crate::rows::{encode_rows, key_bytes, Row};

/// Write commands one writer keeps in flight. Enough to overlap round trips and the server's
/// work on two cores; FerretDB 1.x on PostgreSQL shares a pool of 50 backend connections
/// among all its clients.
const MAX_IN_FLIGHT: usize = 4;
/// Keys per `find` looking up which keys exist.
const MAX_LOOKUP_KEYS: usize = 10_000;

/// Writes one run's batches through one client.
pub(crate) struct MongoWriter {
    db: Database,
    plan: Plan,
    /// The run is a first load into an empty collection: rows go in with `insert` commands.
    direct: bool,
}

/// What became of one row's statement or document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Matched an existing document (updated it, or left it alone in `insert` mode).
    Matched,
    /// Its command matched fewer documents than it had statements: this one may have missed.
    MaybeMatched,
    /// Created a document.
    Created,
    /// Refused by the server.
    Refused {
        message: String,
        column: Option<String>,
        /// A unique-index violation: a concurrent writer created the key first (worth one
        /// more try), or another unique index refuses the row.
        duplicate: bool,
    },
}

impl Fate {
    fn refused(e: &WriteError) -> Self {
        Fate::Refused {
            message: e.message.clone(),
            column: None,
            duplicate: e.is_duplicate_key(),
        }
    }

    fn refused_command(e: &ConnectorError) -> Self {
        Fate::Refused {
            message: e.message().to_string(),
            column: e.column().map(str::to_string),
            duplicate: e.code().and_then(|c| c.parse::<i32>().ok()) == Some(DUPLICATE_KEY),
        }
    }

    fn is_duplicate(&self) -> bool {
        matches!(
            self,
            Fate::Refused {
                duplicate: true,
                ..
            }
        )
    }
}

/// Runs `work` for every `[lo, hi)` range, at most [`MAX_IN_FLIGHT`] at once, and gathers the
/// per-row fates they report (`(row position, fate)`).
async fn in_flight<F, Fut>(
    ranges: Vec<(usize, usize)>,
    work: F,
) -> Result<Vec<(usize, Fate)>, ConnectorError>
where
    F: Fn(usize, usize) -> Fut,
    Fut: Future<Output = Result<Vec<(usize, Fate)>, ConnectorError>>,
{
    let mut results = futures::stream::iter(ranges.into_iter().map(|(lo, hi)| work(lo, hi)))
        .buffer_unordered(MAX_IN_FLIGHT);
    let mut fates = Vec::new();
    while let Some(result) = results.next().await {
        fates.extend(result?);
    }
    Ok(fates)
}

/// How a failed write command counts for bisection: refused as a whole for a data reason
/// (split it), or failed for another reason, which fails the batch `doing` that.
fn attempt_error(e: ConnectorError, doing: &str) -> AttemptError<ConnectorError, ConnectorError> {
    if splittable(&e) {
        AttemptError::Refused(e)
    } else {
        AttemptError::Fatal(e.context(doing))
    }
}

/// The fates of the rows whose command, down to the row alone, was refused as a whole.
fn refused_commands(refused: Vec<(usize, ConnectorError)>) -> Vec<(usize, Fate)> {
    refused
        .into_iter()
        .map(|(i, e)| (i, Fate::refused_command(&e)))
        .collect()
}

/// Puts gathered `(position, fate)` pairs in position order; every position must have one.
fn in_order(len: usize, gathered: Vec<(usize, Fate)>) -> Result<Vec<Fate>, ConnectorError> {
    let mut fates: Vec<Option<Fate>> = vec![None; len];
    for (i, fate) in gathered {
        if let Some(slot) = fates.get_mut(i) {
            *slot = Some(fate);
        }
    }
    fates
        .into_iter()
        .map(|f| f.ok_or_else(|| ConnectorError::internal("a write command left a row unanswered")))
        .collect()
}

impl MongoWriter {
    pub(crate) fn new(db: Database, plan: Plan, direct: bool) -> Self {
        Self { db, plan, direct }
    }

    /// Fails (never panics) when `batch` does not have the columns and canonical types the
    /// writer was opened with (the key columns only, for deletes).
    fn check_batch(&self, batch: &RecordBatch, keys_only: bool) -> Result<(), ConnectorError> {
        let schema = batch.schema();
        let wanted: Vec<&Column> = if keys_only {
            self.plan
                .key
                .iter()
                .map(|&k| &self.plan.columns[k])
                .collect()
        } else {
            self.plan.columns.iter().collect()
        };
        if schema.fields().len() != wanted.len() {
            return Err(ConnectorError::new(
                ErrorKind::Schema,
                format!(
                    "the batch has {} columns, the writer was opened for {}",
                    schema.fields().len(),
                    wanted.len()
                ),
            ));
        }
        for (field, column) in schema.fields().iter().zip(wanted) {
            if field.name() != &column.name
                || CanonicalType::of(field).as_ref() != Some(&column.canonical)
            {
                return Err(ConnectorError::schema(
                    field.name(),
                    format!(
                        "column `{}` of type {} does not match `{}` ({:?}) the writer was opened for",
                        field.name(),
                        field.data_type(),
                        column.name,
                        column.canonical
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn command(
        &self,
        name: &str,
        items_field: &str,
        items: &[RawDocumentBuf],
    ) -> Result<WriteReply, ConnectorError> {
        let mut array = RawArrayBuf::new();
        for item in items {
            array.push(item.clone());
        }
        let mut command = RawDocumentBuf::new();
        command.append(name, self.plan.collection.as_str());
        command.append(items_field, array);
        command.append("ordered", false);
        let reply = self.db.run_raw_command(command).await.map_err(classify)?;
        WriteReply::read(&reply)
    }

    /// Inserts the documents `docs[lo..hi]` of `rows`, in halves where a whole command fails.
    async fn insert_range(
        &self,
        docs: &[RawDocumentBuf],
        lo: usize,
        hi: usize,
    ) -> Result<Vec<(usize, Fate)>, ConnectorError> {
        let mut bisection = Bisection::new(lo..hi);
        while let Some(group) = bisection.next_group() {
            let result = self.command("insert", "documents", &docs[group]).await;
            bisection.record(result.map_err(|e| attempt_error(e, "inserting documents")))?;
        }
        let settled = bisection.finish();
        let mut fates = refused_commands(settled.refused);
        for (group, reply) in settled.accepted {
            let mut part = vec![Fate::Created; group.len()];
            for e in &reply.errors {
                if let Some(f) = part.get_mut(e.index) {
                    *f = Fate::refused(e);
                }
            }
            fates.extend(group.zip(part));
        }
        Ok(fates)
    }

    /// Inserts every row's whole document; returns each row's fate in `rows` order.
    async fn insert_all(&self, rows: &[&Row]) -> Result<Vec<Fate>, ConnectorError> {
        let docs: Vec<RawDocumentBuf> = rows.iter().map(|r| r.document()).collect();
        let per = per_command(docs.len(), MAX_IN_FLIGHT, MAX_STATEMENTS);
        let ranges = chunks(docs.iter().map(|d| d.as_bytes().len()), per);
        let gathered = in_flight(ranges, |lo, hi| self.insert_range(&docs, lo, hi)).await?;
        in_order(rows.len(), gathered)
    }

    /// Whether a reply to `statements` statements says unambiguously what became of each.
    /// MongoDB's always does; FerretDB 1.24 stops an unordered command at its first write
    /// error, omits `n` and numbers the error 0, so a reply with write errors is trusted only
    /// when its counts add up (or it covers a single statement).
    fn reliable(&self, reply: &WriteReply, statements: usize) -> bool {
        if reply.errors.is_empty() || statements == 1 {
            return true;
        }
        // In `update` mode a missing key counts in neither `n` nor the errors.
        self.plan.mode != WriteMode::Update
            && reply
                .n
                .is_some_and(|n| n as usize + reply.errors.len() == statements)
    }

    /// Runs the statements `statements[lo..hi]` of `rows`, isolating refused rows by halves.
    async fn update_range(
        &self,
        rows: &[&Row],
        statements: &[RawDocumentBuf],
        lo: usize,
        hi: usize,
    ) -> Result<Vec<(usize, Fate)>, ConnectorError> {
        let mut bisection = Bisection::new(lo..hi);
        while let Some(group) = bisection.next_group() {
            let result = match self
                .command("update", "updates", &statements[group.clone()])
                .await
            {
                // A lone statement's reply is always reliable, so this never settles a row.
                Ok(reply) if !self.reliable(&reply, group.len()) => {
                    Err(AttemptError::Refused(ConnectorError::internal(
                        "the reply does not say what became of each statement",
                    )))
                }
                Ok(reply) => Ok(reply),
                Err(e) => Err(attempt_error(e, "writing documents")),
            };
            bisection.record(result)?;
        }
        let settled = bisection.finish();
        let mut fates = refused_commands(settled.refused);
        for (group, reply) in settled.accepted {
            // `n` counts matched and upserted statements.
            let n = reply.n.unwrap_or(0) as usize;
            let all = n + reply.errors.len() >= group.len();
            let mut part = vec![
                if all {
                    Fate::Matched
                } else {
                    Fate::MaybeMatched
                };
                group.len()
            ];
            let ids: HashMap<Vec<u8>, usize> = group
                .clone()
                .map(|i| (key_bytes(&rows[i].id), i - group.start))
                .collect();
            for (index, id) in &reply.upserted {
                let at = id
                    .as_ref()
                    .and_then(|id| ids.get(&key_bytes(id)).copied())
                    .or(*index);
                if let Some(f) = at.and_then(|i| part.get_mut(i)) {
                    *f = Fate::Created;
                }
            }
            for e in &reply.errors {
                if let Some(f) = part.get_mut(e.index) {
                    *f = Fate::refused(e);
                }
            }
            fates.extend(group.zip(part));
        }
        Ok(fates)
    }

    /// Runs every row's `update` statement once; returns each row's fate in `rows` order.
    async fn update_all(&self, rows: &[&Row]) -> Result<Vec<Fate>, ConnectorError> {
        let statements: Vec<RawDocumentBuf> = rows
            .iter()
            .map(|r| r.statement(self.plan.mode, self.plan.key_as_id))
            .collect();
        let per = per_command(statements.len(), MAX_IN_FLIGHT, MAX_STATEMENTS);
        let ranges = chunks(statements.iter().map(|s| s.as_bytes().len()), per);
        let gathered = in_flight(ranges, |lo, hi| {
            self.update_range(rows, &statements, lo, hi)
        })
        .await?;
        in_order(rows.len(), gathered)
    }

    /// Runs every row's `update` statement. An upsert that loses a race with a concurrent
    /// upsert of the same key fails with a duplicate-key error (MongoDB retries those itself,
    /// FerretDB does not): such rows get one more try, after which the refusal stands.
    async fn apply_statements(&self, rows: &[&Row]) -> Result<Vec<Fate>, ConnectorError> {
        let mut fates = self.update_all(rows).await?;
        if self.plan.mode == WriteMode::Update {
            return Ok(fates);
        }
        let again: Vec<usize> = (0..rows.len())
            .filter(|&i| fates[i].is_duplicate())
            .collect();
        if !again.is_empty() {
            let retry: Vec<&Row> = again.iter().map(|&i| rows[i]).collect();
            for (i, fate) in again.into_iter().zip(self.update_all(&retry).await?) {
                fates[i] = fate;
            }
        }
        Ok(fates)
    }

    /// The keys among `rows` that have a document now.
    async fn existing(&self, rows: &[&Row]) -> Result<HashSet<Vec<u8>>, ConnectorError> {
        let coll = self.db.collection::<Document>(&self.plan.collection);
        let mut found = HashSet::new();
        let ranges = chunks(
            rows.iter().map(|r| r.filter.as_bytes().len()),
            MAX_LOOKUP_KEYS,
        );
        for (lo, hi) in ranges {
            let keys: Vec<Bson> = rows[lo..hi]
                .iter()
                .map(|r| Bson::try_from(r.key.clone()))
                .collect::<Result<_, _>>()
                .map_err(|e| ConnectorError::internal(format!("key to BSON: {e}")))?;
            let (filter, projection) = if self.plan.key_as_id {
                (doc! { "_id": { "$in": keys } }, doc! { "_id": 1 })
            } else if self.plan.key.len() == 1 {
                let name = self.plan.key_names()[0];
                let keys: Vec<Bson> = keys
                    .into_iter()
                    .map(|k| match k {
                        Bson::Document(mut d) => d.remove(name).unwrap_or(Bson::Null),
                        other => other,
                    })
                    .collect();
                (doc! { name: { "$in": keys } }, doc! { name: 1, "_id": 0 })
            } else {
                let mut projection = doc! { "_id": 0 };
                for name in self.plan.key_names() {
                    projection.insert(name, 1);
                }
                (doc! { "$or": keys }, projection)
            };
            let mut cursor = coll
                .find(filter)
                .projection(projection)
                .await
                .map_err(classify_during("looking up existing keys"))?;
            while let Some(found_doc) = cursor
                .try_next()
                .await
                .map_err(classify_during("looking up existing keys"))?
            {
                found.insert(self.key_bytes_of(&found_doc)?);
            }
        }
        Ok(found)
    }

    /// The identity bytes of a found document's key, comparable with [`key_bytes`].
    fn key_bytes_of(&self, found: &Document) -> Result<Vec<u8>, ConnectorError> {
        let key = if self.plan.key_as_id {
            found.get("_id").cloned().unwrap_or(Bson::Null)
        } else {
            let mut d = Document::new();
            for name in self.plan.key_names() {
                d.insert(name, found.get(name).cloned().unwrap_or(Bson::Null));
            }
            Bson::Document(d)
        };
        let raw = RawBson::try_from(key)
            .map_err(|e| ConnectorError::internal(format!("key from BSON: {e}")))?;
        Ok(key_bytes(&raw))
    }

    /// Deletes the documents of `statements[lo..hi]` (one statement per key, so every server
    /// finds each document by its key's index).
    async fn delete_range(
        &self,
        statements: &[RawDocumentBuf],
        lo: usize,
        hi: usize,
    ) -> Result<Vec<(usize, Fate)>, ConnectorError> {
        let reply = self
            .command("delete", "deletes", &statements[lo..hi])
            .await
            .map_err(|e| e.context("deleting documents"))?;
        if let Some(e) = reply.errors.first() {
            return Err(ConnectorError::new(ErrorKind::Data, e.message.clone())
                .context("deleting documents"));
        }
        Ok((lo..hi).map(|i| (i, Fate::Matched)).collect())
    }

    async fn delete_all(&self, rows: &[&Row]) -> Result<(), ConnectorError> {
        let statements: Vec<RawDocumentBuf> = rows
            .iter()
            .map(|r| {
                let mut statement = RawDocumentBuf::new();
                statement.append("q", r.filter.clone());
                statement.append("limit", 1);
                statement
            })
            .collect();
        let per = per_command(statements.len(), MAX_IN_FLIGHT, MAX_STATEMENTS);
        let ranges = chunks(statements.iter().map(|s| s.as_bytes().len()), per);
        in_flight(ranges, |lo, hi| self.delete_range(&statements, lo, hi)).await?;
        Ok(())
    }
}

#[async_trait]
impl DestinationWriter for MongoWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let started = Instant::now();
        self.check_batch(batch, false)?;
        let mode = self.plan.mode;
        let mut outcome = WriteOutcome::default();
        let rows = encode_rows(&self.plan, batch, false, &mut outcome.failed);
        let all: Vec<&Row> = rows.iter().collect();
        // A first load, and `insert` mode (which never changes a document), insert whole
        // documents; a duplicate key sends the row through its `update` statement instead,
        // which tells an existing key (skipped in `insert` mode) from another unique index
        // refusing the row.
        let (mut fates, by_statement) = if self.direct || mode == WriteMode::Insert {
            let fates = self.insert_all(&all).await?;
            let again: Vec<usize> = (0..all.len())
                .filter(|&i| fates[i].is_duplicate())
                .collect();
            (fates, again)
        } else {
            (
                vec![Fate::MaybeMatched; all.len()],
                (0..all.len()).collect(),
            )
        };
        if !by_statement.is_empty() {
            let retry: Vec<&Row> = by_statement.iter().map(|&i| all[i]).collect();
            for (i, fate) in by_statement
                .into_iter()
                .zip(self.apply_statements(&retry).await?)
            {
                fates[i] = fate;
            }
        }
        let mut unsure: Vec<&Row> = Vec::new();
        for (row, fate) in all.iter().zip(fates) {
            match fate {
                Fate::Refused {
                    message, column, ..
                } => outcome.failed.push(RowFailure {
                    row: row.index,
                    column,
                    message,
                }),
                Fate::Created => {}
                Fate::Matched | Fate::MaybeMatched if mode == WriteMode::Insert => {
                    outcome.skipped.push(row.index);
                }
                Fate::Matched => {}
                Fate::MaybeMatched => unsure.push(row),
            }
        }
        // `n` is per command: only when it falls short, find which keys have no document.
        if !unsure.is_empty() {
            let existing = self.existing(&unsure).await?;
            for row in unsure {
                if existing.contains(&key_bytes(&row.key)) {
                    continue;
                }
                if mode == WriteMode::Update {
                    outcome.skipped.push(row.index);
                } else {
                    outcome.failed.push(RowFailure {
                        row: row.index,
                        column: None,
                        message: "the server acknowledged the upsert but the document is missing"
                            .to_string(),
                    });
                }
            }
        }
        outcome.skipped.sort_unstable();
        outcome.failed.sort_by_key(|f| f.row);
        tracing::debug!(
            rows = batch.num_rows(),
            direct = self.direct,
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch written"
        );
        Ok(outcome)
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let started = Instant::now();
        self.check_batch(keys, true)?;
        let mut outcome = WriteOutcome::default();
        let rows = encode_rows(&self.plan, keys, true, &mut outcome.failed);
        let all: Vec<&Row> = rows.iter().collect();
        let existing = self.existing(&all).await?;
        let looked_up_ms = started.elapsed().as_millis() as u64;
        let (present, missing): (Vec<&Row>, Vec<&Row>) = all
            .into_iter()
            .partition(|r| existing.contains(&key_bytes(&r.key)));
        self.delete_all(&present).await?;
        outcome.skipped = missing.iter().map(|r| r.index).collect();
        outcome.skipped.sort_unstable();
        outcome.failed.sort_by_key(|f| f.row);
        tracing::debug!(
            rows = keys.num_rows(),
            deleted = present.len(),
            skipped = outcome.skipped.len(),
            looked_up_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "keys deleted"
        );
        Ok(outcome)
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        // Every write was acknowledged when it returned. Dropping the client closes its
        // connections in the background; `shutdown` would wait for every clone of it.
        drop(self);
        Ok(())
    }
}
