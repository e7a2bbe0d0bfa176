//! The `backflow.v1` services. Each handler validates its request, calls the store, and maps
//! errors through [`crate::error`] — the one place errors become `tonic::Status`.

mod connections;
mod runs;
mod syncs;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::{now_millis, Millis, NewRun, Schedule};
use crate::store::Store;

pub use connections::ConnectionApi;
pub use runs::RunApi;
pub use syncs::SyncApi;
pub use workers::WorkerApi;

/// Knobs of the control plane. Every worker-facing timeout derives from `heartbeat_interval`.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// How often workers heartbeat; a lease lives `3 × heartbeat_interval + 2 s`.
    pub heartbeat_interval: Duration,
    /// Where workers keep snapshots: a directory or a `file://` URL, handed out with leases.
    pub snapshot_store: String,
    /// First retry delay of a retryable failure; doubles per attempt, at most 5 minutes.
    pub retry_backoff: Duration,
    /// How often the scheduler and the lease reaper look at the store.
    pub tick: Duration,
}

impl ControlPlaneConfig {
    /// Defaults for `snapshot_store`.
    pub fn new(snapshot_store: impl Into<String>) -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            snapshot_store: snapshot_store.into(),
            retry_backoff: Duration::from_secs(10),
            tick: Duration::from_secs(1),
        }
    }

    /// How long a lease lives without a heartbeat.
    pub fn lease_ttl(&self) -> Duration {
        self.heartbeat_interval * 3 + Duration::from_secs(2)
    }

    /// Delay before attempt `attempt + 1` after a retryable failure of `attempt`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        (self.retry_backoff * factor).min(Duration::from_secs(300))
    }
}

/// State shared by every service and the scheduler of one control-plane process.
#[derive(Debug)]
pub struct ControlPlane {
    /// The store.
    pub store: Store,
    /// Configuration.
    pub config: ControlPlaneConfig,
    /// Signalled when a run is queued, so long-polling workers lease it at once.
    pub work_available: Notify,
    /// Signalled when a run changes, so WatchRun streams react at once.
    pub run_changed: Notify,
    /// Cancelled when the process stops: long polls answer "no work" and watch streams end,
    /// so a graceful stop never waits on a worker's or a client's open call.
    pub stopping: CancellationToken,
}

impl ControlPlane {
    /// A control plane over `store`.
    pub fn new(store: Store, config: ControlPlaneConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            work_available: Notify::new(),
            run_changed: Notify::new(),
            stopping: CancellationToken::new(),
        })
    }

    /// Queues a run and wakes waiting workers.
    pub async fn enqueue(
        &self,
        run: &NewRun,
    ) -> Result<crate::model::Enqueued, crate::error::ApiError> {
        let enqueued = self.store.enqueue_run(run, now_millis()).await?;
        if !enqueued.coalesced {
            self.work_available.notify_waiters();
            self.run_changed.notify_waiters();
        }
        Ok(enqueued)
    }

    fn lease_ttl_ms(&self) -> i64 {
        i64::try_from(self.config.lease_ttl().as_millis()).unwrap_or(i64::MAX)
    }
}

/// When an interval or cron schedule next fires after `now`; `None` for other schedules.
pub fn next_fire(schedule: Option<&Schedule>, now: Millis) -> Option<Millis> {
    match schedule? {
        Schedule::Every { seconds } => {
            Some(now.saturating_add(i64::try_from(*seconds).unwrap_or(i64::MAX / 2000) * 1000))
        }
        Schedule::Cron { expression } => {
            let cron = crate::convert::parse_cron(expression).ok()?;
            let at = chrono::DateTime::from_timestamp_millis(now)?;
            cron.find_next_occurrence(&at, false)
                .ok()
                .map(|t| t.timestamp_millis())
        }
        Schedule::AfterSync { .. } => None,
    }
}
