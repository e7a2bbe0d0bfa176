//! The control plane's records, independent of the wire format (proto) and of the store's SQL,
//! so the API layer, the queue and the scheduler agree on one meaning of each field.

use backflow_engine::{Mapping, RunCounts, StageTimings, SyncMode, SyncOptions};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. Every timestamp is taken from the control plane's
/// clock in Rust rather than the database's, so SQLite and PostgreSQL behave the same.
pub type Millis = i64;

/// The current time in milliseconds since the epoch.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A named connection: a connector type and its config, secrets as references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The id part of `connections/{id}`.
    pub id: String,
    /// Connector type (`postgres`, `files`, `sqlite`, …).
    pub kind: String,
    /// The connector's raw config.
    pub config: serde_json::Value,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// When a sync runs by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// A fixed interval.
    Every {
        /// Seconds between runs.
        seconds: u64,
    },
    /// A cron expression, evaluated in UTC.
    Cron {
        /// The expression as written.
        expression: String,
    },
    /// After each successful run of another sync.
    AfterSync {
        /// The id of that sync.
        sync: String,
    },
}

/// What a sync does, as the user defined it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncDefinition {
    /// Id of the source connection.
    pub source_connection: String,
    /// The query whose result is synced.
    pub query: String,
    /// Primary-key columns of the query result.
    pub primary_key: Vec<String>,
    /// Id of the destination connection.
    pub destination_connection: String,
    /// Table or collection on the destination.
    pub object: String,
    /// How rows are applied.
    pub mode: SyncMode,
    /// Create the object when missing.
    pub create_table: bool,
    /// Other syncs may write the same object, when they say so too. Without it, a second
    /// sync writing the object of another is refused, since the two would overwrite (or, in
    /// mirror mode, delete) each other's rows. Absent in definitions stored before it existed.
    #[serde(default)]
    pub shared: bool,
    /// Renames from query columns to destination columns.
    pub mappings: Vec<Mapping>,
    /// When the sync runs by itself.
    pub schedule: Option<Schedule>,
    /// The engine's knobs.
    pub options: SyncOptions,
    /// Attempts of a run before a retryable failure is final.
    pub max_attempts: u32,
}

/// The default of [`SyncDefinition::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Where a sync's last committed snapshot is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPointer {
    /// Path inside the snapshot store.
    pub path: String,
    /// Keys in the snapshot.
    pub rows: u64,
}

/// A stored sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The id part of `syncs/{id}`.
    pub id: String,
    /// The definition.
    pub definition: SyncDefinition,
    /// Paused syncs are not scheduled and refuse triggers.
    pub paused: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Last change of the definition or the paused flag.
    pub updated_at: Millis,
    /// The newest run, if any.
    pub last_run_id: Option<String>,
    /// The last committed snapshot; `None` before the first successful run.
    pub snapshot: Option<SnapshotPointer>,
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Finished and committed.
    Succeeded,
    /// Finished with an error after its last attempt.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl RunState {
    /// The value stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored `state` column.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunState::Queued,
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "cancelled" => RunState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// TriggerSync.
    Manual,
    /// An interval or cron schedule.
    Schedule,
    /// Another sync's success.
    AfterSync,
}

impl RunTrigger {
    /// The value stored in the `trigger_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Manual => "manual",
            RunTrigger::Schedule => "schedule",
            RunTrigger::AfterSync => "after_sync",
        }
    }

    /// Parses a stored `trigger_kind` column.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "manual" => RunTrigger::Manual,
            "schedule" => RunTrigger::Schedule,
            "after_sync" => RunTrigger::AfterSync,
            _ => return None,
        })
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Stable code (`source_error`, `lease_expired`, `cancelled`, …).
    pub code: String,
    /// What went wrong, without secrets.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

/// One run of a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The id part of `runs/{id}`: a UUIDv7, so ids sort by creation time.
    pub id: String,
    /// The sync.
    pub sync_id: String,
    /// Where the run is.
    pub state: RunState,
    /// What started it.
    pub trigger: RunTrigger,
    /// Attempts leased so far.
    pub attempt: u32,
    /// Attempts allowed, copied from the sync when queued.
    pub max_attempts: u32,
    /// Ignore the snapshot's hashes.
    pub full_resync: bool,
    /// Counts so far, or final.
    pub counts: RunCounts,
    /// Time per stage, once succeeded.
    pub timings: Option<StageTimings>,
    /// The last attempt's error.
    pub error: Option<RunError>,
    /// A user asked to cancel while running.
    pub cancel_requested: bool,
    /// Rows the destination refused (exact).
    pub rejected_count: u64,
    /// The caller's idempotency key, if any.
    pub request_id: Option<String>,
    /// W3C traceparent stored when queued.
    pub traceparent: Option<String>,
    /// When queued.
    pub created_at: Millis,
    /// When the current attempt was leased.
    pub started_at: Option<Millis>,
    /// When the run reached a final state.
    pub ended_at: Option<Millis>,
    /// A queued run is not leased before this time (retry backoff).
    pub not_before: Millis,
    /// The current lease, while running.
    pub lease_id: Option<String>,
    /// The current lease's deadline, while running.
    pub lease_deadline: Option<Millis>,
    /// The worker holding the lease.
    pub worker_id: Option<String>,
}

/// A row the destination refused, as stored.
pub use backflow_engine::RejectedRow;

/// Identifies one attempt of one run; every worker report carries it (fencing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRef {
    /// The run id.
    pub run_id: String,
    /// The lease id granted with the attempt.
    pub lease_id: String,
    /// The attempt number.
    pub attempt: u32,
}

/// A granted lease with everything a worker needs to execute the run.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The run, already in state `running` with its new attempt and lease.
    pub run: RunRecord,
    /// The sync as it is now.
    pub sync: SyncRecord,
    /// Its source connection.
    pub source: ConnectionRecord,
    /// Its destination connection.
    pub destination: ConnectionRecord,
}

/// The control plane's view of a lease after a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    /// False when the lease expired or was re-granted.
    pub valid: bool,
    /// A user asked to cancel the run.
    pub cancel_requested: bool,
    /// The (extended) deadline.
    pub deadline: Millis,
}

/// A request to queue a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The sync.
    pub sync_id: String,
    /// What starts it.
    pub trigger: RunTrigger,
    /// Ignore the snapshot's hashes.
    pub full_resync: bool,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// W3C traceparent of the caller.
    pub traceparent: Option<String>,
}

/// What queuing a run did.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// The run created, or the one returned instead.
    pub run: RunRecord,
    /// True when a run was already queued or running and no new one was created.
    pub coalesced: bool,
}

/// The result a worker commits with CompleteRun.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Final counts.
    pub counts: RunCounts,
    /// Time per stage.
    pub timings: StageTimings,
    /// The new snapshot.
    pub snapshot: SnapshotPointer,
    /// Rows the destination refused (capped).
    pub rejected: Vec<RejectedRow>,
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this sync's runs.
    pub sync_id: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
}

/// Depth of the queue, for metrics and autoscaling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Runs waiting for a worker.
    pub queued: u64,
    /// Runs leased.
    pub running: u64,
    /// Creation time of the oldest queued run.
    pub oldest_queued_at: Option<Millis>,
}
