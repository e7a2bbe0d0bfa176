//! The admin ports: `/healthz`, `/readyz` and `/metrics` of a control plane and a worker, and
//! the metrics moving with a run — the queue depth while it waits for a worker, the running
//! run and its rows while it runs, the finished run and every row after.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use common::*;

const TEST_LIMIT: Duration = Duration::from_secs(180);

/// The value of the sample `name{labels}` (labels as written in the exposition, in order),
/// 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn scrape(admin: &str) -> Result<String> {
    let (status, body) = http_get(&format!("http://{admin}/metrics")).await?;
    ensure!(status == 200, "/metrics answered {status}: {body}");
    Ok(body)
}

#[tokio::test]
async fn metrics_follow_a_run_from_queue_to_end() -> Result<()> {
    let env = TestEnv::new("metrics_run").await?;
    let result = within(TEST_LIMIT, metrics_body(&env)).await;
    env.finish(result).await
}

async fn metrics_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let cp_admin = format!("127.0.0.1:{}", free_port()?);
    let worker_admin = format!("127.0.0.1:{}", free_port()?);
    let store = format!("sqlite:{}", env.path().join("state.db").display());
    let _cp =
        start_control_plane(env, "cp", port, &store, &["--admin-listen", &cp_admin], &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 60, 1).await?;
    // About 3 s of reading, so the run is observable while it runs. The padding makes
    // PostgreSQL send each 10-row batch as it is produced instead of buffering the answer.
    let query = format!(
        "SELECT s.*, repeat('x', 10000) AS pad FROM ({}) s",
        slow_query("src.t", 10, 0.5)
    );
    api.create_sync("m", pg_sync(&query, "dst.t", Some(10)))
        .await?;

    let (status, _) = http_get(&format!("http://{cp_admin}/healthz")).await?;
    ensure!(status == 200, "control plane /healthz: {status}");
    let (status, body) = http_get(&format!("http://{cp_admin}/readyz")).await?;
    ensure!(status == 200, "control plane /readyz: {status} {body}");
    let before = scrape(&cp_admin).await?;
    ensure!(
        sample(&before, "backflow_queue_depth") == 0.0,
        "queue not empty at start:\n{before}"
    );
    ensure!(
        before.contains("# TYPE backflow_queue_depth gauge"),
        "no queue depth gauge:\n{before}"
    );

    // No worker yet: the run waits, and the queue shows it.
    let run = api.trigger_new("m").await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let queued = scrape(&cp_admin).await?;
    ensure!(
        sample(&queued, "backflow_queue_depth") == 1.0
            && sample(&queued, "backflow_runs{state=\"queued\"}") == 1.0
            && sample(&queued, "backflow_queue_oldest_age_seconds") >= 1.0,
        "the queued run is not in the metrics:\n{queued}"
    );
    ensure!(
        sample(
            &queued,
            "backflow_grpc_requests_total{method=\"backflow.v1.SyncService/TriggerSync\",code=\"OK\"}"
        ) == 1.0,
        "TriggerSync not counted:\n{queued}"
    );

    let _worker = Proc::spawn(
        env,
        "worker",
        &[
            "worker",
            "--server",
            &format!("http://{addr}"),
            "--concurrency",
            "2",
            "--admin-listen",
            &worker_admin,
        ],
        &[],
    )?;
    eventually(Duration::from_secs(20), "the worker to be ready", || {
        let url = format!("http://{worker_admin}/readyz");
        async move {
            let (status, _) = http_get(&url).await?;
            Ok((status == 200).then_some(()))
        }
    })
    .await?;

    // While it runs: one running run, rows read moving, one busy slot.
    let read_series = "backflow_rows_total{sync=\"m\",kind=\"read\"}";
    let during = eventually(Duration::from_secs(20), "rows moving mid-run", || {
        let (cp_admin, worker_admin) = (cp_admin.clone(), worker_admin.clone());
        async move {
            let cp = scrape(&cp_admin).await?;
            let worker = scrape(&worker_admin).await?;
            let read = sample(&worker, read_series);
            Ok((sample(&cp, "backflow_runs{state=\"running\"}") == 1.0
                && sample(&cp, "backflow_queue_depth") == 0.0
                && read > 0.0
                && read < 60.0)
                .then_some(worker))
        }
    })
    .await?;
    ensure!(
        sample(&during, "backflow_worker_slots{state=\"busy\"}") == 1.0
            && sample(&during, "backflow_worker_slots{state=\"free\"}") == 1.0,
        "slots mid-run:\n{during}"
    );

    let runs = wait_final(&api, std::slice::from_ref(&run), Duration::from_secs(60)).await?;
    ensure_succeeded(&runs)?;
    let after_cp = scrape(&cp_admin).await?;
    let after_worker = scrape(&worker_admin).await?;
    ensure!(
        sample(&after_cp, "backflow_runs_total{state=\"succeeded\"}") == 1.0
            && sample(&after_cp, "backflow_runs{state=\"running\"}") == 0.0
            && sample(&after_cp, "backflow_run_duration_seconds_count") == 1.0,
        "the finished run is not counted:\n{after_cp}"
    );
    ensure!(
        sample(&after_worker, read_series) == 60.0
            && sample(
                &after_worker,
                "backflow_rows_total{sync=\"m\",kind=\"written\"}"
            ) == 60.0
            && sample(&after_worker, "backflow_worker_slots{state=\"busy\"}") == 0.0,
        "the worker's final counts:\n{after_worker}"
    );
    let complete = "backflow_grpc_request_duration_seconds_count{method=\"backflow.v1.WorkerService/CompleteRun\"}";
    ensure!(
        sample(&after_cp, complete) == 1.0,
        "CompleteRun latency not recorded:\n{after_cp}"
    );
    let _ = data.close().await;
    Ok(())
}

#[tokio::test]
async fn a_worker_without_its_control_plane_is_alive_but_not_ready() -> Result<()> {
    let env = TestEnv::new("metrics_readyz").await?;
    let result = within(TEST_LIMIT, async {
        let admin = format!("127.0.0.1:{}", free_port()?);
        let nowhere = format!("http://127.0.0.1:{}", free_port()?);
        let _worker = Proc::spawn(
            &env,
            "worker",
            &["worker", "--server", &nowhere, "--admin-listen", &admin],
            &[],
        )?;
        let healthz = eventually(Duration::from_secs(20), "/healthz", || {
            let url = format!("http://{admin}/healthz");
            async move { Ok(http_get(&url).await.ok()) }
        })
        .await?;
        ensure!(healthz.0 == 200, "/healthz: {healthz:?}");
        let (status, body) = http_get(&format!("http://{admin}/readyz")).await?;
        ensure!(
            status == 503 && body.contains("control plane"),
            "/readyz of a worker with no control plane: {status} {body}"
        );
        Ok(())
    })
    .await
    .context("worker readiness");
    env.finish(result).await
}

#[tokio::test]
async fn two_standalone_instances_each_serve_their_own_admin_endpoint() -> Result<()> {
    let env = TestEnv::new("standalone_admin").await?;
    let result = within(TEST_LIMIT, standalone_admin_body(&env)).await;
    env.finish(result).await
}

/// The admin address `standalone` printed at startup.
async fn printed_admin(proc: &Proc) -> Result<String> {
    eventually(
        Duration::from_secs(10),
        "the admin endpoint line",
        || async {
            Ok(proc.log_text().lines().find_map(|line| {
                line.split_once("admin endpoint (/metrics, /healthz, /readyz) on http://")
                    .map(|(_, addr)| addr.trim().to_owned())
            }))
        },
    )
    .await
}

async fn standalone_admin_body(env: &TestEnv) -> Result<()> {
    // The control plane's default admin address, as a config file that never changed it
    // would give: each standalone instance takes a free port of its own instead.
    let default = [("BACKFLOW__CONTROL_PLANE__ADMIN_LISTEN", "127.0.0.1:9090")];
    let first = start_standalone(env, "one", free_port()?, 1, &default).await?;
    let second = start_standalone(env, "two", free_port()?, 1, &default).await?;
    let (a, b) = (printed_admin(&first).await?, printed_admin(&second).await?);
    ensure!(a != b, "both instances report the admin endpoint {a}");
    for addr in [a, b] {
        let (status, _) = http_get(&format!("http://{addr}/healthz")).await?;
        ensure!(status == 200, "/healthz at {addr}: {status}");
    }
    Ok(())
}
