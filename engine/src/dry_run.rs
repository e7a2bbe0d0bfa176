//! A dry run: what a run would change, without changing anything. Backs the control plane's
//! `PlanSync` RPC, so a user can see the effect of a new or edited sync (and catch a bad
//! primary key, duplicate keys or an emptied source) before the destination is touched.
//!
//! A plan reads the whole source and classifies it against the previous snapshot with the
//! same code as [`Engine::run`] (the private `classify` module), so its validation,
//! errors and counts are the run's. It never opens the destination, never writes a snapshot
//! and never deletes anything. Memory is what a run's differ holds: the previous snapshot's
//! index and seen bits, the hashes of added keys, and at most `sample_size` rendered keys of
//! each kind; rows are never buffered.

use std::time::Instant;

use backflow_connector_core::Source;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{info, info_span, Instrument};

use crate::classify::{prepare_diff, read_source, render_key, Classifier, DiffInputs};
use crate::encoding::decode_keys;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::result::RunCounts;
use crate::snapshot::SnapshotRef;
use crate::spec::SyncSpec;

/// Batches buffered between the source reader and the classifier, as in a run.
const CHANNEL_DEPTH: usize = 2;

/// Everything a dry run needs: a run's input without the destination, the run id (nothing is
/// written, so nothing needs naming) or progress reporting, plus how many keys to sample.
pub struct PlanInput<'a> {
    /// The sync, as it would run (an edited definition can be planned before it is saved).
    pub spec: &'a SyncSpec,
    /// Where rows come from; the whole query result is read.
    pub source: &'a dyn Source,
    /// The snapshot of the last committed run, if any; it is only read.
    pub previous: Option<&'a SnapshotRef>,
    /// Plan a full resync: a key-schema change is then accepted, as a run would accept it.
    pub full_resync: bool,
    /// At most this many keys are sampled of each kind (added, changed, removed), so a plan of
    /// a huge change stays small.
    pub sample_size: usize,
}

/// What a run would do, from a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanResult {
    /// The run's classification counts: `read`, `added`, `changed`, `unchanged` and
    /// `removed`, counted exactly as a run in the sync's mode counts them (so `added` and
    /// `changed` are classifications, not writes: insert and update modes may skip some).
    /// `written`, `deleted`, `failed` and `skipped` need the destination and stay 0.
    pub counts: RunCounts,
    /// The first `sample_size` added keys in source order, rendered like
    /// [`RejectedRow::key`](crate::RejectedRow::key) (`col=value`).
    pub sample_added: Vec<String>,
    /// The first `sample_size` changed keys in source order, rendered the same way.
    pub sample_changed: Vec<String>,
    /// The first `sample_size` removed keys (in the previous snapshot, not returned by the
    /// source) in snapshot order, rendered the same way; mirror mode would delete them.
    pub sample_removed: Vec<String>,
}

impl Engine {
    /// Plans a run: reads the source and diffs it against `previous` exactly as
    /// [`Engine::run`] would, failing with the same errors (definition, NULL or duplicate key,
    /// key-schema change, empty source, too many deletes), and reports the counts and sample
    /// keys. The destination is never opened and no snapshot is written or deleted.
    pub async fn plan(&self, input: PlanInput<'_>) -> Result<PlanResult, EngineError> {
        let span = info_span!("sync.plan", backflow.sync = %input.spec.name);
        self.plan_inner(input).instrument(span).await
    }

    async fn plan_inner(&self, input: PlanInput<'_>) -> Result<PlanResult, EngineError> {
        let started = Instant::now();
        let DiffInputs {
            stream,
            layout,
            previous,
            ..
        } = prepare_diff(
            self.snapshots(),
            input.spec,
            input.source,
            input.previous,
            input.full_resync,
        )
        .await?;

        // Dropping the set on an early return stops the reader.
        let mut tasks: JoinSet<()> = JoinSet::new();
        let (source_tx, mut source_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (read_time_tx, _read_time_rx) = oneshot::channel();
        tasks.spawn(
            read_source(stream, source_tx, read_time_tx).instrument(info_span!("source.read")),
        );

        let sample_size = input.sample_size;
        let snapshot_rows = previous.len() as u64;
        let mut classifier = Classifier::new(input.spec, layout, previous);
        let mut result = PlanResult::default();
        while let Some(item) = source_rx.recv().await {
            let batch = item.map_err(EngineError::Source)?;
            let (added, changed) = (&mut result.sample_added, &mut result.sample_changed);
            classifier.classify(&batch, |_, _, row| {
                let sample = if row.added {
                    &mut *added
                } else if row.changed {
                    &mut *changed
                } else {
                    return;
                };
                if sample.len() < sample_size {
                    sample.push(row.render_key());
                }
            })?;
        }
        classifier.check_guards(snapshot_rows)?;

        let previous = &classifier.previous;
        let key_fields = &classifier.layout.key_fields;
        let slots: Vec<usize> = previous.unseen().take(sample_size).collect();
        let columns = decode_keys(key_fields, slots.iter().map(|&s| previous.key(s)))?;
        result.sample_removed = (0..slots.len())
            .map(|row| render_key(key_fields, &columns, row))
            .collect();
        result.counts = classifier.counts;

        info!(
            read = result.counts.read,
            added = result.counts.added,
            changed = result.counts.changed,
            unchanged = result.counts.unchanged,
            removed = result.counts.removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sync plan finished"
        );
        Ok(result)
    }
}
