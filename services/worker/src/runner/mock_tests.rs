//! The poll loop against an in-process `WorkerService` stand-in: leasing, reporting, retries
//! through an unreachable control plane, cancel, lost leases and shutdown hand-back. The
//! real control plane gets its own end-to-end test; this one pins the worker's side of the
//! protocol with real engine runs (SQLite to SQLite).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backflow_proto::v1 as pb;
use backflow_proto::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::runner::{run_worker, RunnerError, WorkerConfig};

/// What the stand-in answers to heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum HeartbeatAnswer {
    #[default]
    Valid,
    Lost,
    Cancel,
}

#[derive(Default)]
struct State {
    queue: VecDeque<pb::Lease>,
    polls: usize,
    heartbeat_answer: HeartbeatAnswer,
    heartbeats: usize,
    progress: usize,
    unavailable_completes: usize,
    complete_attempts: usize,
    completes: Vec<pb::CompleteRunRequest>,
    fails: Vec<pb::FailRunRequest>,
    tokens: Vec<String>,
}

#[derive(Clone, Default)]
struct Mock(Arc<Mutex<State>>);

impl Mock {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn token<T>(&self, request: &Request<T>) {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.with(|s| s.tokens.push(token));
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&State) -> bool) {
        for _ in 0..3000 {
            if self.with(|s| done(s)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }

    fn serve(&self, addr: SocketAddr) -> JoinHandle<()> {
        let mock = self.clone();
        tokio::spawn(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            let incoming = futures::stream::unfold(listener, |l| async move {
                let conn = l.accept().await.map(|(s, _)| s);
                Some((conn, l))
            });
            tonic::transport::Server::builder()
                .add_service(WorkerServiceServer::new(mock))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        })
    }
}

#[tonic::async_trait]
impl WorkerService for Mock {
    async fn poll_work(
        &self,
        request: Request<pb::PollWorkRequest>,
    ) -> Result<Response<pb::PollWorkResponse>, Status> {
        self.token(&request);
        let lease = self.with(|s| {
            s.polls += 1;
            s.queue.pop_front()
        });
        if lease.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Response::new(pb::PollWorkResponse { lease }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.token(&request);
        let answer = self.with(|s| {
            s.heartbeats += 1;
            s.heartbeat_answer
        });
        let leases = request
            .into_inner()
            .leases
            .into_iter()
            .map(|l| pb::LeaseStatus {
                r#ref: Some(l),
                valid: answer != HeartbeatAnswer::Lost,
                cancel_requested: answer == HeartbeatAnswer::Cancel,
                deadline: Some((SystemTime::now() + Duration::from_secs(10)).into()),
            })
            .collect();
        Ok(Response::new(pb::HeartbeatResponse { leases }))
    }

    async fn report_progress(
        &self,
        request: Request<pb::ReportProgressRequest>,
    ) -> Result<Response<pb::ReportProgressResponse>, Status> {
        self.token(&request);
        self.with(|s| s.progress += 1);
        Ok(Response::new(pb::ReportProgressResponse::default()))
    }

    async fn complete_run(
        &self,
        request: Request<pb::CompleteRunRequest>,
    ) -> Result<Response<pb::CompleteRunResponse>, Status> {
        self.token(&request);
        self.with(|s| {
            s.complete_attempts += 1;
            if s.unavailable_completes > 0 {
                s.unavailable_completes -= 1;
                return Err(Status::unavailable("restarting"));
            }
            s.completes.push(request.into_inner());
            Ok(Response::new(pb::CompleteRunResponse::default()))
        })
    }

    async fn fail_run(
        &self,
        request: Request<pb::FailRunRequest>,
    ) -> Result<Response<pb::FailRunResponse>, Status> {
        self.token(&request);
        self.with(|s| s.fails.push(request.into_inner()));
        Ok(Response::new(pb::FailRunResponse::default()))
    }
}

/// A port nothing listens on yet.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Worker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RunnerError>>,
}

impl Worker {
    fn start(addr: SocketAddr, concurrency: usize, grace: Duration) -> Self {
        let config = WorkerConfig {
            server: format!("http://{addr}"),
            token: Some("t0k".into()),
            ca_cert: None,
            concurrency,
            worker_id: "test-worker".into(),
            poll_wait: Duration::from_secs(1),
            shutdown_grace: grace,
            status: Default::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_worker(config, async {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the worker stops within 20 s")
            .unwrap()
            .unwrap();
    }
}

/// Files of one test: an empty SQLite source (queries generate rows), a destination, and
/// the snapshot directory.
struct Files {
    _dir: tempfile::TempDir,
    source: PathBuf,
    destination: PathBuf,
    snapshots: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    // A zero-length file is an empty SQLite database.
    std::fs::write(&source, b"").unwrap();
    Files {
        source,
        destination: dir.path().join("app.db"),
        snapshots: dir.path().join("snapshots"),
        _dir: dir,
    }
}

fn rows(n: u64) -> String {
    format!(
        "WITH RECURSIVE c(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM c WHERE id < {n}) \
         SELECT id, id * 2 AS v FROM c"
    )
}

fn sqlite(path: &Path) -> pb::Connection {
    pb::Connection {
        r#type: "sqlite".into(),
        config: Some(backflow_proto::json::struct_from_json(
            &serde_json::json!({ "path": path.to_str().unwrap() }),
        )),
        ..Default::default()
    }
}

fn lease(run: &str, query: &str, f: &Files, previous: Option<&pb::SnapshotPointer>) -> pb::Lease {
    pb::Lease {
        r#ref: Some(pb::LeaseRef {
            run: format!("runs/{run}"),
            lease_id: format!("lease-{run}"),
            attempt: 1,
        }),
        run: Some(pb::Run {
            name: format!("runs/{run}"),
            ..Default::default()
        }),
        deadline: Some((SystemTime::now() + Duration::from_secs(10)).into()),
        heartbeat_interval: Some(prost_types::Duration {
            seconds: 0,
            nanos: 100_000_000,
        }),
        sync: Some(pb::Sync {
            name: "syncs/scores".into(),
            source: Some(pb::SyncSource {
                connection: "connections/src".into(),
                query: query.into(),
            }),
            primary_key: vec!["id".into()],
            destination: Some(pb::SyncDestination {
                connection: "connections/dst".into(),
                object: "scores".into(),
                mode: pb::SyncMode::Upsert as i32,
                create_table: true,
                ..Default::default()
            }),
            ..Default::default()
        }),
        source: Some(sqlite(&f.source)),
        destination: Some(sqlite(&f.destination)),
        snapshot: previous.cloned(),
        snapshot_store: f.snapshots.to_str().unwrap().into(),
        traceparent: String::new(),
    }
}

#[tokio::test]
async fn leases_run_and_commit_through_a_late_and_flaky_control_plane() {
    let f = files();
    let addr = free_addr();
    // The worker starts first: a control plane that is not up yet is waited for.
    let worker = Worker::start(addr, 2, Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mock = Mock::default();
    mock.with(|s| {
        s.unavailable_completes = 2;
        s.queue.push_back(lease("r1", &rows(100), &f, None));
    });
    let _server = mock.serve(addr);

    mock.wait_until("r1 completes", |s| s.completes.len() == 1)
        .await;
    let first = mock.with(|s| s.completes[0].clone());
    assert_eq!(
        mock.with(|s| s.complete_attempts),
        3,
        "retried through UNAVAILABLE"
    );
    let counts = first.counts.unwrap();
    assert_eq!((counts.read, counts.written), (100, 100));
    let p1 = first.snapshot.unwrap();
    assert_eq!(p1.path, "syncs/scores/r1-a1.parquet");
    assert_eq!(p1.rows, 100);
    assert!(first.timings.unwrap().total.is_some());
    assert!(f.snapshots.join(&p1.path).exists());

    // Nothing changed: the engine hands back the same file, which must survive.
    mock.with(|s| s.queue.push_back(lease("r2", &rows(100), &f, Some(&p1))));
    mock.wait_until("r2 completes", |s| s.completes.len() == 2)
        .await;
    let second = mock.with(|s| s.completes[1].clone());
    assert_eq!(second.counts.unwrap().unchanged, 100);
    assert_eq!(second.snapshot.unwrap(), p1);
    assert!(f.snapshots.join(&p1.path).exists());

    // New rows: a new file, and the previous one goes once the commit is acknowledged.
    mock.with(|s| s.queue.push_back(lease("r3", &rows(120), &f, Some(&p1))));
    mock.wait_until("r3 completes", |s| s.completes.len() == 3)
        .await;
    let third = mock.with(|s| s.completes[2].clone());
    assert_eq!(third.counts.unwrap().added, 20);
    let p3 = third.snapshot.unwrap();
    assert_eq!(p3.path, "syncs/scores/r3-a1.parquet");
    assert!(f.snapshots.join(&p3.path).exists());
    // The mock records the completion when it arrives; the worker deletes the old file only
    // after it reads the answer, so give it a moment.
    let old = f.snapshots.join(&p1.path);
    let deleted = tokio::time::timeout(Duration::from_secs(5), async {
        while old.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(deleted.is_ok(), "the superseded snapshot was not deleted");

    assert!(mock.with(|s| s.fails.is_empty()));
    assert!(mock.with(|s| s.tokens.iter().all(|t| t == "Bearer t0k")));
    worker.shutdown().await;
}

#[tokio::test]
async fn leases_that_cannot_run_are_failed_naming_the_problem() {
    let f = files();
    let addr = free_addr();
    let mock = Mock::default();
    let _server = mock.serve(addr);
    let mut bad_mode = lease("m", &rows(1), &f, None);
    bad_mode
        .sync
        .as_mut()
        .unwrap()
        .destination
        .as_mut()
        .unwrap()
        .mode = 0;
    let mut bad_store = lease("s", &rows(1), &f, None);
    bad_store.snapshot_store = "ftp://key:secret@bucket/x".into();
    let mut bad_type = lease("t", &rows(1), &f, None);
    bad_type.source.as_mut().unwrap().r#type = "oracle".into();
    mock.with(|s| s.queue.extend([bad_mode, bad_store, bad_type]));
    let worker = Worker::start(addr, 1, Duration::from_secs(5));

    mock.wait_until("three failures", |s| s.fails.len() == 3)
        .await;
    let errors: Vec<pb::RunError> =
        mock.with(|s| s.fails.iter().map(|f| f.error.clone().unwrap()).collect());
    assert_eq!(errors[0].code, "invalid_definition");
    assert!(
        errors[0].message.contains("destination.mode"),
        "{}",
        errors[0].message
    );
    assert!(errors[1]
        .message
        .contains("snapshot store URL scheme not supported"));
    assert!(!errors[1].message.contains("secret"));
    assert_eq!(errors[2].code, "source_error");
    assert!(
        errors[2].message.contains("oracle"),
        "{}",
        errors[2].message
    );
    assert!(errors.iter().all(|e| !e.retryable));
    worker.shutdown().await;
}

#[tokio::test]
async fn a_cancel_stops_the_run_and_reports_it_cancelled() {
    let f = files();
    let addr = free_addr();
    let mock = Mock::default();
    let _server = mock.serve(addr);
    mock.with(|s| {
        s.heartbeat_answer = HeartbeatAnswer::Cancel;
        s.queue.push_back(lease("c", &rows(50_000_000), &f, None));
    });
    let worker = Worker::start(addr, 1, Duration::from_secs(5));
    mock.wait_until("the cancel is reported", |s| s.fails.len() == 1)
        .await;
    let error = mock.with(|s| s.fails[0].error.clone().unwrap());
    assert_eq!(error.code, "cancelled");
    assert!(!error.retryable);
    assert!(mock.with(|s| s.completes.is_empty()));
    worker.shutdown().await;
}

#[tokio::test]
async fn a_lost_lease_is_abandoned_without_a_report() {
    let f = files();
    let addr = free_addr();
    let mock = Mock::default();
    let _server = mock.serve(addr);
    mock.with(|s| {
        s.heartbeat_answer = HeartbeatAnswer::Lost;
        s.queue.push_back(lease("l", &rows(50_000_000), &f, None));
    });
    let worker = Worker::start(addr, 1, Duration::from_secs(5));
    mock.wait_until("a heartbeat", |s| s.heartbeats >= 1).await;
    // The one slot is free again: it polls for more work.
    let polls = mock.with(|s| s.polls);
    mock.wait_until("the slot polls again", |s| s.polls >= polls + 2)
        .await;
    assert!(mock.with(|s| s.fails.is_empty() && s.completes.is_empty()));
    worker.shutdown().await;
}

#[tokio::test]
async fn shutdown_hands_running_runs_back_after_the_grace() {
    let f = files();
    let addr = free_addr();
    let mock = Mock::default();
    let _server = mock.serve(addr);
    mock.with(|s| s.queue.push_back(lease("g", &rows(50_000_000), &f, None)));
    let worker = Worker::start(addr, 1, Duration::from_millis(200));
    mock.wait_until("the run reports progress", |s| s.progress >= 1)
        .await;
    worker.shutdown().await;
    let failure = mock.with(|s| s.fails.clone());
    assert_eq!(failure.len(), 1);
    let error = failure[0].error.clone().unwrap();
    assert_eq!(error.code, "worker_shutdown");
    assert!(error.retryable);
    assert!(failure[0].counts.unwrap().read > 0);
}
