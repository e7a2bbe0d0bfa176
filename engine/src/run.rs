//! One run of a sync: read → canonicalise → hash → classify against the previous snapshot →
//! write changes → delete removals (mirror) → write the next snapshot.
//!
//! Four tasks form a pipeline joined by bounded channels: the source reader, the differ (this
//! task), the journal (which stores each batch's keys before the batch may reach the
//! destination) and the destination writer. The source keeps streaming while the destination
//! writes, and memory is bounded by a few batches plus the two snapshot indexes, never by the
//! size of the query result. Each write is acknowledged per row before its key enters the next
//! snapshot, so a row that failed is sent again next time; a run that died leaves its journal,
//! which makes the next attempt treat every key it may have touched as unknown.
//!
//! Validation and classification live in the `classify` module, shared with
//! the dry run; this module adds what only a real run does: writing, deleting, acknowledging
//! and the next snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use backflow_connector_core::{
    ConnectorError, Destination, DestinationWriter, Source, WriteMode, WriteOutcome, WriteTarget,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, Instrument};

use crate::classify::{prepare, read_source, render_key, Classifier, Prepared};
use crate::encoding::decode_keys;
use crate::error::EngineError;
use crate::journal::{JournalCleanup, JournalStats, JournalWriter, Segment};
use crate::result::{RejectedOperation, RejectedRow, RunCounts, RunResult, StageTimings};
use crate::snapshot::{SnapshotBuilder, SnapshotRef};
use crate::spec::{SyncMode, SyncSpec};
use crate::store::SnapshotStore;

/// Batches buffered between two stages; small, because back-pressure is the point.
const CHANNEL_DEPTH: usize = 2;

/// Everything one run needs. Connections are validated connector values (no I/O yet).
pub struct RunInput<'a> {
    /// Unique id of the run; names the snapshot file.
    pub run_id: &'a str,
    /// The sync.
    pub spec: &'a SyncSpec,
    /// Where rows come from.
    pub source: &'a dyn Source,
    /// Where changes go.
    pub destination: &'a dyn Destination,
    /// The snapshot of the last committed run, if any.
    pub previous: Option<&'a SnapshotRef>,
    /// Send every row, ignoring the snapshot's hashes (removals are still detected).
    pub full_resync: bool,
    /// Receives counts as the run progresses.
    pub progress: Option<watch::Sender<RunCounts>>,
}

/// Runs syncs against one snapshot store.
#[derive(Debug, Clone)]
pub struct Engine {
    snapshots: SnapshotStore,
    /// OpenTelemetry `db.system` of the source and the destination, for the spans that talk
    /// to them; unset when the caller does not know the connector kinds.
    source_system: Option<String>,
    destination_system: Option<String>,
}

enum Work {
    Write { id: u64, batch: RecordBatch },
    Delete { id: u64, keys: RecordBatch },
}

/// A batch of work and the journal segment of the keys it touches.
type Journaled = (Work, Segment);

struct Ack {
    id: u64,
    outcome: WriteOutcome,
}

/// Rows sent to the writer and not yet acknowledged.
struct Pending {
    operation: RejectedOperation,
    keys: Vec<u8>,
    offsets: Vec<usize>,
    new_hashes: Vec<u128>,
    /// The row's slot in the previous snapshot, if its key was there.
    old_slots: Vec<Option<usize>>,
    key_columns: Vec<ArrayRef>,
}

impl Pending {
    fn new(operation: RejectedOperation, key_columns: Vec<ArrayRef>, rows: usize) -> Self {
        Self {
            operation,
            keys: Vec::with_capacity(rows * 9),
            offsets: {
                let mut v = Vec::with_capacity(rows + 1);
                v.push(0);
                v
            },
            new_hashes: Vec::with_capacity(rows),
            old_slots: Vec::with_capacity(rows),
            key_columns,
        }
    }

    fn push(&mut self, key: &[u8], new_hash: u128, old_slot: Option<usize>) {
        if old_slot.is_none() {
            // Only keys new to this run need their bytes; old ones live in the snapshot.
            self.keys.extend_from_slice(key);
        }
        self.offsets.push(self.keys.len());
        self.new_hashes.push(new_hash);
        self.old_slots.push(old_slot);
    }

    fn len(&self) -> usize {
        self.new_hashes.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        &self.keys[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// State of the differ across batches: the shared classification state plus what a run adds
/// to it (rows in flight to the destination, the keys it added, rejected rows).
struct Differ<'a> {
    classifier: Classifier<'a>,
    full_resync: bool,
    /// An empty journal segment with this attempt's header, cloned for each batch.
    segment: Segment,
    added: SnapshotBuilder,
    rejected: Vec<RejectedRow>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    peak_heap: usize,
}

impl Engine {
    /// An engine writing snapshots to `snapshots`.
    pub fn new(snapshots: SnapshotStore) -> Self {
        Self {
            snapshots,
            source_system: None,
            destination_system: None,
        }
    }

    /// Names the source's and the destination's connector kinds (`postgres`, `files`, …), so
    /// the `source.read` and `destination.write` spans carry OpenTelemetry's `db.system`.
    pub fn with_systems(mut self, source_kind: &str, destination_kind: &str) -> Self {
        self.source_system = Some(db_system(source_kind).to_owned());
        self.destination_system = Some(db_system(destination_kind).to_owned());
        self
    }

    /// The snapshot store, for callers that load or prune snapshots.
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// Runs one sync to completion. On error nothing is committed: the destination holds only
    /// acknowledged, idempotent writes, and the previous snapshot stays current.
    pub async fn run(&self, input: RunInput<'_>) -> Result<RunResult, EngineError> {
        let span = info_span!("sync.run", backflow.sync = %input.spec.name, backflow.run_id = %input.run_id);
        self.execute(input).instrument(span).await
    }

    /// [`Engine::run`] without opening a `sync.run` span, for a caller that opened its own: the
    /// worker's continues the run's trace and also covers the commit.
    pub async fn execute(&self, input: RunInput<'_>) -> Result<RunResult, EngineError> {
        let started = Instant::now();
        let spec = input.spec;
        let batch_size = spec.options.batch_size.max(1);
        let Prepared {
            stream,
            plan,
            previous,
            key_types_match,
            journal_read,
            recovered_keys,
        } = prepare(
            &self.snapshots,
            spec,
            input.source,
            input.previous,
            input.full_resync,
        )
        .await?;

        let target = WriteTarget {
            object: spec.object.clone(),
            schema: plan.destination_schema.clone(),
            primary_key: plan.key_fields.iter().map(|f| f.name().clone()).collect(),
            mode: match spec.mode {
                SyncMode::Upsert | SyncMode::Mirror => WriteMode::Upsert,
                SyncMode::Insert => WriteMode::Insert,
                SyncMode::Update => WriteMode::Update,
            },
            create_table: spec.create_table,
            initial_load: previous.is_empty(),
            deletes: spec.mode == SyncMode::Mirror,
        };
        input
            .destination
            .check(&target)
            .await
            .map_err(EngineError::Destination)?;
        let writer = input
            .destination
            .open(&target)
            .await
            .map_err(EngineError::Destination)?;

        let journal =
            JournalWriter::new(self.snapshots.clone(), spec, input.run_id, &plan.key_fields);
        let segment = journal.segment();

        let mut tasks: JoinSet<()> = JoinSet::new();
        let (source_tx, mut source_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (read_time_tx, read_time_rx) = tokio::sync::oneshot::channel();
        let read_span = info_span!(
            "source.read",
            db.system = self.source_system.as_deref(),
            db.operation = "SELECT",
            backflow.rows = tracing::field::Empty,
        );
        tasks.spawn(read_source(stream, source_tx, read_time_tx).instrument(read_span.clone()));
        let (work_tx, journal_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (journaled_tx, work_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (journal_done_tx, journal_done_rx) = tokio::sync::oneshot::channel();
        tasks.spawn(
            async move {
                let result = journal_writes(journal, journal_rx, journaled_tx).await;
                let _ = journal_done_tx.send(result);
            }
            .instrument(info_span!("journal.write")),
        );
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let (writer_done_tx, writer_done_rx) = tokio::sync::oneshot::channel();
        let destination_system = self.destination_system.clone();
        tasks.spawn(
            async move {
                let result =
                    write_changes(writer, destination_system.as_deref(), work_rx, ack_tx).await;
                let _ = writer_done_tx.send(result);
            }
            .in_current_span(),
        );

        let snapshot_rows = previous.len();
        let mut differ = Differ {
            // Current key names: a mapping may have renamed a key column since the last run.
            added: SnapshotBuilder::new(plan.key_fields.clone()),
            classifier: Classifier::new(spec, plan, previous),
            full_resync: input.full_resync,
            segment,
            rejected: Vec::new(),
            pending: HashMap::new(),
            next_id: 0,
            peak_heap: 0,
        };

        let mut diff_time = Duration::ZERO;
        let mut writer_gone = false;
        while let Some(item) = source_rx.recv().await {
            let batch = item.map_err(EngineError::Source)?;
            let t = Instant::now();
            let work = info_span!("diff", backflow.rows = batch.num_rows())
                .in_scope(|| differ.classify(&batch))?;
            diff_time += t.elapsed();
            if let Some(work) = work {
                if work_tx.send(work).await.is_err() {
                    writer_gone = true;
                    break;
                }
            }
            differ.drain_acks(&mut ack_rx)?;
            if let Some(p) = &input.progress {
                p.send_replace(differ.classifier.counts);
            }
        }

        read_span.record("backflow.rows", differ.classifier.counts.read);
        if !writer_gone {
            differ.classifier.check_guards(snapshot_rows as u64)?;
            if spec.mode == SyncMode::Mirror {
                let t = Instant::now();
                let deletes = info_span!("diff", backflow.removals = true)
                    .in_scope(|| differ.removals(batch_size))?;
                diff_time += t.elapsed();
                for work in deletes {
                    if work_tx.send(work).await.is_err() {
                        break;
                    }
                    differ.drain_acks(&mut ack_rx)?;
                }
            }
        }
        drop(work_tx);
        while let Some(ack) = ack_rx.recv().await {
            differ.apply_ack(ack)?;
        }
        // A journal that could not be stored stopped the writes; its error explains the run.
        let (own_segments, journal_stats) = journal_done_rx
            .await
            .map_err(|_| EngineError::Internal("the journal task vanished".into()))??;
        let (writer, write_time) = writer_done_rx
            .await
            .map_err(|_| EngineError::Internal("the writer task vanished".into()))?
            .map_err(EngineError::Destination)?;
        writer.close().await.map_err(EngineError::Destination)?;
        if !differ.pending.is_empty() {
            return Err(EngineError::Internal(format!(
                "{} batches were never acknowledged",
                differ.pending.len()
            )));
        }
        let read_time = read_time_rx.await.unwrap_or_default();
        if let Some(p) = &input.progress {
            p.send_replace(differ.classifier.counts);
        }

        let t = Instant::now();
        differ.note_heap();
        let Differ {
            classifier: Classifier {
                counts, previous, ..
            },
            rejected,
            added,
            peak_heap,
            ..
        } = differ;
        let snapshot = match input.previous {
            // Nothing moved: the previous snapshot file is still exact.
            Some(current) if key_types_match && previous.unchanged() && added.is_empty() => {
                current.clone()
            }
            _ => {
                self.snapshots
                    .write(&spec.name, input.run_id, &previous, added)
                    .instrument(info_span!("snapshot.write"))
                    .await?
            }
        };
        let snapshot_write = t.elapsed();
        let timings = StageTimings {
            source_read: read_time,
            diff: diff_time,
            destination_write: write_time,
            snapshot_write,
            total: started.elapsed(),
        };
        info!(
            read = counts.read,
            added = counts.added,
            changed = counts.changed,
            removed = counts.removed,
            written = counts.written,
            deleted = counts.deleted,
            failed = counts.failed,
            elapsed_ms = timings.total.as_millis() as u64,
            "sync run finished"
        );
        let mut journal = JournalCleanup {
            paths: journal_read,
        };
        journal.paths.extend(own_segments);
        Ok(RunResult {
            counts,
            rejected,
            timings,
            snapshot,
            snapshot_heap_bytes: peak_heap,
            journal,
            journal_stats: JournalStats {
                recovered_keys,
                ..journal_stats
            },
        })
    }
}

/// Stores each batch's journal segment, then hands the batch on to the writer: no key reaches
/// the destination before it is journaled. Ends at the first failure to store a segment.
async fn journal_writes(
    mut journal: JournalWriter,
    mut rx: mpsc::Receiver<Journaled>,
    tx: mpsc::Sender<Work>,
) -> Result<(Vec<String>, JournalStats), EngineError> {
    while let Some((work, segment)) = rx.recv().await {
        journal.write(segment).await?;
        if tx.send(work).await.is_err() {
            break;
        }
    }
    Ok(journal.finish())
}

async fn write_changes(
    mut writer: Box<dyn DestinationWriter>,
    db_system: Option<&str>,
    mut rx: mpsc::Receiver<Work>,
    acks: mpsc::UnboundedSender<Ack>,
) -> Result<(Box<dyn DestinationWriter>, Duration), ConnectorError> {
    let mut busy = Duration::ZERO;
    while let Some(work) = rx.recv().await {
        let t = Instant::now();
        let (id, outcome) = match work {
            Work::Write { id, batch } => {
                let span = info_span!(
                    "destination.write",
                    db.system = db_system,
                    db.operation = "upsert",
                    backflow.rows = batch.num_rows(),
                    backflow.rows_failed = tracing::field::Empty,
                );
                let outcome = writer.write(&batch).instrument(span.clone()).await?;
                span.record("backflow.rows_failed", outcome.failed.len());
                (id, outcome)
            }
            Work::Delete { id, keys } => {
                let span = info_span!(
                    "destination.write",
                    db.system = db_system,
                    db.operation = "delete",
                    backflow.rows = keys.num_rows(),
                    backflow.rows_failed = tracing::field::Empty,
                );
                let outcome = writer.delete(&keys).instrument(span.clone()).await?;
                span.record("backflow.rows_failed", outcome.failed.len());
                (id, outcome)
            }
        };
        busy += t.elapsed();
        if acks.send(Ack { id, outcome }).is_err() {
            break;
        }
    }
    Ok((writer, busy))
}

impl Differ<'_> {
    /// Hashes and classifies one batch, returning the rows to send.
    fn classify(&mut self, batch: &RecordBatch) -> Result<Option<Journaled>, EngineError> {
        let mode = self.classifier.spec.mode;
        let full_resync = self.full_resync;
        let mut send = Vec::with_capacity(batch.num_rows());
        let mut pending = Pending::new(RejectedOperation::Write, Vec::new(), 0);
        let mut segment = self.segment.clone();
        let mut any = false;
        let batch = self.classifier.classify(batch, |previous, counts, row| {
            let wanted = match mode {
                // A key an uncommitted attempt may have inserted is offered again: inserting
                // an existing key is skipped, so this is safe either way.
                SyncMode::Insert => row.slot.is_none() || row.unknown,
                _ => row.changed || full_resync,
            };
            if wanted {
                pending.push(row.key, row.hash, row.slot);
                segment.push(row.key);
                any = true;
            } else if let Some(slot) = row.slot {
                if row.changed {
                    // A changed row in insert mode: the destination keeps the old values.
                    counts.skipped += 1;
                }
                previous.keep(slot);
            }
            send.push(wanted);
        })?;
        let batch = match batch {
            Some(batch) if any => batch,
            _ => return Ok(None),
        };
        let mask = BooleanArray::from(send);
        let to_send = filter_record_batch(&batch, &mask)?;
        pending.key_columns = self
            .classifier
            .plan
            .key_indices
            .iter()
            .map(|&i| to_send.column(i).clone())
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        debug!(batch = id, rows = to_send.num_rows(), "batch classified");
        Ok(Some((Work::Write { id, batch: to_send }, segment)))
    }

    /// Builds delete batches for the snapshot keys that left the query result.
    fn removals(&mut self, batch_size: usize) -> Result<Vec<Journaled>, EngineError> {
        let previous = &self.classifier.previous;
        let key_fields = &self.classifier.plan.key_fields;
        let slots: Vec<usize> = previous.unseen().collect();
        let schema = Arc::new(Schema::new(key_fields.clone()));
        let mut work = Vec::with_capacity(slots.len().div_ceil(batch_size));
        for chunk in slots.chunks(batch_size) {
            let columns = decode_keys(key_fields, chunk.iter().map(|&s| previous.key(s)))?;
            let keys = RecordBatch::try_new(schema.clone(), columns.clone())
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            let mut pending = Pending::new(RejectedOperation::Delete, columns, chunk.len());
            let mut segment = self.segment.clone();
            for &slot in chunk {
                pending.push(&[], previous.hash(slot), Some(slot));
                segment.push(previous.key(slot));
            }
            let id = self.next_id;
            self.next_id += 1;
            self.pending.insert(id, pending);
            work.push((Work::Delete { id, keys }, segment));
        }
        Ok(work)
    }

    fn drain_acks(&mut self, acks: &mut mpsc::UnboundedReceiver<Ack>) -> Result<(), EngineError> {
        while let Ok(ack) = acks.try_recv() {
            self.apply_ack(ack)?;
        }
        self.note_heap();
        Ok(())
    }

    /// Moves acknowledged rows into the next snapshot and records refusals.
    fn apply_ack(&mut self, ack: Ack) -> Result<(), EngineError> {
        let pending = self.pending.remove(&ack.id).ok_or_else(|| {
            EngineError::Internal(format!("acknowledgement for unknown batch {}", ack.id))
        })?;
        let n = pending.len();
        let mut status = vec![Status::Applied; n];
        for &row in &ack.outcome.skipped {
            if row < n {
                status[row] = Status::Skipped;
            }
        }
        for failure in &ack.outcome.failed {
            if failure.row >= n {
                return Err(EngineError::Internal(format!(
                    "destination reported row {} of a {n}-row batch",
                    failure.row
                )));
            }
            status[failure.row] = Status::Failed;
            if self.rejected.len() < self.classifier.spec.options.max_rejected_rows {
                self.rejected.push(RejectedRow {
                    key: render_key(
                        &self.classifier.plan.key_fields,
                        &pending.key_columns,
                        failure.row,
                    ),
                    column: failure.column.clone(),
                    message: failure.message.clone(),
                    operation: pending.operation,
                });
            }
        }
        for (row, status) in status.into_iter().enumerate() {
            let slot = pending.old_slots[row];
            match (pending.operation, status, slot) {
                (RejectedOperation::Write, Status::Applied, Some(slot)) => {
                    self.classifier.counts.written += 1;
                    self.classifier
                        .previous
                        .keep_rewritten(slot, pending.new_hashes[row]);
                }
                (RejectedOperation::Write, Status::Applied, None) => {
                    self.classifier.counts.written += 1;
                    self.added.push(pending.key(row), pending.new_hashes[row])?;
                }
                (RejectedOperation::Delete, Status::Applied, _) => {
                    self.classifier.counts.deleted += 1
                }
                (_, Status::Failed, slot) => {
                    // The destination still holds what it held: keep the previous entry.
                    self.classifier.counts.failed += 1;
                    if let Some(slot) = slot {
                        self.classifier.previous.keep(slot);
                    }
                }
                (_, Status::Skipped, _) => self.classifier.counts.skipped += 1,
            }
        }
        Ok(())
    }

    fn note_heap(&mut self) {
        let heap = self.classifier.previous.heap_bytes()
            + self.added.heap_bytes()
            + self.classifier.new_keys.capacity() * 17;
        self.peak_heap = self.peak_heap.max(heap);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Applied,
    Failed,
    Skipped,
}

/// OpenTelemetry's `db.system` name for a connector kind; kinds without one keep their name.
fn db_system(kind: &str) -> &str {
    match kind {
        "postgres" => "postgresql",
        "mongodb" | "ferretdb" => "mongodb",
        other => other,
    }
}
