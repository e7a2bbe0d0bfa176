//! Horizontal scale, as a benchmark (ignored by default; it asserts correctness, never time):
//! 100 small syncs on 1 worker process, then 100 more on 4, against one control plane with a
//! PostgreSQL store; prints both times and the speed-up.
//!
//! Each source query waits 0.2 s inside PostgreSQL, standing in for a warehouse's latency, so
//! the measure is how well runs spread over workers rather than how fast this machine's CPU
//! is. Run it with:
//!
//! ```text
//! cargo test -p backflow-integration-tests --test scale_bench -- --ignored --nocapture
//! ```
// Printing the report is this benchmark's job.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;

const SYNCS: usize = 100;
const ROWS: i64 = 50;

#[tokio::test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn four_workers_against_one_on_100_small_syncs() -> Result<()> {
    let env = TestEnv::new("scale_bench").await?;
    let result = within(Duration::from_secs(900), bench(&env)).await;
    env.finish(result).await
}

/// Triggers the syncs `{prefix}0..{prefix}99` and waits until all succeeded; the elapsed time.
async fn run_all(api: &Api, prefix: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut runs = Vec::with_capacity(SYNCS);
    for i in 0..SYNCS {
        runs.push(api.trigger_new(&format!("{prefix}{i}")).await?);
    }
    let finished = wait_final(api, &runs, Duration::from_secs(600)).await?;
    ensure_succeeded(&finished)?;
    Ok(started.elapsed())
}

async fn bench(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let store = env.create_database("store").await?;
    let _cp = start_control_plane(env, "cp", port, &store, &[], &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", ROWS, 1).await?;
    let query = slow_query("src.t", ROWS, 0.2);
    for prefix in ["one", "four"] {
        for i in 0..SYNCS {
            api.create_sync(
                &format!("{prefix}{i}"),
                pg_sync(&query, &format!("dst.{prefix}{i}"), None),
            )
            .await?;
        }
    }

    let mut one = start_worker(env, "worker-1", &addr, 1, &[])?;
    let t1 = run_all(&api, "one").await?;
    one.kill9().await?;

    let mut four = Vec::new();
    for w in 0..4 {
        four.push(start_worker(env, &format!("worker-4-{w}"), &addr, 1, &[])?);
    }
    let t4 = run_all(&api, "four").await?;
    for worker in &mut four {
        worker.kill9().await?;
    }

    println!(
        "scale: {SYNCS} syncs of {ROWS} rows (0.2 s source latency each), one slot per worker\n\
         1 worker:  {:.2} s\n\
         4 workers: {:.2} s\n\
         speed-up:  {:.2}x (ideal 4x)",
        t1.as_secs_f64(),
        t4.as_secs_f64(),
        t1.as_secs_f64() / t4.as_secs_f64()
    );
    Ok(())
}
