//! `RunService`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backflow_common::convert::run::rejected_to_proto;
use backflow_proto::v1::run_service_server::RunService;
use backflow_proto::v1::{
    CancelRunRequest, CancelRunResponse, GetRunRequest, GetRunResponse, ListRejectedRowsRequest,
    ListRejectedRowsResponse, ListRunsRequest, ListRunsResponse, WatchRunRequest, WatchRunResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::connections::split_page;
use super::ControlPlane;
use crate::convert::{page_size, parse_name, run_to_proto, state_from_proto, RUNS, SYNCS};
use crate::error::ApiError;
use crate::model::{now_millis, RunFilter};

/// How often a watch re-reads the run when no in-process change woke it (changes made by
/// another control-plane replica).
const WATCH_POLL: Duration = Duration::from_millis(500);

/// The `RunService` handlers.
#[derive(Debug, Clone)]
pub struct RunApi(pub Arc<ControlPlane>);

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchRunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RunService for RunApi {
    #[instrument(name = "RunService/GetRun", skip_all)]
    async fn get_run(
        &self,
        request: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let id = parse_name(RUNS, "name", &request.into_inner().name)?;
        let run = self.0.store.get_run(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(GetRunResponse {
            run: Some(run_to_proto(&run)),
        }))
    }

    #[instrument(name = "RunService/ListRuns", skip_all)]
    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let req = request.into_inner();
        let limit = page_size(req.page_size)?;
        let filter = RunFilter {
            sync_id: if req.sync.is_empty() {
                None
            } else {
                Some(parse_name(SYNCS, "sync", &req.sync)?)
            },
            state: state_from_proto(req.state)?,
        };
        let before = crate::convert::page_token(RUNS, &req.page_token)?;
        let page = self
            .0
            .store
            .list_runs(&filter, before, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (page, next) = split_page(page, limit, |r| r.id.clone());
        Ok(Response::new(ListRunsResponse {
            runs: page.iter().map(run_to_proto).collect(),
            next_page_token: next,
        }))
    }

    type WatchRunStream = WatchStream;

    #[instrument(name = "RunService/WatchRun", skip_all)]
    async fn watch_run(
        &self,
        request: Request<WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let id = parse_name(RUNS, "name", &request.into_inner().name)?;
        // Fail fast on an unknown run, before the stream starts.
        let first = self.0.store.get_run(&id).await.map_err(ApiError::from)?;
        let cp = Arc::clone(&self.0);
        let stream = watch_stream(cp, id, first);
        Ok(Response::new(Box::pin(stream)))
    }

    #[instrument(name = "RunService/CancelRun", skip_all)]
    async fn cancel_run(
        &self,
        request: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        let id = parse_name(RUNS, "name", &request.into_inner().name)?;
        let run = self
            .0
            .store
            .cancel_run(&id, now_millis())
            .await
            .map_err(ApiError::from)?;
        crate::telemetry::run_finished(&run);
        self.0.run_changed.notify_waiters();
        Ok(Response::new(CancelRunResponse {
            run: Some(run_to_proto(&run)),
        }))
    }

    #[instrument(name = "RunService/ListRejectedRows", skip_all)]
    async fn list_rejected_rows(
        &self,
        request: Request<ListRejectedRowsRequest>,
    ) -> Result<Response<ListRejectedRowsResponse>, Status> {
        let req = request.into_inner();
        let id = parse_name(RUNS, "run", &req.run)?;
        let limit = page_size(req.page_size)?;
        let offset: u64 = if req.page_token.is_empty() {
            0
        } else {
            req.page_token
                .parse()
                .map_err(|_| ApiError::invalid("page_token", "is not a token of this list"))?
        };
        let rows = self
            .0
            .store
            .list_rejected_rows(&id, offset, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() > limit as usize;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next = if more {
            (offset + rows.len() as u64).to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ListRejectedRowsResponse {
            rejected_rows: rows.iter().map(rejected_to_proto).collect(),
            next_page_token: next,
        }))
    }
}

/// Streams the run whenever it changes, ending after a final state. Wakes on in-process
/// changes at once and re-reads every [`WATCH_POLL`] for changes made by other replicas.
fn watch_stream(
    cp: Arc<ControlPlane>,
    id: String,
    first: crate::model::RunRecord,
) -> impl Stream<Item = Result<WatchRunResponse, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = first;
        if tx
            .send(Ok(WatchRunResponse {
                run: Some(run_to_proto(&last)),
            }))
            .await
            .is_err()
        {
            return;
        }
        while !last.state.is_final() {
            let changed = cp.run_changed.notified();
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(WATCH_POLL) => {}
                () = tx.closed() => return,
                // The client reconnects to another replica (or this one after a restart).
                () = cp.stopping.cancelled() => {
                    let _ = tx
                        .send(Err(Status::unavailable("the control plane is stopping; watch again")))
                        .await;
                    return;
                }
            }
            let run = match cp.store.get_run(&id).await {
                Ok(run) => run,
                Err(e) => {
                    let _ = tx.send(Err(ApiError::from(e).into())).await;
                    return;
                }
            };
            if run != last {
                if tx
                    .send(Ok(WatchRunResponse {
                        run: Some(run_to_proto(&run)),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
                last = run;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
