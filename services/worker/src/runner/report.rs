//! Reporting an attempt's end: `CompleteRun` or `FailRun`, retried through control-plane
//! restarts until they land or the lease runs out, then the snapshot bookkeeping that only
//! the answer makes safe.
//!
//! A run's result must not be lost to a restarting control plane, so transient failures are
//! retried with backoff for as long as the lease lives (the heartbeat task keeps extending
//! it). Snapshot files are deleted only when it is certain no committed run points to them.

use std::future::Future;
use std::time::{Duration, SystemTime};

use backflow_common::convert::run::{counts_to_proto, rejected_to_proto, timings_to_proto};
use backflow_proto::v1 as pb;
use tonic::{Code, Status};
use tracing::{debug, error, info, warn};

use crate::runner::backoff::Backoff;
use crate::runner::client::{is_transient, with_timeout};
use crate::runner::convert::snapshot_pointer;
use crate::runner::failure::RunFailure;
use crate::runner::leases::{HeldLease, Stop};
use crate::runner::Ctx;
use backflow_engine::{RunCounts, RunResult, SnapshotRef, SnapshotStore};

/// Time allowed for one `CompleteRun` call; it commits a transaction with the rejected rows.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for one `FailRun` call.
const FAIL_TIMEOUT: Duration = Duration::from_secs(15);
/// Rejected rows sent with `CompleteRun` stop at about this many bytes, well under gRPC's
/// default 4 MiB message limit; `counts.failed` stays exact.
const MAX_REJECTED_BYTES: usize = 3 * 1024 * 1024;

/// How a reporting call ended.
enum Delivery<T> {
    /// The control plane accepted it.
    Accepted(T),
    /// The control plane refused it for good. `after_failures` says an earlier attempt
    /// failed in a way that may have reached the control plane, so it may have taken effect.
    Refused {
        status: Status,
        after_failures: bool,
    },
    /// The lease was lost or expired while the control plane was unreachable.
    GaveUp(&'static str),
}

/// Sends `call` until it is accepted, refused for good, or the lease is lost or expires.
async fn deliver<T, F, Fut>(held: &HeldLease, what: &'static str, mut call: F) -> Delivery<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = Backoff::new();
    let mut stop = held.subscribe();
    let mut failures = 0u32;
    loop {
        let status = match call().await {
            Ok(answer) => return Delivery::Accepted(answer),
            Err(status) if !is_transient(&status) => {
                return Delivery::Refused {
                    status,
                    after_failures: failures > 0,
                }
            }
            Err(status) => status,
        };
        failures += 1;
        if held.stop() == Stop::Lost {
            return Delivery::GaveUp("the lease was lost");
        }
        let left = held
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left.is_zero() {
            return Delivery::GaveUp("the lease deadline passed");
        }
        if failures == 1 || failures.is_multiple_of(20) {
            warn!(code = ?status.code(), message = status.message(), failures, "{what} failed; retrying");
        } else {
            debug!(code = ?status.code(), message = status.message(), failures, "{what} failed; retrying");
        }
        let delay = backoff.next_delay().min(left);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s == Stop::Lost) => return Delivery::GaveUp("the lease was lost"),
        }
    }
}

/// Commits a successful attempt, then deletes whichever snapshot file no run points to.
#[tracing::instrument(name = "run.commit", skip_all, fields(backflow.rows_written = result.counts.written))]
pub(crate) async fn complete(
    ctx: &Ctx,
    held: &HeldLease,
    result: &RunResult,
    previous: Option<&SnapshotRef>,
    store: &SnapshotStore,
) {
    let (rejected_rows, dropped) = capped_rejected_rows(result);
    if dropped > 0 {
        warn!(
            dropped,
            kept = rejected_rows.len(),
            "too many rejected row details for one report; the count stays exact"
        );
    }
    let request = pb::CompleteRunRequest {
        lease: Some(held.lease().clone()),
        counts: Some(counts_to_proto(&result.counts)),
        timings: Some(timings_to_proto(&result.timings)),
        snapshot: Some(snapshot_pointer(&result.snapshot)),
        rejected_rows,
    };
    let new = &result.snapshot;
    // A run that changed nothing hands back the previous snapshot itself.
    let new_is_previous = previous.is_some_and(|p| p.path == new.path);
    let delivery = deliver(held, "complete run", || {
        let mut client = ctx.client.clone();
        let request = request.clone();
        async move { with_timeout(COMPLETE_TIMEOUT, client.complete_run(request)).await }
    })
    .await;
    match delivery {
        Delivery::Accepted(_) => {
            let c = &result.counts;
            info!(
                run_id = %held.lease().run,
                read = c.read,
                written = c.written,
                deleted = c.deleted,
                failed = c.failed,
                snapshot_rows = new.rows,
                "run completed"
            );
            if let Some(old) = previous.filter(|_| !new_is_previous) {
                delete_snapshot(store, old, "previous").await;
            }
            // Only now, with the snapshot committed, are the journaled keys accounted for.
            if let Err(e) = store.clear_journal(&result.journal).await {
                warn!(error = %e, "could not clear the run's journal; the next run resends its keys");
            }
        }
        Delivery::Refused {
            status,
            after_failures,
        } if status.code() == Code::FailedPrecondition => {
            warn!(
                run_id = %held.lease().run,
                message = status.message(),
                "the control plane refused the result: the lease is no longer ours"
            );
            discard_new_snapshot(store, new, new_is_previous, after_failures).await;
        }
        Delivery::Refused {
            status,
            after_failures,
        } => {
            error!(
                run_id = %held.lease().run,
                code = ?status.code(),
                message = status.message(),
                "the control plane refused the result; reporting the attempt as failed"
            );
            discard_new_snapshot(store, new, new_is_previous, after_failures).await;
            let failure = RunFailure {
                code: "internal".into(),
                message: format!(
                    "the control plane refused the run's result: {}",
                    status.message()
                ),
                retryable: true,
            };
            fail(ctx, held, &failure, &result.counts).await;
        }
        Delivery::GaveUp(reason) => warn!(
            run_id = %held.lease().run,
            reason,
            snapshot = %new.path,
            "gave up reporting the result; the run will be leased again"
        ),
    }
}

/// Reports a failed, cancelled or handed-back attempt.
#[tracing::instrument(name = "run.fail", skip_all, fields(error.type = %failure.code))]
pub(crate) async fn fail(ctx: &Ctx, held: &HeldLease, failure: &RunFailure, counts: &RunCounts) {
    let request = pb::FailRunRequest {
        lease: Some(held.lease().clone()),
        error: Some(failure.to_proto()),
        counts: Some(counts_to_proto(counts)),
    };
    let delivery = deliver(held, "fail run", || {
        let mut client = ctx.client.clone();
        let request = request.clone();
        async move { with_timeout(FAIL_TIMEOUT, client.fail_run(request)).await }
    })
    .await;
    match delivery {
        Delivery::Accepted(answer) => info!(
            run_id = %held.lease().run,
            code = %failure.code,
            retryable = failure.retryable,
            state = ?answer.run.map(|r| r.state()),
            "run failure reported"
        ),
        Delivery::Refused { status, .. } if status.code() == Code::FailedPrecondition => warn!(
            run_id = %held.lease().run,
            message = status.message(),
            "the control plane refused the failure report: the lease is no longer ours"
        ),
        Delivery::Refused { status, .. } => error!(
            run_id = %held.lease().run,
            code = ?status.code(),
            message = status.message(),
            "the control plane refused the failure report; the lease will expire"
        ),
        Delivery::GaveUp(reason) => warn!(
            run_id = %held.lease().run,
            reason,
            "gave up reporting the failure; the lease will expire"
        ),
    }
}

/// Deletes this attempt's own snapshot after its result was refused, unless the file is the
/// previous snapshot, or an earlier, unanswered `CompleteRun` may have committed it (deleting
/// a committed snapshot would break every later run; an orphan file only costs space).
pub(crate) async fn discard_new_snapshot(
    store: &SnapshotStore,
    new: &SnapshotRef,
    new_is_previous: bool,
    maybe_committed: bool,
) {
    if new_is_previous {
        return;
    }
    if maybe_committed {
        warn!(
            path = %new.path,
            "keeping the new snapshot: an earlier report may have committed it"
        );
        return;
    }
    delete_snapshot(store, new, "uncommitted").await;
}

async fn delete_snapshot(store: &SnapshotStore, snapshot: &SnapshotRef, which: &'static str) {
    match store.delete(snapshot).await {
        Ok(()) => debug!(path = %snapshot.path, which, "snapshot deleted"),
        Err(e) => warn!(path = %snapshot.path, which, error = %e, "could not delete a snapshot"),
    }
}

/// The rejected rows to send, cut off at [`MAX_REJECTED_BYTES`], and how many were left out.
fn capped_rejected_rows(result: &RunResult) -> (Vec<pb::RejectedRow>, usize) {
    let mut bytes = 0usize;
    let mut rows = Vec::with_capacity(result.rejected.len());
    for row in &result.rejected {
        let row = rejected_to_proto(row);
        // Field bytes plus tags and lengths: close enough to the encoded size for a cap.
        bytes += row.key.len() + row.column.len() + row.message.len() + row.operation.len() + 16;
        if bytes > MAX_REJECTED_BYTES {
            break;
        }
        rows.push(row);
    }
    let dropped = result.rejected.len() - rows.len();
    (rows, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_engine::result::{RejectedOperation, RejectedRow, StageTimings};

    #[test]
    fn rejected_rows_are_capped_by_size() {
        let row = RejectedRow {
            key: "id=1".into(),
            column: Some("ltv".into()),
            message: "x".repeat(1000),
            operation: RejectedOperation::Write,
        };
        let result = RunResult {
            counts: RunCounts::default(),
            rejected: vec![row; 5000],
            timings: StageTimings::default(),
            snapshot: SnapshotRef {
                path: "p".into(),
                rows: 0,
            },
            snapshot_heap_bytes: 0,
            journal: Default::default(),
            journal_stats: Default::default(),
        };
        let (rows, dropped) = capped_rejected_rows(&result);
        assert!(rows.len() < 5000);
        assert_eq!(rows.len() + dropped, 5000);
        let bytes: usize = rows.iter().map(|r| r.message.len()).sum();
        assert!(bytes <= MAX_REJECTED_BYTES);
    }
}
