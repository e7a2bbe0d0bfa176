//! The scheduler and the lease reaper. Every replica reaps expired leases (safe under `SKIP
//! LOCKED`); only the replica holding the store's scheduler lock (a PostgreSQL advisory lock)
//! fires schedules, so several replicas never queue the same scheduled run twice — and the
//! store's one-active-run index would coalesce it anyway.

use std::future::Future;
use std::sync::Arc;

use tracing::{debug, info, warn, Instrument};

use crate::api::{next_fire, ControlPlane};
use crate::error::ApiError;
use crate::model::{now_millis, NewRun, RunTrigger};
use crate::store::SchedulerLock;

/// Runs until `shutdown` resolves.
pub async fn run_scheduler(cp: Arc<ControlPlane>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut lock: Option<SchedulerLock> = None;
    let mut tick = tokio::time::interval(cp.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        reap(&cp).await;
        if let Some(held) = lock.as_mut() {
            if !held.is_held().await {
                warn!("scheduler lock lost; another replica may schedule now");
                lock = None;
            }
        }
        if lock.is_none() {
            match cp.store.try_acquire_scheduler_lock().await {
                Ok(Some(acquired)) => {
                    info!("this replica now runs the scheduler");
                    lock = Some(acquired);
                }
                Ok(None) => debug!("another replica runs the scheduler"),
                Err(e) => warn!(error = %e, "cannot take the scheduler lock"),
            }
        }
        if lock.is_some() {
            fire_due(&cp).await;
        }
    }
    if let Some(lock) = lock {
        lock.release().await;
    }
}

/// Re-queues runs whose worker stopped heartbeating.
async fn reap(cp: &ControlPlane) {
    match cp.store.requeue_expired(now_millis(), 0).await {
        Ok(runs) if runs.is_empty() => {}
        Ok(runs) => {
            crate::telemetry::leases_expired(runs.len());
            for run in &runs {
                crate::telemetry::run_finished(run);
                warn!(run_id = %run.id, attempt = run.attempt, state = run.state.as_str(), "lease expired");
            }
            cp.work_available.notify_waiters();
            cp.run_changed.notify_waiters();
        }
        Err(e) => warn!(error = %e, "cannot re-queue expired leases"),
    }
}

/// Queues a run for every interval or cron schedule that is due, and sets its next time.
async fn fire_due(cp: &ControlPlane) {
    let now = now_millis();
    let due = match cp.store.due_schedules(now).await {
        Ok(due) => due,
        Err(e) => {
            warn!(error = %e, "cannot read due schedules");
            return;
        }
    };
    for sync in due {
        // A scheduled run has no caller: its trace starts here.
        let span = tracing::info_span!(parent: None, "sync.schedule", backflow.sync = %sync.id);
        let traceparent = span.in_scope(backflow_common::trace_context::current_traceparent);
        let queued = cp
            .enqueue(&NewRun {
                sync_id: sync.id.clone(),
                trigger: RunTrigger::Schedule,
                full_resync: false,
                request_id: None,
                traceparent,
            })
            .instrument(span)
            .await;
        match queued {
            Ok(q) if q.coalesced => {
                debug!(sync = %sync.id, run_id = %q.run.id, "schedule coalesced with the active run");
            }
            Ok(q) => info!(sync = %sync.id, run_id = %q.run.id, "scheduled run queued"),
            Err(ApiError::FailedPrecondition(_) | ApiError::NotFound { .. }) => {}
            Err(e) => {
                warn!(sync = %sync.id, error = %e, "scheduled run not queued");
                continue;
            }
        }
        let next = next_fire(sync.definition.schedule.as_ref(), now);
        if let Err(e) = cp.store.set_next_schedule(&sync.id, next).await {
            warn!(sync = %sync.id, error = %e, "cannot store the next schedule time");
        }
    }
}
