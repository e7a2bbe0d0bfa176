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
    BatchStream, ConnectorError, Destination, DestinationWriter, Source, WriteMode, WriteOutcome,
    WriteTarget,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, Instrument, Span};

use crate::classify::{prepare_diff, read_source, render_key, Classifier};
use crate::encoding::decode_keys;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::journal::{JournalCleanup, JournalStats, JournalWriter, Segment};
use crate::layout::ColumnLayout;
use crate::result::{RejectedOperation, RejectedRow, RunCounts, RunResult, StageTimings};
use crate::snapshot::{Snapshot, SnapshotBuilder, SnapshotRef};
use crate::spec::{SyncMode, SyncSpec};

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
    /// Keys in the previous snapshot, for the guards.
    snapshot_rows: u64,
    /// Time spent classifying, the run's `diff` stage.
    diff_time: Duration,
}

/// What the differ ends with: the counts, rejected rows and measures for the result, and the
/// two halves of the next snapshot.
struct Diffed {
    counts: RunCounts,
    rejected: Vec<RejectedRow>,
    peak_heap: usize,
    diff_time: Duration,
    /// The previous snapshot, its kept and rewritten keys marked.
    previous: Snapshot,
    /// The keys this run added.
    added: SnapshotBuilder,
}

/// The differ's ends of the pipeline: the channels to and from the three spawned stages
/// (source reader, journal, destination writer) and the tasks themselves, which dropping this
/// aborts, so a run that fails stops its stages.
struct Pipeline {
    /// Held, never read: dropping the set aborts the stages.
    _tasks: JoinSet<()>,
    source_rx: mpsc::Receiver<Result<RecordBatch, ConnectorError>>,
    /// The `source.read` span, which gets the row count once the source is drained.
    read_span: Span,
    read_time_rx: oneshot::Receiver<Duration>,
    work_tx: mpsc::Sender<Journaled>,
    ack_rx: mpsc::UnboundedReceiver<Ack>,
    journal_done_rx: oneshot::Receiver<Result<(Vec<String>, JournalStats), EngineError>>,
    writer_done_rx: oneshot::Receiver<WriterDone>,
}

/// How the destination writer ended: the writer, to close, and the time it was busy.
type WriterDone = Result<(Box<dyn DestinationWriter>, Duration), ConnectorError>;

/// What the pipeline's stages hand back once joined.
struct Joined {
    /// The journal segments this attempt wrote, cleared once the run commits.
    own_segments: Vec<String>,
    journal_stats: JournalStats,
    read_time: Duration,
    write_time: Duration,
}

impl Engine {
    /// Runs one sync to completion. On error nothing is committed: the destination holds only
    /// acknowledged, idempotent writes, and the previous snapshot stays current.
    pub async fn run(&self, input: RunInput<'_>) -> Result<RunResult, EngineError> {
        let span = info_span!("sync.run", backflow.sync = %input.spec.name, backflow.run_id = %input.run_id);
        self.run_in_current_span(input).instrument(span).await
    }

    /// [`Engine::run`] without opening a `sync.run` span, for a caller that opened its own: the
    /// worker's continues the run's trace and also covers the commit.
    pub async fn run_in_current_span(&self, input: RunInput<'_>) -> Result<RunResult, EngineError> {
        let started = Instant::now();
        let spec = input.spec;
        let inputs = prepare_diff(
            &self.snapshots,
            spec,
            input.source,
            input.previous,
            input.full_resync,
        )
        .await?;
        let (mut pipeline, mut differ) = self
            .start_stages(&input, inputs.stream, inputs.layout, inputs.previous)
            .await?;

        differ
            .send_changes(&mut pipeline, input.progress.as_ref())
            .await?;
        let joined = pipeline.join(&mut differ).await?;
        if let Some(p) = &input.progress {
            p.send_replace(differ.classifier.counts);
        }

        let snapshot_started = Instant::now();
        let diffed = differ.finish();
        let snapshot = self
            .write_next_snapshot(
                &input,
                &diffed.previous,
                diffed.added,
                inputs.key_types_match,
            )
            .await?;
        let timings = StageTimings {
            source_read: joined.read_time,
            diff: diffed.diff_time,
            destination_write: joined.write_time,
            snapshot_write: snapshot_started.elapsed(),
            total: started.elapsed(),
        };
        log_finished(&diffed.counts, &timings);
        Ok(RunResult {
            counts: diffed.counts,
            rejected: diffed.rejected,
            timings,
            snapshot,
            snapshot_heap_bytes: diffed.peak_heap,
            journal: JournalCleanup {
                paths: [inputs.journal_read, joined.own_segments].concat(),
            },
            journal_stats: JournalStats {
                recovered_keys: inputs.recovered_keys,
                ..joined.journal_stats
            },
        })
    }

    /// Opens the destination (which checks the write target before any row is read), then
    /// starts the pipeline and the differ that feeds it.
    async fn start_stages<'a>(
        &self,
        input: &RunInput<'a>,
        stream: BatchStream,
        layout: ColumnLayout,
        previous: Snapshot,
    ) -> Result<(Pipeline, Differ<'a>), EngineError> {
        let spec = input.spec;
        let writer =
            open_destination(input.destination, spec, &layout, previous.is_empty()).await?;
        let journal = JournalWriter::new(
            self.snapshots.clone(),
            spec,
            input.run_id,
            &layout.key_fields,
        );
        let segment = journal.segment();
        let pipeline = self.start_pipeline(stream, journal, writer);
        let differ = Differ::new(spec, layout, previous, input.full_resync, segment);
        Ok((pipeline, differ))
    }

    /// Spawns the source reader, the journal and the destination writer, joined by bounded
    /// channels, and returns the differ's ends. The stages run in the current span.
    fn start_pipeline(
        &self,
        stream: BatchStream,
        journal: JournalWriter,
        writer: Box<dyn DestinationWriter>,
    ) -> Pipeline {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let (source_tx, source_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (read_time_tx, read_time_rx) = oneshot::channel();
        let read_span = info_span!(
            "source.read",
            db.system = self.source_system.as_deref(),
            db.operation = "SELECT",
            backflow.rows = tracing::field::Empty,
        );
        tasks.spawn(read_source(stream, source_tx, read_time_tx).instrument(read_span.clone()));
        let (work_tx, journal_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (journaled_tx, work_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (journal_done_tx, journal_done_rx) = oneshot::channel();
        tasks.spawn(
            async move {
                let result = journal_writes(journal, journal_rx, journaled_tx).await;
                let _ = journal_done_tx.send(result);
            }
            .instrument(info_span!("journal.write")),
        );
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (writer_done_tx, writer_done_rx) = oneshot::channel();
        let destination_system = self.destination_system.clone();
        tasks.spawn(
            async move {
                let result =
                    write_changes(writer, destination_system.as_deref(), work_rx, ack_tx).await;
                let _ = writer_done_tx.send(result);
            }
            .in_current_span(),
        );
        Pipeline {
            _tasks: tasks,
            source_rx,
            read_span,
            read_time_rx,
            work_tx,
            ack_rx,
            journal_done_rx,
            writer_done_rx,
        }
    }

    /// Writes the next snapshot, or keeps the previous file when nothing moved.
    async fn write_next_snapshot(
        &self,
        input: &RunInput<'_>,
        previous: &Snapshot,
        added: SnapshotBuilder,
        key_types_match: bool,
    ) -> Result<SnapshotRef, EngineError> {
        match input.previous {
            // Nothing moved: the previous snapshot file is still exact.
            Some(current) if key_types_match && previous.unchanged() && added.is_empty() => {
                Ok(current.clone())
            }
            _ => {
                self.snapshots
                    .write(&input.spec.name, input.run_id, previous, added)
                    .instrument(info_span!("snapshot.write"))
                    .await
            }
        }
    }
}

/// Derives the write target from the sync and its column layout, lets the destination check
/// it and opens the writer.
async fn open_destination(
    destination: &dyn Destination,
    spec: &SyncSpec,
    layout: &ColumnLayout,
    initial_load: bool,
) -> Result<Box<dyn DestinationWriter>, EngineError> {
    let target = WriteTarget {
        object: spec.object.clone(),
        schema: layout.destination_schema.clone(),
        primary_key: layout.key_fields.iter().map(|f| f.name().clone()).collect(),
        mode: match spec.mode {
            SyncMode::Upsert | SyncMode::Mirror => WriteMode::Upsert,
            SyncMode::Insert => WriteMode::Insert,
            SyncMode::Update => WriteMode::Update,
        },
        create_table: spec.create_table,
        initial_load,
        deletes: spec.mode == SyncMode::Mirror,
    };
    destination
        .check(&target)
        .await
        .map_err(EngineError::Destination)?;
    destination
        .open(&target)
        .await
        .map_err(EngineError::Destination)
}

/// The run's summary log line.
fn log_finished(counts: &RunCounts, timings: &StageTimings) {
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
}

impl Pipeline {
    /// Closes the work channel and waits for every stage to end: applies the remaining
    /// acknowledgements, surfaces a journal or writer failure (a journal that could not be
    /// stored stopped the writes, so its error explains the run), closes the writer and
    /// checks that every batch was acknowledged.
    async fn join(mut self, differ: &mut Differ<'_>) -> Result<Joined, EngineError> {
        drop(self.work_tx);
        while let Some(ack) = self.ack_rx.recv().await {
            differ.apply_ack(ack)?;
        }
        let (own_segments, journal_stats) = self
            .journal_done_rx
            .await
            .map_err(|_| EngineError::Internal("the journal task vanished".into()))??;
        let (writer, write_time) = self
            .writer_done_rx
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
        let read_time = self.read_time_rx.await.unwrap_or_default();
        Ok(Joined {
            own_segments,
            journal_stats,
            read_time,
            write_time,
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

impl<'a> Differ<'a> {
    fn new(
        spec: &'a SyncSpec,
        layout: ColumnLayout,
        previous: Snapshot,
        full_resync: bool,
        segment: Segment,
    ) -> Self {
        Self {
            // Current key names: a mapping may have renamed a key column since the last run.
            added: SnapshotBuilder::new(layout.key_fields.clone()),
            snapshot_rows: previous.len() as u64,
            classifier: Classifier::new(spec, layout, previous),
            full_resync,
            segment,
            rejected: Vec::new(),
            pending: HashMap::new(),
            next_id: 0,
            peak_heap: 0,
            diff_time: Duration::ZERO,
        }
    }

    /// Sends every change into the pipeline: the source's changed rows as they are read,
    /// then, once the guards passed, the removals of a mirror. Stops sending when the writer
    /// side is gone; joining the pipeline then reports why.
    async fn send_changes(
        &mut self,
        pipeline: &mut Pipeline,
        progress: Option<&watch::Sender<RunCounts>>,
    ) -> Result<(), EngineError> {
        let writer_gone = self.send_source_changes(pipeline, progress).await?;
        pipeline
            .read_span
            .record("backflow.rows", self.classifier.counts.read);
        if writer_gone {
            return Ok(());
        }
        self.classifier.check_guards(self.snapshot_rows)?;
        if self.classifier.spec.mode == SyncMode::Mirror {
            self.send_removals(pipeline).await?;
        }
        Ok(())
    }

    /// Classifies each source batch as it arrives and sends its rows to write, applying the
    /// acknowledgements that came back and publishing progress; true when the writer side
    /// stopped taking work.
    async fn send_source_changes(
        &mut self,
        pipeline: &mut Pipeline,
        progress: Option<&watch::Sender<RunCounts>>,
    ) -> Result<bool, EngineError> {
        while let Some(item) = pipeline.source_rx.recv().await {
            let batch = item.map_err(EngineError::Source)?;
            let t = Instant::now();
            let work = info_span!("diff", backflow.rows = batch.num_rows())
                .in_scope(|| self.classify(&batch))?;
            self.diff_time += t.elapsed();
            if let Some(work) = work {
                if pipeline.work_tx.send(work).await.is_err() {
                    return Ok(true);
                }
            }
            self.drain_acks(&mut pipeline.ack_rx)?;
            if let Some(p) = progress {
                p.send_replace(self.classifier.counts);
            }
        }
        Ok(false)
    }

    /// Sends the deletes of the snapshot keys the source no longer returned (mirror mode).
    async fn send_removals(&mut self, pipeline: &mut Pipeline) -> Result<(), EngineError> {
        let batch_size = self.classifier.spec.options.batch_size.max(1);
        let t = Instant::now();
        let deletes =
            info_span!("diff", backflow.removals = true).in_scope(|| self.removals(batch_size))?;
        self.diff_time += t.elapsed();
        for work in deletes {
            if pipeline.work_tx.send(work).await.is_err() {
                break;
            }
            self.drain_acks(&mut pipeline.ack_rx)?;
        }
        Ok(())
    }

    /// Ends the diff once the pipeline is joined, handing over what the result and the next
    /// snapshot are made of.
    fn finish(mut self) -> Diffed {
        self.note_heap();
        let Differ {
            classifier: Classifier {
                counts, previous, ..
            },
            rejected,
            added,
            peak_heap,
            diff_time,
            ..
        } = self;
        Diffed {
            counts,
            rejected,
            peak_heap,
            diff_time,
            previous,
            added,
        }
    }

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
            .layout
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
        let key_fields = &self.classifier.layout.key_fields;
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
                        &self.classifier.layout.key_fields,
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
