//! `WorkerService`: how workers lease runs and report them. Every report is fenced by the
//! lease id and attempt, so a worker that lost its lease can never commit.

use std::sync::Arc;
use std::time::Duration;

use backflow_common::convert::run::{counts_from_proto, rejected_from_proto, timings_from_proto};
use backflow_common::convert::time::{duration_from_proto, duration_to_proto};
use backflow_proto::v1::worker_service_server::WorkerService;
use backflow_proto::v1::{
    self, CompleteRunRequest, CompleteRunResponse, FailRunRequest, FailRunResponse,
    HeartbeatRequest, HeartbeatResponse, LeaseStatus, PollWorkRequest, PollWorkResponse,
    ReportProgressRequest, ReportProgressResponse,
};
use tonic::{Request, Response, Status};
use tracing::{info, instrument, warn};

use super::ControlPlane;
use crate::convert::{
    connection_with_secrets_to_proto, name, parse_name, run_error_from_proto, run_to_proto,
    snapshot_to_proto, sync_to_proto, timestamp, RUNS,
};
use crate::error::ApiError;
use crate::model::{
    now_millis, Completion, LeaseRef, NewRun, RunState, RunTrigger, SnapshotPointer,
};

/// Default and longest PollWork wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(20);
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting PollWork looks at the store when nothing in this process woke it
/// (runs queued by another replica, retries whose backoff ended).
const POLL_TICK: Duration = Duration::from_millis(200);

/// The `WorkerService` handlers.
#[derive(Debug, Clone)]
pub struct WorkerApi(pub Arc<ControlPlane>);

fn lease_ref(lease: Option<&v1::LeaseRef>) -> Result<LeaseRef, ApiError> {
    let lease = lease.ok_or_else(|| ApiError::invalid("lease", "is required"))?;
    if lease.lease_id.is_empty() {
        return Err(ApiError::invalid("lease.lease_id", "is required"));
    }
    Ok(LeaseRef {
        run_id: parse_name(RUNS, "lease.run", &lease.run)?,
        lease_id: lease.lease_id.clone(),
        attempt: lease.attempt,
    })
}

impl WorkerApi {
    fn lease_to_proto(&self, lease: crate::model::Lease) -> v1::Lease {
        let cp = &self.0;
        let run = &lease.run;
        v1::Lease {
            r#ref: Some(v1::LeaseRef {
                run: name(RUNS, &run.id),
                lease_id: run.lease_id.clone().unwrap_or_default(),
                attempt: run.attempt,
            }),
            run: Some(run_to_proto(run)),
            deadline: run.lease_deadline.map(timestamp),
            heartbeat_interval: Some(duration_to_proto(cp.config.heartbeat_interval)),
            sync: Some(sync_to_proto(&lease.sync)),
            // The worker connects with the stored config itself: secrets are masked only for
            // API clients.
            source: Some(connection_with_secrets_to_proto(&lease.source)),
            destination: Some(connection_with_secrets_to_proto(&lease.destination)),
            snapshot: lease.sync.snapshot.as_ref().map(snapshot_to_proto),
            snapshot_store: cp.config.snapshot_store.clone(),
            traceparent: run.traceparent.clone().unwrap_or_default(),
        }
    }
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    #[instrument(
        name = "WorkerService/PollWork",
        level = "debug",
        skip_all,
        fields(worker)
    )]
    async fn poll_work(
        &self,
        request: Request<PollWorkRequest>,
    ) -> Result<Response<PollWorkResponse>, Status> {
        let req = request.into_inner();
        if req.worker_id.is_empty() {
            return Err(ApiError::invalid("worker_id", "is required").into());
        }
        tracing::Span::current().record("worker", req.worker_id.as_str());
        let wait = match req.wait.as_ref() {
            None => DEFAULT_WAIT,
            Some(w) => duration_from_proto(w)
                .ok_or_else(|| ApiError::invalid("wait", "must not be negative"))?,
        };
        let wait = Some(wait)
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_WAIT)
            .min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let cp = &self.0;
        loop {
            let woken = cp.work_available.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(lease) = cp
                .store
                .lease_next_run(&req.worker_id, now_millis(), cp.lease_ttl_ms())
                .await
                .map_err(ApiError::from)?
            {
                info!(
                    run_id = %lease.run.id,
                    sync = %lease.sync.id,
                    attempt = lease.run.attempt,
                    worker = %req.worker_id,
                    "run leased"
                );
                crate::telemetry::run_leased(&lease.run, &lease.sync.id);
                cp.run_changed.notify_waiters();
                return Ok(Response::new(PollWorkResponse {
                    lease: Some(self.lease_to_proto(lease)),
                }));
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(POLL_TICK) => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Ok(Response::new(PollWorkResponse { lease: None }));
                }
                () = cp.stopping.cancelled() => {
                    return Ok(Response::new(PollWorkResponse { lease: None }));
                }
            }
        }
    }

    #[instrument(name = "WorkerService/Heartbeat", level = "debug", skip_all)]
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let req = request.into_inner();
        let now = now_millis();
        let mut statuses = Vec::with_capacity(req.leases.len());
        for wire in &req.leases {
            let lease = lease_ref(Some(wire))?;
            let status = self
                .0
                .store
                .heartbeat(&lease, now, self.0.lease_ttl_ms())
                .await
                .map_err(ApiError::from)?;
            statuses.push(LeaseStatus {
                r#ref: Some(wire.clone()),
                valid: status.valid,
                cancel_requested: status.cancel_requested,
                deadline: status.valid.then(|| timestamp(status.deadline)),
            });
        }
        Ok(Response::new(HeartbeatResponse { leases: statuses }))
    }

    #[instrument(name = "WorkerService/ReportProgress", level = "debug", skip_all)]
    async fn report_progress(
        &self,
        request: Request<ReportProgressRequest>,
    ) -> Result<Response<ReportProgressResponse>, Status> {
        let req = request.into_inner();
        let lease = lease_ref(req.lease.as_ref())?;
        let counts = counts_from_proto(&req.counts.unwrap_or_default());
        let cancel_requested = self
            .0
            .store
            .report_progress(&lease, &counts)
            .await
            .map_err(ApiError::from)?;
        self.0.run_changed.notify_waiters();
        Ok(Response::new(ReportProgressResponse { cancel_requested }))
    }

    #[instrument(name = "WorkerService/CompleteRun", skip_all, fields(backflow.run_id))]
    async fn complete_run(
        &self,
        request: Request<CompleteRunRequest>,
    ) -> Result<Response<CompleteRunResponse>, Status> {
        let req = request.into_inner();
        let lease = lease_ref(req.lease.as_ref())?;
        tracing::Span::current().record("backflow.run_id", lease.run_id.as_str());
        let snapshot = req
            .snapshot
            .ok_or_else(|| ApiError::invalid("snapshot", "is required"))?;
        if snapshot.path.is_empty() {
            return Err(ApiError::invalid("snapshot.path", "is required").into());
        }
        let completion = Completion {
            counts: counts_from_proto(&req.counts.unwrap_or_default()),
            timings: timings_from_proto(&req.timings.unwrap_or_default()),
            snapshot: SnapshotPointer {
                path: snapshot.path,
                rows: snapshot.rows,
            },
            rejected: req.rejected_rows.iter().map(rejected_from_proto).collect(),
        };
        let run = self
            .0
            .store
            .complete_run(&lease, &completion, now_millis())
            .await
            .map_err(|e| {
                let e = ApiError::from(e);
                if matches!(e, ApiError::StaleLease { .. }) {
                    warn!(run_id = %lease.run_id, attempt = lease.attempt, "stale completion rejected");
                }
                e
            })?;
        info!(run_id = %run.id, sync = %run.sync_id, written = run.counts.written, "run succeeded");
        crate::telemetry::run_finished(&run);
        self.0.run_changed.notify_waiters();
        // "After sync X succeeds" triggers.
        for follower in self
            .0
            .store
            .syncs_after(&run.sync_id)
            .await
            .map_err(ApiError::from)?
        {
            let queued = self
                .0
                .enqueue(&NewRun {
                    sync_id: follower.id.clone(),
                    trigger: RunTrigger::AfterSync,
                    full_resync: false,
                    request_id: None,
                    traceparent: run.traceparent.clone(),
                })
                .await;
            if let Err(e) = queued {
                warn!(sync = %follower.id, error = %e, "after-sync trigger failed");
            }
        }
        Ok(Response::new(CompleteRunResponse {
            run: Some(run_to_proto(&run)),
        }))
    }

    #[instrument(name = "WorkerService/FailRun", skip_all, fields(backflow.run_id))]
    async fn fail_run(
        &self,
        request: Request<FailRunRequest>,
    ) -> Result<Response<FailRunResponse>, Status> {
        let req = request.into_inner();
        let lease = lease_ref(req.lease.as_ref())?;
        tracing::Span::current().record("backflow.run_id", lease.run_id.as_str());
        let error = run_error_from_proto(req.error.as_ref());
        let counts = counts_from_proto(&req.counts.unwrap_or_default());
        let backoff = self.0.config.backoff(lease.attempt);
        let run = self
            .0
            .store
            .fail_run(
                &lease,
                &error,
                &counts,
                now_millis(),
                i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX),
            )
            .await
            .map_err(ApiError::from)?;
        crate::telemetry::run_finished(&run);
        match run.state {
            RunState::Queued => info!(
                run_id = %run.id,
                attempt = run.attempt,
                code = %error.code,
                retry_in_ms = backoff.as_millis() as u64,
                "run attempt failed; retrying"
            ),
            state => {
                info!(run_id = %run.id, code = %error.code, state = state.as_str(), "run ended")
            }
        }
        self.0.run_changed.notify_waiters();
        Ok(Response::new(FailRunResponse {
            run: Some(run_to_proto(&run)),
        }))
    }
}
