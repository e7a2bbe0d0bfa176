//! The Prometheus registry of a process: the `metrics` facade's global recorder, rendered in
//! the Prometheus text format by the admin server's `/metrics`.
//!
//! Libraries record through the facade (`metrics::counter!`) and need no handle; the names
//! and their help texts are listed here, in one place, with the histograms' buckets.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter of finished runs by final state.
pub const RUNS_TOTAL: &str = "backflow_runs_total";
/// Gauge of runs queued or running, by state.
pub const RUNS: &str = "backflow_runs";
/// Histogram of the time from a run's first lease to its end.
pub const RUN_DURATION: &str = "backflow_run_duration_seconds";
/// Gauge of runs ready for a worker now.
pub const QUEUE_DEPTH: &str = "backflow_queue_depth";
/// Gauge of the age of the oldest ready run.
pub const QUEUE_OLDEST_AGE: &str = "backflow_queue_oldest_age_seconds";
/// Counter of leases that expired (a worker stopped heartbeating).
pub const LEASE_EXPIRATIONS_TOTAL: &str = "backflow_lease_expirations_total";
/// Counter of rows read, written, rejected and deleted, by sync and kind; recorded by workers.
pub const ROWS_TOTAL: &str = "backflow_rows_total";
/// Gauge of a worker's run slots, by state (`busy`, `free`).
pub const WORKER_SLOTS: &str = "backflow_worker_slots";

const RUN_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
const GRPC_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Why the registry could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics registry: {0}")]
pub struct MetricsError(String);

/// Installs the process-wide registry (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .clone()
        .map_err(MetricsError)
}

fn build() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RUN_DURATION.into()), RUN_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(crate::telemetry::grpc::GRPC_REQUEST_DURATION.into()),
            GRPC_BUCKETS,
        )?
        .install_recorder()?;
    describe_counter!(RUNS_TOTAL, "Runs finished, by final state.");
    describe_gauge!(RUNS, "Runs queued or running now, by state.");
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "Time from a run's first lease to its end."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Runs ready for a worker now (not waiting out a retry backoff)."
    );
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest run ready for a worker; 0 when none is."
    );
    describe_counter!(
        LEASE_EXPIRATIONS_TOTAL,
        "Leases that expired because their worker stopped heartbeating."
    );
    describe_counter!(
        ROWS_TOTAL,
        "Rows read, written, rejected and deleted, by sync."
    );
    describe_gauge!(WORKER_SLOTS, "This worker's run slots, busy or free.");
    describe_counter!(
        crate::telemetry::grpc::GRPC_REQUESTS_TOTAL,
        "gRPC requests served, by method and status code."
    );
    describe_histogram!(
        crate::telemetry::grpc::GRPC_REQUEST_DURATION,
        Unit::Seconds,
        "Latency of gRPC requests, by method."
    );
    Ok(handle)
}
