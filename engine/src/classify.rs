//! The read-and-classify half of a run, shared by [`Engine::run`](crate::Engine::run)
//! and the dry run [`Engine::plan`](crate::Engine::plan), so that a plan validates and
//! counts exactly what a run would: same definition checks, same key-schema check, same
//! canonicalisation, hashing, NULL-key and duplicate-key checks, same guards.
//!
//! What each path does with a classified row (send it to the destination, keep its snapshot
//! slot, or just sample its key) is the caller's, passed to [`Classifier::classify`] as a
//! closure, so the per-row loop is monomorphised for each path and costs a run nothing extra.

use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::Field;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use backflow_connector_core::{BatchStream, ConnectorError, ReadOptions, Source};
use futures::StreamExt;
use hashbrown::HashSet;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use xxhash_rust::xxh3::xxh3_128;

use crate::encoding::RowEncoder;
use crate::error::EngineError;
use crate::journal::{row_hash, UNKNOWN_HASH};
use crate::layout::ColumnLayout;
use crate::result::RunCounts;
use crate::snapshot::{describe_key_schema, same_key_types, Snapshot, SnapshotRef};
use crate::spec::{SyncMode, SyncSpec};
use crate::store::SnapshotStore;

/// What a diff starts from, for a run and a dry run alike: the sync validated against its
/// source's schema and its previous snapshot, before any row is read.
pub(crate) struct DiffInputs {
    /// The source's result, not yet polled.
    pub stream: BatchStream,
    /// The column layout derived from the source's declared schema.
    pub layout: ColumnLayout,
    /// The previous snapshot, indexed; empty when there is none, or when a full resync runs
    /// over a snapshot whose key types changed.
    pub previous: Snapshot,
    /// False when `previous` was dropped because the key types changed (full resync only).
    pub key_types_match: bool,
    /// The journal segments of earlier uncommitted attempts that were read (and folded into
    /// `previous`); the run clears them once it commits.
    pub journal_read: Vec<String>,
    /// Keys those segments made unknown.
    pub recovered_keys: u64,
}

/// Validates the options, opens the source query, checks the definition against its schema
/// and loads the previous snapshot, refusing a key-schema change unless `full_resync`, then
/// folds in the keys that uncommitted attempts journaled, as unknown.
pub(crate) async fn prepare_diff(
    snapshots: &SnapshotStore,
    spec: &SyncSpec,
    source: &dyn Source,
    previous: Option<&SnapshotRef>,
    full_resync: bool,
) -> Result<DiffInputs, EngineError> {
    let batch_size = spec.options.batch_size.max(1);
    if !(0.0..=1.0).contains(&spec.options.max_delete_fraction) {
        return Err(EngineError::definition(
            "max_delete_fraction",
            "must be between 0.0 and 1.0",
        ));
    }

    let stream = source
        .read(&spec.query, ReadOptions { batch_size })
        .await
        .map_err(EngineError::Source)?;
    let layout = ColumnLayout::new(spec, &stream.schema())?;

    let committed = previous;
    let (previous, key_types_match) = match previous {
        Some(r) => {
            let snapshot = snapshots.load(r).await?;
            let matches = same_key_types(snapshot.key_fields(), &layout.key_fields);
            if !matches && !full_resync {
                return Err(EngineError::KeySchemaChanged {
                    previous: describe_key_schema(snapshot.key_fields()),
                    current: describe_key_schema(&layout.key_fields),
                });
            }
            (snapshot, matches)
        }
        None => (Snapshot::empty(layout.key_fields.clone()), true),
    };
    let previous = if key_types_match {
        previous
    } else {
        warn!(
            sync = %spec.name,
            "primary key types changed; full resync runs without deleting old keys"
        );
        Snapshot::empty(layout.key_fields.clone())
    };
    let recovered = snapshots
        .recover_journal(spec, &layout.key_fields, committed)
        .await?;
    if !recovered.keys.is_empty() {
        info!(
            sync = %spec.name,
            keys = recovered.keys.len(),
            segments = recovered.paths.len(),
            "keys written by uncommitted attempts are treated as unknown"
        );
    }
    let recovered_keys = recovered.keys.len() as u64;
    let previous = previous.absorb_journal(&recovered.keys)?;
    Ok(DiffInputs {
        stream,
        layout,
        previous,
        key_types_match,
        journal_read: recovered.paths,
        recovered_keys,
    })
}

/// Forwards the source's batches into a bounded channel, so the source keeps reading while
/// the caller classifies; stops after the first error. Reports the time spent waiting on the
/// source.
pub(crate) async fn read_source(
    mut stream: BatchStream,
    tx: mpsc::Sender<Result<RecordBatch, ConnectorError>>,
    done: oneshot::Sender<Duration>,
) {
    let mut waited = Duration::ZERO;
    loop {
        let t = Instant::now();
        let item = stream.next().await;
        waited += t.elapsed();
        let Some(item) = item else { break };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    let _ = done.send(waited);
}

/// Renders a primary key for messages: `id=42` or `(a=1, b=x)`.
pub(crate) fn render_key(fields: &[Field], columns: &[ArrayRef], row: usize) -> String {
    let options = FormatOptions::default().with_null("NULL");
    let parts: Vec<String> = fields
        .iter()
        .zip(columns)
        .map(|(f, c)| {
            let value = ArrayFormatter::try_new(c.as_ref(), &options)
                .map(|fmt| fmt.value(row).to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{}={}", f.name(), value)
        })
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// One source row, classified against the previous snapshot.
pub(crate) struct Row<'b> {
    /// The row's position in the batch.
    pub index: usize,
    /// The row's encoded primary key.
    pub key: &'b [u8],
    /// The hash of the row's mapped values.
    pub hash: u128,
    /// The key's slot in the previous snapshot; `None` for a key neither a committed run nor
    /// an uncommitted attempt wrote.
    pub slot: Option<usize>,
    /// Whether the key is new or its hash differs from the snapshot's.
    pub changed: bool,
    /// Whether the key is counted as added: no committed run wrote it (an uncommitted attempt
    /// may have).
    pub added: bool,
    /// Whether the destination's row is unknown: an uncommitted attempt journaled the key,
    /// so it is sent whatever the mode would skip.
    pub unknown: bool,
    key_fields: &'b [Field],
    key_columns: &'b [ArrayRef],
}

impl Row<'_> {
    /// The row's key rendered as `col=value`, as rejected rows and errors show it.
    pub fn render_key(&self) -> String {
        render_key(self.key_fields, self.key_columns, self.index)
    }
}

/// The classification state across batches: the previous snapshot (whose seen bits record
/// which keys the source returned), the hashes of keys new to this read (to catch
/// duplicates), and the classification counts.
pub(crate) struct Classifier<'a> {
    /// The sync.
    pub spec: &'a SyncSpec,
    /// The column layout.
    pub layout: ColumnLayout,
    /// The previous snapshot.
    pub previous: Snapshot,
    /// Hashes of the added keys seen so far.
    pub new_keys: HashSet<u128>,
    /// `read`, `added`, `changed` and `unchanged` are kept here; `removed` by
    /// [`Classifier::check_guards`]. The rest belongs to the caller.
    pub counts: RunCounts,
    key_buf: Vec<u8>,
    row_buf: Vec<u8>,
}

impl<'a> Classifier<'a> {
    /// A classifier for `spec` against `previous`.
    pub fn new(spec: &'a SyncSpec, layout: ColumnLayout, previous: Snapshot) -> Self {
        Self {
            spec,
            layout,
            previous,
            new_keys: HashSet::new(),
            counts: RunCounts::default(),
            key_buf: Vec::with_capacity(64),
            row_buf: Vec::with_capacity(1024),
        }
    }

    /// Canonicalises one source batch, checks its keys, hashes and classifies every row,
    /// counts it, and hands it to `visit` with the previous snapshot and the counts, for the
    /// caller's own bookkeeping. Returns the batch under destination names (`None` when it is
    /// empty).
    pub fn classify<F>(
        &mut self,
        batch: &RecordBatch,
        mut visit: F,
    ) -> Result<Option<RecordBatch>, EngineError>
    where
        F: FnMut(&mut Snapshot, &mut RunCounts, Row<'_>),
    {
        let batch = self.layout.to_destination(batch)?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let key_columns: Vec<ArrayRef> = self
            .layout
            .key_indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        for (field, column) in self.layout.key_fields.iter().zip(&key_columns) {
            if column.null_count() > 0 {
                let row = (0..n).find(|&r| column.is_null(r)).unwrap_or(0);
                return Err(EngineError::NullKey {
                    column: field.name().clone(),
                    sample: render_key(&self.layout.key_fields, &key_columns, row),
                });
            }
        }
        let schema = batch.schema();
        let all_fields: Vec<&Field> = schema.fields().iter().map(|f| f.as_ref()).collect();
        let all_columns: Vec<&ArrayRef> = batch.columns().iter().collect();
        let key_field_refs: Vec<&Field> = self.layout.key_fields.iter().collect();
        let key_column_refs: Vec<&ArrayRef> = key_columns.iter().collect();
        let row_encoder = RowEncoder::new(&all_fields, &all_columns)?;
        let key_encoder = RowEncoder::new(&key_field_refs, &key_column_refs)?;

        for row in 0..n {
            self.key_buf.clear();
            key_encoder.encode(row, &mut self.key_buf);
            self.row_buf.clear();
            row_encoder.encode(row, &mut self.row_buf);
            let hash = row_hash(xxh3_128(&self.row_buf));
            self.counts.read += 1;
            let (slot, changed, added, unknown) = match self.previous.lookup(&self.key_buf) {
                Some((slot, old)) => {
                    if !self.previous.mark_seen(slot) {
                        return Err(EngineError::DuplicateKey {
                            key: render_key(&self.layout.key_fields, &key_columns, row),
                        });
                    }
                    let added = self.previous.is_journal_only(slot);
                    if added {
                        self.counts.added += 1;
                    } else if old == hash {
                        self.counts.unchanged += 1;
                    } else {
                        self.counts.changed += 1;
                    }
                    (Some(slot), old != hash, added, old == UNKNOWN_HASH)
                }
                None => {
                    if !self.new_keys.insert(xxh3_128(&self.key_buf)) {
                        return Err(EngineError::DuplicateKey {
                            key: render_key(&self.layout.key_fields, &key_columns, row),
                        });
                    }
                    self.counts.added += 1;
                    (None, true, true, false)
                }
            };
            visit(
                &mut self.previous,
                &mut self.counts,
                Row {
                    index: row,
                    key: &self.key_buf,
                    hash,
                    slot,
                    changed,
                    added,
                    unknown,
                    key_fields: &self.layout.key_fields,
                    key_columns: &key_columns,
                },
            );
        }
        Ok(Some(batch))
    }

    /// After the whole source was read: counts the removed keys, and fails before any delete
    /// when the result looks like an upstream accident (an empty source over a non-empty
    /// snapshot, or a mirror that would delete more than `max_delete_fraction`).
    pub fn check_guards(&mut self, snapshot_rows: u64) -> Result<(), EngineError> {
        let options = &self.spec.options;
        if self.counts.read == 0 && snapshot_rows > 0 && !options.allow_empty_source {
            return Err(EngineError::EmptySource { snapshot_rows });
        }
        let removed = self.previous.unseen_count() as u64;
        self.counts.removed = removed;
        if self.spec.mode == SyncMode::Mirror
            && removed > 0
            && removed as f64 > options.max_delete_fraction * snapshot_rows as f64
            && !(self.counts.read == 0 && options.allow_empty_source)
        {
            return Err(EngineError::TooManyDeletes {
                removed,
                snapshot_rows,
                max_delete_fraction: options.max_delete_fraction,
            });
        }
        Ok(())
    }
}
