//! What a run reports: counts, rejected rows and where the time went.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::{JournalCleanup, JournalStats};
use crate::snapshot::SnapshotRef;

/// Row counts of a run. `added + changed + unchanged == read`; `written`, `deleted`, `failed`
/// and `skipped` say what the destination did with the rows sent to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Rows read from the source.
    pub read: u64,
    /// Keys not in the previous snapshot.
    pub added: u64,
    /// Keys whose row hash differs from the previous snapshot.
    pub changed: u64,
    /// Keys whose row hash equals the previous snapshot.
    pub unchanged: u64,
    /// Snapshot keys that left the query result.
    pub removed: u64,
    /// Rows the destination acknowledged as written.
    pub written: u64,
    /// Keys the destination acknowledged as deleted (mirror mode).
    pub deleted: u64,
    /// Rows or deletes the destination refused; they are retried next run.
    pub failed: u64,
    /// Rows the mode chose not to apply (insert on an existing key, update of a missing key,
    /// a changed row in insert mode).
    pub skipped: u64,
}

/// Whether a rejected row was being written or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedOperation {
    /// An insert or update.
    Write,
    /// A mirror-mode delete.
    Delete,
}

/// A row the destination refused, kept queryable for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// The row's primary key, rendered as `col=value`.
    pub key: String,
    /// The column at fault, when the destination says.
    pub column: Option<String>,
    /// The destination's own message.
    pub message: String,
    /// What was being done to the row.
    pub operation: RejectedOperation,
}

/// Wall time spent in each stage. Stages overlap (the pipeline reads, diffs and writes at
/// once), so these add up to more than `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Waiting on the source for batches.
    pub source_read: Duration,
    /// Canonicalising, hashing and classifying rows.
    pub diff: Duration,
    /// Waiting on the destination to apply writes and deletes.
    pub destination_write: Duration,
    /// Writing the new snapshot.
    pub snapshot_write: Duration,
    /// The whole run.
    pub total: Duration,
}

/// The outcome of a successful run. The run is not committed until the caller stores
/// `snapshot` as the sync's current snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Row counts.
    pub counts: RunCounts,
    /// Rejected rows, at most the sync's `max_rejected_rows`; `counts.failed` is exact.
    pub rejected: Vec<RejectedRow>,
    /// Time per stage.
    pub timings: StageTimings,
    /// The snapshot this run wrote.
    pub snapshot: SnapshotRef,
    /// Peak heap bytes held by the previous and next snapshot indexes.
    pub snapshot_heap_bytes: usize,
    /// The journal segments to delete once `snapshot` is committed
    /// ([`SnapshotStore::clear_journal`](crate::SnapshotStore::clear_journal)).
    #[serde(skip)]
    pub journal: JournalCleanup,
    /// What journaling this run's writes cost.
    #[serde(default, skip_deserializing)]
    pub journal_stats: JournalStats,
}
