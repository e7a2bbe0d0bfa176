//! One run, one trace, in process: a control plane and a worker in this test process export
//! to an in-process OTLP/gRPC receiver, and the spans received form the run's trace — the
//! caller's span, the control plane's handling, the time queued, the worker's `sync.run` with
//! its stages, and the control plane's answer to the commit — each with the right parent.
//! SQLite source and destination: no server needed.

mod common;

use common::wait_run_ended;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use backflow_common::telemetry::{self, LogFormat, TelemetryOptions};
use backflow_control_plane::api::{ControlPlane, ControlPlaneConfig};
use backflow_control_plane::auth::AuthConfig;
use backflow_control_plane::store::Store;
use backflow_proto::v1;
use backflow_proto::v1::connection_service_client::ConnectionServiceClient;
use backflow_proto::v1::sync_service_client::SyncServiceClient;
use backflow_worker::runner::{run_worker, WorkerConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// The receiver: keeps every span exported to it.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            AnyValue::BoolValue(b) => b.to_string(),
            AnyValue::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
}

fn find<'a>(spans: &'a [Span], name: &str) -> Result<&'a Span> {
    spans.iter().find(|s| s.name == name).with_context(|| {
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        format!("no span `{name}`; spans: {names:?}")
    })
}

/// Connectors open spans of their own, some with the engine's stage names: the span `name`
/// under `parent`.
fn child_named<'a>(spans: &'a [Span], parent: &Span, name: &str) -> Result<&'a Span> {
    spans
        .iter()
        .find(|s| s.name == name && s.parent_span_id == parent.span_id)
        .with_context(|| format!("no `{name}` span under `{}`", parent.name))
}

fn ensure_child(child: &Span, parent: &Span) -> Result<()> {
    ensure!(
        child.parent_span_id == parent.span_id && child.trace_id == parent.trace_id,
        "`{}` is not a child of `{}`",
        child.name,
        parent.name
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_is_one_trace_from_caller_to_commit() -> Result<()> {
    let receiver = Receiver::default();
    let otlp = TcpListener::bind("127.0.0.1:0").await?;
    let otlp_addr = otlp.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(TcpListenerStream::new(otlp)),
    );
    // Safe: this test binary holds one test, and nothing else reads the environment yet.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp_addr}"));
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let telemetry = telemetry::init(&TelemetryOptions {
        service_name: "backflow-test",
        log_format: LogFormat::Text,
        default_level: "warn",
    })?;
    ensure!(telemetry.tracing_enabled(), "tracing is off");

    let dir = tempfile::tempdir()?;
    let source_db = dir.path().join("source.db");
    let destination_db = dir.path().join("destination.db");
    {
        let url = format!("sqlite:{}?mode=rwc", source_db.display());
        let pool = sqlx::SqlitePool::connect(&url).await?;
        sqlx::query("CREATE TABLE scores (id INTEGER PRIMARY KEY, score REAL NOT NULL)")
            .execute(&pool)
            .await?;
        for id in 0..25 {
            sqlx::query("INSERT INTO scores VALUES (?, ?)")
                .bind(id)
                .bind(f64::from(id) / 2.0)
                .execute(&pool)
                .await?;
        }
        pool.close().await;
    }

    let store = Store::connect_and_migrate(&format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("state.db").display()
    ))
    .await?;
    let mut config = ControlPlaneConfig::new(dir.path().join("snapshots").display().to_string());
    config.heartbeat_interval = Duration::from_secs(1);
    let cp = ControlPlane::new(store, config);
    let api = TcpListener::bind("127.0.0.1:0").await?;
    let addr = api.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(backflow_control_plane::server::serve(
        cp,
        api,
        AuthConfig::default(),
        None,
        stop.clone().cancelled_owned(),
    ));
    let mut worker = WorkerConfig::new(format!("http://{addr}"));
    worker.concurrency = 1;
    worker.poll_wait = Duration::from_secs(1);
    let worker = tokio::spawn(run_worker(worker, stop.clone().cancelled_owned()));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut connections = ConnectionServiceClient::new(channel.clone());
    for (id, path) in [("src", &source_db), ("dst", &destination_db)] {
        connections
            .create_connection(v1::CreateConnectionRequest {
                validate_only: false,
                connection_id: id.into(),
                connection: Some(v1::Connection {
                    r#type: "sqlite".into(),
                    config: Some(backflow_proto::json::struct_from_json(
                        &serde_json::json!({ "path": path.display().to_string() }),
                    )),
                    ..Default::default()
                }),
            })
            .await?;
    }
    let mut syncs = SyncServiceClient::new(channel.clone());
    syncs
        .create_sync(v1::CreateSyncRequest {
            sync_id: "scores".into(),
            sync: Some(v1::Sync {
                source: Some(v1::SyncSource {
                    connection: "connections/src".into(),
                    query: "SELECT id, score FROM scores".into(),
                }),
                primary_key: vec!["id".into()],
                destination: Some(v1::SyncDestination {
                    connection: "connections/dst".into(),
                    object: "scores".into(),
                    mode: v1::SyncMode::Upsert as i32,
                    create_table: true,
                    ..Default::default()
                }),
                options: Some(v1::SyncOptions {
                    batch_size: Some(10),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await?;

    // The caller: one span whose context travels with TriggerSync (in a `backflow` target:
    // only Backflow's spans are exported).
    let caller = tracing::info_span!(target: "backflow_test", "caller");
    let run = async {
        let mut request = tonic::Request::new(v1::TriggerSyncRequest {
            name: "syncs/scores".into(),
            ..Default::default()
        });
        backflow_common::trace_context::inject_current(request.metadata_mut());
        syncs.trigger_sync(request).await
    }
    .instrument(caller.clone())
    .await?
    .into_inner()
    .run
    .context("no run")?;
    drop(caller);
    ensure!(!run.trace_id.is_empty(), "the queued run has no trace id");

    let ended = wait_run_ended(channel, &run.name, Duration::from_secs(60)).await?;
    ensure!(
        ended.state() == v1::RunState::Succeeded,
        "the run did not succeed: {ended:?}"
    );

    // Every span ends by the time CompleteRun answered; the batch processor sends them within
    // its 100 ms delay.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<Span> = receiver.0.lock().unwrap().clone();
        let complete = "backflow.v1.WorkerService/CompleteRun";
        if ["caller", "run.commit", complete, "run.queued"]
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
        {
            break spans;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "spans missing; got {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let caller = find(&spans, "caller")?;
    ensure!(
        hex(&caller.trace_id) == run.trace_id,
        "the run is in another trace"
    );
    let server = find(&spans, "backflow.v1.SyncService/TriggerSync")?;
    ensure_child(server, caller)?;
    ensure!(attribute(server, "rpc.system").as_deref() == Some("grpc"));
    ensure!(attribute(server, "rpc.method").as_deref() == Some("TriggerSync"));
    let handler = find(&spans, "SyncService/TriggerSync")?;
    ensure_child(handler, server)?;
    ensure_child(find(&spans, "run.queued")?, handler)?;
    let sync_run = find(&spans, "sync.run")?;
    ensure_child(sync_run, handler)?;
    ensure!(attribute(sync_run, "backflow.sync").as_deref() == Some("scores"));
    ensure!(attribute(sync_run, "backflow.attempt").as_deref() == Some("1"));
    for stage in [
        "source.read",
        "diff",
        "destination.write",
        "snapshot.write",
        "run.commit",
    ] {
        child_named(&spans, sync_run, stage)?;
    }
    let read = spans
        .iter()
        .find(|s| s.name == "source.read" && attribute(s, "backflow.rows").is_some())
        .context("no source.read span with a row count")?;
    ensure_child(read, sync_run)?;
    ensure!(attribute(read, "db.system").as_deref() == Some("sqlite"));
    ensure!(attribute(read, "backflow.rows").as_deref() == Some("25"));
    let written: i64 = spans
        .iter()
        .filter(|s| s.name == "destination.write" && s.parent_span_id == sync_run.span_id)
        .filter_map(|s| attribute(s, "backflow.rows")?.parse::<i64>().ok())
        .sum();
    ensure!(written == 25, "destination.write spans hold {written} rows");
    ensure_child(
        find(&spans, "backflow.v1.WorkerService/CompleteRun")?,
        find(&spans, "run.commit")?,
    )?;
    // Worker plumbing (polls, heartbeats) makes no traces of its own.
    ensure!(
        !spans
            .iter()
            .any(|s| s.name.contains("PollWork") || s.name.contains("Heartbeat")),
        "plumbing calls were traced"
    );

    stop.cancel();
    worker.await??;
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}
