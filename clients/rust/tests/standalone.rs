//! The client against a real `backflow standalone`: a CSV `files` source, a SQLite destination
//! whose CHECK constraint refuses one row, the run followed to its end, its counts, rejected
//! rows and trace id, the destination's contents; typed errors with the server's field
//! violations; retries while the control plane is not up yet.

mod common;

use std::future::Future;
use std::time::Duration;

use anyhow::{ensure, Result};
use backflow_client::{v1, Client, Error, RetryPolicy, SyncBuilder, TriggerOptions};
use common::{free_port, Standalone};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use tonic::Code;

/// Every test ends well within this; a hang is a failure, not a stuck CI job.
const LIMIT: Duration = Duration::from_secs(90);

async fn within<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(LIMIT, future)
        .await
        .map_err(|_| anyhow::anyhow!("the test did not finish within {LIMIT:?}"))?
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// Three scores; `beta`'s is negative, which the destination's CHECK constraint refuses.
const SCORES_CSV: &str = "id,name,score\n1,alpha,10.5\n2,beta,-3.0\n3,gamma,7.25\n";

async fn sqlite(path: &std::path::Path) -> Result<sqlx::SqliteConnection> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await?)
}

#[tokio::test]
async fn a_triggered_run_is_followed_to_its_end_with_its_rejected_rows_and_the_callers_trace() {
    let mut server = Standalone::start(&[]).await.expect("standalone starts");
    let result = within(sync_end_to_end(&server)).await;
    server.check(result).unwrap();
}

async fn sync_end_to_end(server: &Standalone) -> Result<()> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let csv = server.path().join("scores.csv");
    std::fs::write(&csv, SCORES_CSV)?;
    let db = server.path().join("app.db");
    let mut conn = sqlite(&db).await?;
    sqlx::query(
        "CREATE TABLE scores (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         score REAL NOT NULL CHECK (score >= 0))",
    )
    .execute(&mut conn)
    .await?;
    conn.close().await?;

    let client = Client::connect(server.address.as_str()).await?;
    client
        .create_connection(
            "warehouse",
            "files",
            &serde_json::json!({ "tables": { "scores": csv.to_string_lossy() } }),
        )
        .await?;
    let created = client
        .create_connection(
            "app_db",
            "sqlite",
            &serde_json::json!({ "path": db.to_string_lossy() }),
        )
        .await?;
    ensure!(created.name == "connections/app_db", "created {created:?}");
    let sync = SyncBuilder::new(
        "warehouse",
        "SELECT id, name, score FROM scores",
        "app_db",
        "scores",
        ["id"],
    );
    client.create_sync("scores", sync).await?;
    let stored = client.get_sync("scores").await?;
    ensure!(stored.name == "syncs/scores", "stored {stored:?}");

    // The trigger runs inside a remote parent span; the control plane stores its context.
    let parent = SpanContext::new(
        TraceId::from_hex(TRACE_ID)?,
        SpanId::from_hex("b7ad6b7169203331")?,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(parent);
    let handle = client
        .trigger_with(
            "scores",
            TriggerOptions::default().request_id("client-test-1"),
        )
        .with_context(cx)
        .await?;
    ensure!(!handle.coalesced(), "the first trigger was coalesced");
    ensure!(
        handle.run().trace_id == TRACE_ID,
        "the run's trace id is `{}`, not the caller's",
        handle.run().trace_id
    );
    let name = handle.name().to_owned();

    let mut seen = Vec::new();
    let run = handle
        .wait_with_progress(|run| seen.push(run.clone()))
        .await?;
    ensure!(run.state() == v1::RunState::Succeeded, "run ended {run:?}");
    ensure!(
        seen.last() == Some(&run),
        "the last progress report is not the final run"
    );
    let counts = run.counts.unwrap_or_default();
    ensure!(
        counts.read == 3 && counts.written == 2 && counts.failed == 1 && run.rejected_rows == 1,
        "counts {counts:?}, {} rejected rows",
        run.rejected_rows
    );
    ensure!(
        client.get_run(&name).await? == run,
        "GetRun differs from the watched run"
    );

    let rejected = client.list_rejected_rows(&name).await?;
    ensure!(rejected.len() == 1, "rejected rows {rejected:?}");
    ensure!(
        rejected[0].key == "id=2" && rejected[0].message.contains("CHECK"),
        "rejected row {:?}",
        rejected[0]
    );

    // The request id makes the trigger idempotent: the same id returns the same run.
    let again = client
        .trigger_with(
            "scores",
            TriggerOptions::default().request_id("client-test-1"),
        )
        .await?;
    ensure!(
        again.name() == name,
        "a repeated request id queued {}",
        again.name()
    );

    let mut conn = sqlite(&db).await?;
    let rows: Vec<(i64, String, f64)> =
        sqlx::query_as("SELECT id, name, score FROM scores ORDER BY id")
            .fetch_all(&mut conn)
            .await?;
    ensure!(
        rows == [(1, "alpha".to_owned(), 10.5), (3, "gamma".to_owned(), 7.25)],
        "destination rows {rows:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_invalid_sync_is_a_typed_error_carrying_the_servers_field_violations() {
    let envs = [
        ("BACKFLOW__CONTROL_PLANE__API_TOKENS", "client-token"),
        ("BACKFLOW__CONTROL_PLANE__WORKER_TOKEN", "worker-token"),
    ];
    let mut server = Standalone::start(&envs).await.expect("standalone starts");
    let result = within(typed_errors(&server)).await;
    server.check(result).unwrap();
}

async fn typed_errors(server: &Standalone) -> Result<()> {
    let anonymous = Client::connect(server.address.as_str()).await?;
    match anonymous.get_sync("anything").await {
        Err(e) => ensure!(
            e.code() == Some(Code::Unauthenticated),
            "without a token: {e}"
        ),
        Ok(sync) => anyhow::bail!("a call without a token succeeded: {sync:?}"),
    }

    let client = Client::builder(server.address.as_str())
        .token("client-token")
        .connect()
        .await?;
    let invalid = SyncBuilder::new(
        "nowhere",
        "SELECT 1 AS id",
        "nowhere",
        "t",
        Vec::<String>::new(),
    );
    let error = client
        .create_sync("invalid", invalid)
        .await
        .expect_err("an invalid sync was created");
    ensure!(
        matches!(
            error,
            Error::Status {
                code: Code::InvalidArgument,
                ..
            }
        ) && !error.is_retryable(),
        "{error:?}"
    );
    let fields: Vec<&str> = error
        .field_violations()
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    ensure!(
        fields.contains(&"sync.primary_key"),
        "violations {fields:?}"
    );
    ensure!(
        error
            .to_string()
            .contains("sync.primary_key: must name at least one column"),
        "{error}"
    );

    let missing = client.get_run("0193a0b2-0000-7000-8000-000000000001").await;
    ensure!(
        matches!(&missing, Err(e) if e.code() == Some(Code::NotFound) && !e.is_retryable()),
        "{missing:?}"
    );
    Ok(())
}

#[tokio::test]
async fn calls_are_retried_until_the_control_plane_is_up() {
    let result = within(retries()).await;
    result.unwrap();
}

async fn retries() -> Result<()> {
    let listen = format!("127.0.0.1:{}", free_port()?);
    let patient = RetryPolicy {
        max_attempts: 60,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
    };
    let client = Client::builder(listen.as_str())
        .retry_policy(patient)
        .connect_lazy()?;
    let impatient = Client::builder(listen.as_str())
        .retry_policy(RetryPolicy::none())
        .connect_lazy()?;
    let error = impatient
        .get_sync("scores")
        .await
        .expect_err("nobody listens yet");
    ensure!(error.is_retryable(), "before the server starts: {error:?}");

    // The server comes up while the patient client is retrying.
    let starting = tokio::spawn({
        let listen = listen.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Standalone::start_on(&listen, &[]).await
        }
    });
    let answer = client.get_sync("scores").await;
    let mut server = starting.await??;
    server.check(match answer {
        Err(e) if e.code() == Some(Code::NotFound) => Ok(()),
        other => Err(anyhow::anyhow!(
            "expected the server's NOT_FOUND, got {other:?}"
        )),
    })
}
