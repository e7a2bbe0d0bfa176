//! Executing one lease: turn it into an engine run, keep the control plane informed while it
//! runs, stop it when the lease is lost, cancelled or handed back, and report how it ended.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backflow_connector_core::{Destination, Source};
use backflow_proto::v1 as pb;
use tokio::sync::watch;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::runner::client::with_timeout;
use crate::runner::convert::{
    connection, previous_snapshot, resource_id, sync_spec, time_from_proto,
};
use crate::runner::failure::{LeaseError, RunFailure};
use crate::runner::leases::{HeldLease, Stop};
use crate::runner::metrics::{BusySlot, RowMetrics};
use crate::runner::report;
use crate::runner::Ctx;
use backflow_common::convert::run::counts_to_proto;
use backflow_common::convert::time::duration_from_proto;
use backflow_common::trace_context;
use backflow_engine::{
    Engine, RunCounts, RunInput, RunResult, SnapshotRef, SnapshotStore, SyncSpec,
};

/// Heartbeat interval when a lease does not say (the control plane always should).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Heartbeats are never sent more often than this, whatever a lease asks.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// Progress is reported at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Time allowed for one `ReportProgress` call; progress is best effort.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(5);

/// A lease turned into everything an engine run needs.
struct LeasedRun {
    /// The engine's run id: the run's id and the attempt, so that two attempts of one run
    /// never write the same snapshot file.
    run_id: String,
    spec: SyncSpec,
    source: Arc<dyn Source>,
    destination: Arc<dyn Destination>,
    engine: Engine,
    previous: Option<SnapshotRef>,
    full_resync: bool,
    rows: RowMetrics,
}

/// How the engine phase of a run ended.
enum Outcome {
    Finished(Box<Result<RunResult, backflow_engine::EngineError>>),
    Stopped(Stop),
}

/// Runs `lease` to its end and reports it; with `hand_back`, reports it at once as handed
/// back (the worker began shutting down while the lease was on its way).
pub(crate) async fn handle_lease(ctx: &Ctx, lease: pb::Lease, hand_back: bool) {
    let Some(lease_ref) = lease.r#ref.clone() else {
        error!("the control plane granted a lease without a ref; ignoring it until it expires");
        return;
    };
    let interval = lease
        .heartbeat_interval
        .as_ref()
        .and_then(duration_from_proto)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_HEARTBEAT)
        .max(MIN_HEARTBEAT);
    let deadline = time_from_proto(lease.deadline.as_ref())
        .unwrap_or_else(|| SystemTime::now() + interval * 3);
    let run_id = lease_ref
        .run
        .strip_prefix("runs/")
        .unwrap_or(&lease_ref.run)
        .to_owned();
    let sync = lease
        .sync
        .as_ref()
        .map(|s| s.name.strip_prefix("syncs/").unwrap_or(&s.name).to_owned())
        .unwrap_or_default();
    // The run's trace continues here: `sync.run` is a child of the control plane's span that
    // queued the run. `trace_id` is a plain field too, so every log line of the run has it
    // even when this process exports no traces.
    let trace_id = trace_context::trace_id_of(&lease.traceparent).unwrap_or_default();
    let span = info_span!(
        "sync.run",
        backflow.sync = %sync,
        backflow.run_id = %run_id,
        backflow.attempt = lease_ref.attempt,
        backflow.worker = %ctx.worker_id,
        trace_id = %trace_id,
    );
    trace_context::continue_trace(&span, &lease.traceparent);
    let _busy = BusySlot::start();
    async {
        let held = ctx.leases.hold(lease_ref, interval, deadline);
        info!(run_id = %run_id, "run leased");
        if hand_back {
            info!(run_id = %run_id, "worker shutting down; handing the run back");
            report::fail(ctx, &held, &RunFailure::shutdown(), &RunCounts::default()).await;
            return;
        }
        let leased = match prepare_run(&lease, held.lease()) {
            Ok(leased) => leased,
            Err(e) => {
                warn!(run_id = %run_id, code = e.code(), error = %e, "the lease cannot be run");
                report::fail(ctx, &held, &RunFailure::from(&e), &RunCounts::default()).await;
                return;
            }
        };
        run_leased(ctx, &held, leased).await;
    }
    .instrument(span)
    .await;
}

/// Converts the lease and builds the connectors and the snapshot store (no network I/O).
fn prepare_run(lease: &pb::Lease, lease_ref: &pb::LeaseRef) -> Result<LeasedRun, LeaseError> {
    let run_id = resource_id(&lease_ref.run, "runs", "ref.run")?;
    let spec = sync_spec(lease.sync.as_ref())?;
    let previous = previous_snapshot(lease.snapshot.as_ref())?;
    let snapshots = SnapshotStore::open(&lease.snapshot_store)?;
    let (source_kind, config) = connection(lease.source.as_ref(), "source")?;
    let source = backflow_connectors::source(&source_kind, &config).map_err(LeaseError::Source)?;
    let (kind, config) = connection(lease.destination.as_ref(), "destination")?;
    let destination =
        backflow_connectors::destination(&kind, &config).map_err(LeaseError::Destination)?;
    let engine = Engine::new(snapshots).with_systems(&source_kind, &kind);
    let rows = RowMetrics::new(&spec.name);
    Ok(LeasedRun {
        run_id: format!("{run_id}-a{}", lease_ref.attempt),
        spec,
        source,
        destination,
        engine,
        previous,
        full_resync: lease.run.as_ref().is_some_and(|r| r.full_resync),
        rows,
    })
}

/// Runs the engine until it ends or the lease says stop, then reports.
async fn run_leased(ctx: &Ctx, held: &HeldLease, leased: LeasedRun) {
    let (progress_tx, progress_rx) = watch::channel(RunCounts::default());
    let mut stop = held.subscribe();
    let outcome = {
        let engine_run = leased.engine.run_in_current_span(RunInput {
            run_id: &leased.run_id,
            spec: &leased.spec,
            source: leased.source.as_ref(),
            destination: leased.destination.as_ref(),
            previous: leased.previous.as_ref(),
            full_resync: leased.full_resync,
            progress: Some(progress_tx),
        });
        tokio::select! {
            // A stop wins over a result that arrived at the same instant; dropping the engine's
            // future aborts its pipeline tasks.
            biased;
            stop = wait_for_stop(&mut stop) => Outcome::Stopped(stop),
            result = engine_run => Outcome::Finished(Box::new(result)),
            never = report_progress(ctx, held, progress_rx.clone(), &leased.rows) => match never {},
        }
    };
    let counts = *progress_rx.borrow();
    leased.rows.advance(&counts);
    let run_id = &held.lease().run;
    match outcome {
        Outcome::Stopped(Stop::Lost) => {
            warn!(run_id = %run_id, "lease lost; abandoning the run without reporting it");
        }
        Outcome::Stopped(Stop::Cancelled) => {
            info!(run_id = %run_id, "run cancelled");
            report::fail(ctx, held, &RunFailure::cancelled(), &counts).await;
        }
        Outcome::Stopped(Stop::Shutdown) => {
            info!(run_id = %run_id, "shutdown grace elapsed; handing the run back");
            report::fail(ctx, held, &RunFailure::shutdown(), &counts).await;
        }
        Outcome::Stopped(Stop::Continue) => {
            error!(run_id = %run_id, "internal: run stopped without a reason");
        }
        Outcome::Finished(result) => match *result {
            Err(e) => {
                warn!(
                    run_id = %run_id,
                    code = e.code(),
                    retryable = e.is_retryable(),
                    error = %e,
                    "run failed"
                );
                report::fail(ctx, held, &RunFailure::from(&e), &counts).await;
            }
            Ok(result) => {
                let store = leased.engine.snapshots();
                let previous = leased.previous.as_ref();
                if held.stop() == Stop::Lost {
                    // Nothing was reported, so nothing can have committed this snapshot.
                    warn!(run_id = %run_id, "lease lost as the run finished; discarding its result");
                    let same = previous.is_some_and(|p| p.path == result.snapshot.path);
                    report::discard_new_snapshot(store, &result.snapshot, same, false).await;
                    return;
                }
                // A cancel or shutdown that arrives once the work is done changes nothing:
                // the destination already holds the rows, so the snapshot must be committed.
                report::complete(ctx, held, &result, previous, store).await;
            }
        },
    }
}

/// Waits until the lease says stop; never returns while the run may continue.
async fn wait_for_stop(stop: &mut watch::Receiver<Stop>) -> Stop {
    let stopped = stop.wait_for(|s| *s != Stop::Continue).await.map(|s| *s);
    match stopped {
        Ok(stop) => stop,
        // The sender lives as long as the held lease, which outlives this future.
        Err(_) => std::future::pending().await,
    }
}

/// Sends the latest counts at most once per [`PROGRESS_INTERVAL`] while they change, and
/// turns a cancel request in the answer into a stop signal. Never returns.
async fn report_progress(
    ctx: &Ctx,
    held: &HeldLease,
    mut progress: watch::Receiver<RunCounts>,
    rows: &RowMetrics,
) -> Infallible {
    // `changed` fails once the engine dropped its sender: the run is over.
    while progress.changed().await.is_ok() {
        let counts = *progress.borrow_and_update();
        rows.advance(&counts);
        let request = pb::ReportProgressRequest {
            lease: Some(held.lease().clone()),
            counts: Some(counts_to_proto(&counts)),
        };
        let mut client = ctx.client.clone();
        match with_timeout(PROGRESS_TIMEOUT, client.report_progress(request)).await {
            Ok(answer) if answer.cancel_requested => held.signal(Stop::Cancelled),
            Ok(_) => {}
            // Best effort: heartbeats, not progress, keep the lease.
            Err(status) => debug!(
                code = ?status.code(),
                message = status.message(),
                "progress report failed"
            ),
        }
        tokio::time::sleep(PROGRESS_INTERVAL).await;
    }
    std::future::pending().await
}
