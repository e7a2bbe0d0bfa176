//! One slot of the worker: poll for a lease, run it, poll again; `concurrency` slots run side
//! by side. A control-plane outage only makes a slot wait and retry, never exit.

use std::sync::Arc;
use std::time::Duration;

use backflow_common::convert::time::duration_to_proto;
use backflow_proto::v1 as pb;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::runner::backoff::Backoff;
use crate::runner::client::with_timeout;
use crate::runner::execute::handle_lease;
use crate::runner::Ctx;

/// Extra time a long poll may take beyond its `wait` before the worker gives up on it.
const POLL_SLACK: Duration = Duration::from_secs(10);
/// An empty answer faster than this is followed by a short pause, so a control plane that
/// ignores `wait` cannot turn the slots into a busy loop.
const MIN_EMPTY_POLL: Duration = Duration::from_millis(100);

/// Polls and runs leases until `stopping` turns true; a run in progress is finished (or
/// handed back on the caller's signal) before the slot returns.
pub(crate) async fn slot_loop(ctx: Arc<Ctx>, slot: usize, mut stopping: watch::Receiver<bool>) {
    let mut backoff = Backoff::new();
    let mut failures = 0u32;
    loop {
        if *stopping.borrow() {
            return;
        }
        let request = pb::PollWorkRequest {
            worker_id: ctx.worker_id.clone(),
            wait: Some(duration_to_proto(ctx.poll_wait)),
        };
        let started = Instant::now();
        let mut client = ctx.client.clone();
        let polled = tokio::select! {
            // Shutdown cancels the poll in flight at once.
            biased;
            () = stop_requested(&mut stopping) => return,
            polled = with_timeout(ctx.poll_wait + POLL_SLACK, client.poll_work(request)) => polled,
        };
        let pause = match polled {
            Ok(answer) => {
                if failures > 0 {
                    info!(slot, failures, "control plane reachable again");
                    failures = 0;
                    backoff.reset();
                }
                match answer.lease {
                    Some(lease) => {
                        let hand_back = *stopping.borrow();
                        handle_lease(&ctx, lease, hand_back).await;
                        continue;
                    }
                    None => MIN_EMPTY_POLL.saturating_sub(started.elapsed()),
                }
            }
            Err(status) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    warn!(
                        slot,
                        failures,
                        code = ?status.code(),
                        message = status.message(),
                        "cannot poll the control plane; retrying"
                    );
                } else {
                    debug!(slot, failures, code = ?status.code(), "poll failed; retrying");
                }
                backoff.next_delay()
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                () = stop_requested(&mut stopping) => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Resolves once the worker is stopping (or the signal's sender is gone).
pub(crate) async fn stop_requested(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}
