//! The control plane's metrics and the spans it makes outside a request: a run's time in the
//! queue, and the root span of a scheduled run.
//!
//! Counters move where runs end (`backflow_runs_total{state}`, `backflow_run_duration_seconds`,
//! `backflow_lease_expirations_total`); the queue gauges (`backflow_runs{state}`,
//! `backflow_queue_depth`, `backflow_queue_oldest_age_seconds`) are read from the store on
//! each scrape, so every replica reports the shared queue and they are never stale.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backflow_common::metrics::{
    LEASE_EXPIRATIONS_TOTAL, QUEUE_DEPTH, QUEUE_OLDEST_AGE, RUNS, RUNS_TOTAL, RUN_DURATION,
};
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::KeyValue;

use crate::model::{now_millis, Millis, RunRecord, RunState};
use crate::store::Store;

/// Counts a run that reached a final state, and its duration (first lease to end).
pub fn run_finished(run: &RunRecord) {
    if !matches!(
        run.state,
        RunState::Succeeded | RunState::Failed | RunState::Cancelled
    ) {
        return;
    }
    metrics::counter!(RUNS_TOTAL, "state" => run.state.as_str()).increment(1);
    if let (Some(started), Some(ended)) = (run.started_at, run.ended_at) {
        let seconds = Duration::from_millis(u64::try_from(ended - started).unwrap_or(0));
        metrics::histogram!(RUN_DURATION).record(seconds.as_secs_f64());
    }
}

/// Counts leases that expired.
pub fn leases_expired(count: usize) {
    metrics::counter!(LEASE_EXPIRATIONS_TOTAL).increment(count as u64);
}

/// Sets the queue gauges from the store; a store that cannot answer leaves them as they were
/// (and `/readyz` reports it).
pub async fn refresh_queue_gauges(store: &Store) {
    let now = now_millis();
    match store.queue_stats(now).await {
        Ok(stats) => {
            metrics::gauge!(RUNS, "state" => "queued").set(stats.queued as f64);
            metrics::gauge!(RUNS, "state" => "running").set(stats.running as f64);
            metrics::gauge!(QUEUE_DEPTH).set(stats.queued as f64);
            let age = stats
                .oldest_queued_at
                .map_or(0, |oldest| now.saturating_sub(oldest).max(0));
            metrics::gauge!(QUEUE_OLDEST_AGE).set(age as f64 / 1000.0);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the queue for metrics"),
    }
}

fn system_time(millis: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// Records the span `run.queued` of a run just leased: from when it became ready (queued, or
/// its retry backoff ended) until now, in the run's trace. Nothing when the run is untraced
/// or tracing is off.
pub fn run_leased(run: &RunRecord, sync: &str) {
    let Some(traceparent) = run.traceparent.as_deref() else {
        return;
    };
    let parent = backflow_common::trace_context::from_traceparent(traceparent);
    if !parent.span().span_context().is_valid() {
        return;
    }
    let ready_since = if run.attempt <= 1 {
        run.created_at
    } else {
        run.not_before
    };
    let tracer = opentelemetry::global::tracer("backflow");
    let mut span = tracer
        .span_builder("run.queued")
        .with_start_time(system_time(ready_since))
        .with_attributes([
            KeyValue::new("backflow.sync", sync.to_owned()),
            KeyValue::new("backflow.run_id", run.id.clone()),
            KeyValue::new("backflow.attempt", i64::from(run.attempt)),
            KeyValue::new("backflow.worker", run.worker_id.clone().unwrap_or_default()),
        ])
        .start_with_context(&tracer, &parent);
    span.end_with_timestamp(SystemTime::now());
}
