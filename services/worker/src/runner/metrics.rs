//! The worker's Prometheus metrics, recorded through the `metrics` facade: the process that
//! hosts the worker installs the exporter and serves `/metrics`; without one these are no-ops.
//!
//! - `backflow_rows_total{sync, kind}`: rows read, written, rejected and deleted, counted as
//!   runs progress (not only when they end), so a scrape during a run shows them move.
//! - `backflow_worker_slots{state = "busy" | "free"}`: slots running a lease or polling.

use std::sync::{Mutex, PoisonError};

use backflow_engine::RunCounts;

use backflow_common::metrics::{ROWS_TOTAL, WORKER_SLOTS};

/// Turns the cumulative counts of one run into increments of `backflow_rows_total`.
pub(crate) struct RowMetrics {
    sync: String,
    reported: Mutex<RunCounts>,
}

impl RowMetrics {
    /// Nothing counted yet for a run of `sync`.
    pub(crate) fn new(sync: &str) -> Self {
        Self {
            sync: sync.to_owned(),
            reported: Mutex::new(RunCounts::default()),
        }
    }

    /// Adds what `counts` has beyond the counts seen last.
    pub(crate) fn advance(&self, counts: &RunCounts) {
        let mut last = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, now, before) in [
            ("read", counts.read, last.read),
            ("written", counts.written, last.written),
            ("rejected", counts.failed, last.failed),
            ("deleted", counts.deleted, last.deleted),
        ] {
            if now > before {
                metrics::counter!(ROWS_TOTAL, "sync" => self.sync.clone(), "kind" => kind)
                    .increment(now - before);
            }
        }
        *last = *counts;
    }
}

/// Marks one slot busy for as long as the guard lives.
pub(crate) struct BusySlot;

impl BusySlot {
    /// A slot took a lease.
    pub(crate) fn start() -> Self {
        metrics::gauge!(WORKER_SLOTS, "state" => "busy").increment(1.0);
        metrics::gauge!(WORKER_SLOTS, "state" => "free").decrement(1.0);
        BusySlot
    }
}

impl Drop for BusySlot {
    fn drop(&mut self) {
        metrics::gauge!(WORKER_SLOTS, "state" => "busy").decrement(1.0);
        metrics::gauge!(WORKER_SLOTS, "state" => "free").increment(1.0);
    }
}

/// Publishes a worker's slot count at start (all free) or its removal at stop.
pub(crate) fn slots_added(count: usize, sign: f64) {
    metrics::gauge!(WORKER_SLOTS, "state" => "free").increment(sign * count as f64);
}
