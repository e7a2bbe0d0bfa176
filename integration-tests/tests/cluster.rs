//! A real cluster under load and faults: `backflow control-plane` processes on a PostgreSQL
//! store, `backflow worker` processes, PG→PG syncs; workers and control planes killed mid-run.
//!
//! Every destination is compared row by row with its source, and every run's counts and
//! attempts are checked: a retried run must converge, and nothing may be leased twice.

// Progress notes (timings) go to the test's captured stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use backflow_proto::v1;
use common::*;
use tonic::Code;

/// Rows of source table `i` of the many-syncs tests: 200 to 445, all different.
fn rows_of(i: usize) -> i64 {
    200 + (i as i64 * 5)
}

/// Creates `count` source tables `src.t00…`, and syncs `s00…` into `dst.t00…`.
async fn many_syncs(api: &Api, data: &sqlx::PgPool, count: usize) -> Result<()> {
    for i in 0..count {
        let table = format!("src.t{i:02}");
        create_source_table(data, &table, rows_of(i), i as i64).await?;
        api.create_sync(
            &format!("s{i:02}"),
            pg_sync(&plain_query(&table), &format!("dst.t{i:02}"), None),
        )
        .await?;
    }
    Ok(())
}

/// Fails unless run `i` is a single-attempt success of sync `s{i}` that copied its table.
async fn check_many(runs: &[v1::Run], data: &sqlx::PgPool, single_attempt: bool) -> Result<()> {
    ensure_succeeded(runs)?;
    for (i, run) in runs.iter().enumerate() {
        ensure!(
            run.sync == format!("syncs/s{i:02}"),
            "run {} belongs to {}, not syncs/s{i:02}",
            run.name,
            run.sync
        );
        if single_attempt {
            ensure!(
                run.attempt == 1,
                "run {} needed {} attempts; it was leased more than once: {}",
                run.name,
                run.attempt,
                describe_run(run)
            );
        }
        ensure_first_run_counts(run, rows_of(i) as u64)?;
        ensure_same_rows(data, &format!("src.t{i:02}"), &format!("dst.t{i:02}")).await?;
    }
    let mut names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    ensure!(names.len() == runs.len(), "two syncs share a run");
    Ok(())
}

/// Triggers every sync `s00…` at once and returns the run names in sync order.
async fn trigger_all(apis: &[&Api], count: usize) -> Result<Vec<String>> {
    futures::future::try_join_all((0..count).map(|i| {
        let api = apis[i % apis.len()].clone();
        async move { api.trigger_new(&format!("s{i:02}")).await }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_syncs_three_workers() -> Result<()> {
    let env = TestEnv::new("fifty_syncs_three_workers").await?;
    let result = within(TEST_LIMIT, fifty_syncs_three_workers_body(&env)).await;
    env.finish(result).await
}

async fn fifty_syncs_three_workers_body(env: &TestEnv) -> Result<()> {
    const SYNCS: usize = 50;
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _cp = start_control_plane(env, "cp", port, &store, &[], &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    many_syncs(&api, &data, SYNCS).await?;
    let mut workers = Vec::new();
    for i in 0..3 {
        workers.push(start_worker(env, &format!("worker-{i}"), &addr, 2, &[])?);
    }

    let started = Instant::now();
    let names = trigger_all(&[&api], SYNCS).await?;
    let runs = wait_final(&api, &names, Duration::from_secs(90)).await?;
    eprintln!(
        "[fifty_syncs_three_workers] {SYNCS} runs final in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    check_many(&runs, &data, true).await?;
    for worker in &mut workers {
        worker.ensure_running()?;
    }

    // ListRuns pages through all of them, newest first, each once.
    let mut listed = Vec::new();
    let mut page_token = String::new();
    for _ in 0..20 {
        let page = api
            .runs
            .clone()
            .list_runs(v1::ListRunsRequest {
                sync: String::new(),
                state: v1::RunState::Succeeded as i32,
                page_size: 7,
                page_token,
            })
            .await
            .context("ListRuns")?
            .into_inner();
        ensure!(page.runs.len() <= 7, "a page of {} runs", page.runs.len());
        listed.extend(page.runs.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut expected = names.clone();
    expected.sort_unstable();
    expected.reverse();
    ensure!(
        listed == expected,
        "ListRuns in pages of 7 returned {} runs, not the {SYNCS} runs newest first",
        listed.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_lease_expires_and_another_finishes() -> Result<()> {
    let env = TestEnv::new("killed_worker_lease_expires").await?;
    let result = within(TEST_LIMIT, killed_worker_body(&env)).await;
    env.finish(result).await
}

/// Rows of the slow source: 30 sleeps of 0.2 s, so one attempt takes about 6 s.
const SLOW_ROWS: i64 = 6000;

async fn killed_worker_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    // Heartbeat every second: a lease lives 3 × 1 + 2 = 5 s without one.
    let _cp = start_control_plane(
        env,
        "cp",
        port,
        &store,
        &["--heartbeat-interval-secs", "1"],
        &[],
    )
    .await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.big", SLOW_ROWS, 1).await?;
    create_source_table(&data, "src.small", 300, 2).await?;
    api.create_sync(
        "big",
        pg_sync(&slow_query("src.big", 200, 0.2), "dst.big", Some(500)),
    )
    .await?;
    api.create_sync(
        "small",
        pg_sync(&plain_query("src.small"), "dst.small", None),
    )
    .await?;

    // Worker A takes the slow run and is killed in the middle of it.
    let mut worker_a = start_worker(env, "worker-a", &addr, 1, &[])?;
    let big = api.trigger_new("big").await?;
    let running = eventually(Duration::from_secs(30), "the big run to read rows", || {
        let api = api.clone();
        let big = big.clone();
        async move {
            let run = api.get_run(&big).await?;
            ensure!(
                !is_final(&run),
                "the big run ended early: {}",
                describe_run(&run)
            );
            let read = run.counts.unwrap_or_default().read;
            Ok((run.state() == v1::RunState::Running && read > 0).then_some(run))
        }
    })
    .await?;
    ensure!(
        running.attempt == 1 && running.counts.unwrap_or_default().read < SLOW_ROWS as u64,
        "the big run is not mid-way through its first attempt: {}",
        describe_run(&running)
    );
    worker_a.kill9().await?;
    let killed = Instant::now();

    // A ghost worker leases the small run and then goes silent.
    let small = api.trigger_new("small").await?;
    let lease = api
        .workers
        .clone()
        .poll_work(v1::PollWorkRequest {
            worker_id: "ghost".into(),
            wait: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
        })
        .await
        .context("PollWork as the ghost")?
        .into_inner()
        .lease
        .context("the ghost's PollWork returned no lease though the small run was queued")?;
    let ghost = lease
        .r#ref
        .clone()
        .context("the ghost's lease has no ref")?;
    ensure!(
        ghost.run == small && ghost.attempt == 1 && !ghost.lease_id.is_empty(),
        "the ghost leased {ghost:?}, expected attempt 1 of {small}"
    );
    // The killed worker's lease is still live for a moment: the big run is not handed out.
    let still = api.get_run(&big).await?;
    if killed.elapsed() < Duration::from_secs(3) {
        ensure!(
            still.state() == v1::RunState::Running && still.attempt == 1,
            "the big run changed before its lease could expire: {}",
            describe_run(&still)
        );
    }

    // Worker B finishes both once their leases expire.
    let _worker_b = start_worker(env, "worker-b", &addr, 2, &[])?;
    let runs = wait_final(&api, &[big.clone(), small.clone()], Duration::from_secs(60)).await?;
    ensure_succeeded(&runs)?;
    let (big_run, small_run) = (&runs[0], &runs[1]);
    ensure!(
        big_run.attempt == 2,
        "the big run should have succeeded on attempt 2: {}",
        describe_run(big_run)
    );
    ensure!(
        small_run.attempt == 2,
        "the small run should have succeeded on attempt 2: {}",
        describe_run(small_run)
    );
    // The retry started from scratch (no snapshot was committed) and re-sent every row.
    ensure_first_run_counts(big_run, SLOW_ROWS as u64)?;
    ensure_first_run_counts(small_run, 300)?;
    ensure_same_rows(&data, "src.big", "dst.big").await?;
    ensure_same_rows(&data, "src.small", "dst.small").await?;

    // Fencing: the ghost's reports on its expired, re-granted lease are refused.
    let mut workers = api.workers.clone();
    let bogus = v1::RunCounts {
        read: 999_999,
        added: 999_999,
        written: 999_999,
        ..Default::default()
    };
    let complete = workers
        .complete_run(v1::CompleteRunRequest {
            lease: Some(ghost.clone()),
            counts: Some(bogus),
            timings: None,
            snapshot: Some(v1::SnapshotPointer {
                path: "ghost/never.snapshot".into(),
                rows: 999_999,
            }),
            rejected_rows: Vec::new(),
        })
        .await;
    match complete {
        Err(status) if status.code() == Code::FailedPrecondition => {}
        other => anyhow::bail!("the ghost's CompleteRun should be FAILED_PRECONDITION: {other:?}"),
    }
    let progress = workers
        .report_progress(v1::ReportProgressRequest {
            lease: Some(ghost.clone()),
            counts: Some(bogus),
        })
        .await;
    ensure!(
        matches!(&progress, Err(s) if s.code() == Code::FailedPrecondition),
        "the ghost's ReportProgress should be FAILED_PRECONDITION: {progress:?}"
    );
    let fail = workers
        .fail_run(v1::FailRunRequest {
            lease: Some(ghost.clone()),
            error: Some(v1::RunError {
                code: "ghost".into(),
                message: "a stale worker".into(),
                retryable: false,
            }),
            counts: Some(bogus),
        })
        .await;
    ensure!(
        matches!(&fail, Err(s) if s.code() == Code::FailedPrecondition),
        "the ghost's FailRun should be FAILED_PRECONDITION: {fail:?}"
    );
    let heartbeat = workers
        .heartbeat(v1::HeartbeatRequest {
            worker_id: "ghost".into(),
            leases: vec![ghost.clone()],
        })
        .await
        .context("Heartbeat as the ghost")?
        .into_inner();
    ensure!(
        heartbeat.leases.len() == 1 && !heartbeat.leases[0].valid,
        "the ghost's heartbeat should say its lease is invalid: {heartbeat:?}"
    );
    let after = api.get_run(&small).await?;
    ensure!(
        after.state() == v1::RunState::Succeeded
            && after.attempt == 2
            && after.counts == small_run.counts
            && after.error.is_none(),
        "the ghost's reports changed the committed run: before {}, after {}",
        describe_run(small_run),
        describe_run(&after)
    );
    ensure_same_rows(&data, "src.small", "dst.small").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restart_loses_nothing() -> Result<()> {
    let env = TestEnv::new("control_plane_restart").await?;
    let result = within(TEST_LIMIT, control_plane_restart_body(&env)).await;
    env.finish(result).await
}

async fn control_plane_restart_body(env: &TestEnv) -> Result<()> {
    const SYNCS: usize = 10;
    const ROWS: i64 = 2000;
    let store = env.create_database("store").await?;
    // The schema is made ahead by `backflow migrate`, which may run any number of times.
    for _ in 0..2 {
        let mut migrate = Proc::spawn(env, "migrate", &["migrate", "--store", &store], &[])?;
        let status = migrate.wait_exit(Duration::from_secs(30)).await?;
        ensure!(
            status.success(),
            "backflow migrate exited with {status}:\n{}",
            migrate.log_text()
        );
    }
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut cp = start_control_plane(env, "cp", port, &store, &[], &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    for i in 0..SYNCS {
        let table = format!("src.t{i:02}");
        create_source_table(&data, &table, ROWS, i as i64).await?;
        // 20 sleeps of 0.1 s: about 2 s a run.
        api.create_sync(
            &format!("s{i:02}"),
            pg_sync(
                &slow_query(&table, 100, 0.1),
                &format!("dst.t{i:02}"),
                Some(500),
            ),
        )
        .await?;
    }
    let mut workers = vec![
        start_worker(env, "worker-a", &addr, 2, &[])?,
        start_worker(env, "worker-b", &addr, 2, &[])?,
    ];
    let names = trigger_all(&[&api], SYNCS).await?;

    // Kill the control plane while runs are in flight.
    eventually(Duration::from_secs(30), "two runs to be reading", || {
        let api = api.clone();
        let names = names.clone();
        async move {
            let mut reading = 0;
            for name in &names {
                let run = api.get_run(name).await?;
                if run.state() == v1::RunState::Running && run.counts.unwrap_or_default().read > 0 {
                    reading += 1;
                }
            }
            Ok((reading >= 2).then_some(()))
        }
    })
    .await?;
    cp.kill9().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _cp2 = start_control_plane(env, "cp-restarted", port, &store, &[], &[]).await?;

    let runs = wait_final(&api, &names, Duration::from_secs(80)).await?;
    ensure_succeeded(&runs)?;
    for (i, run) in runs.iter().enumerate() {
        ensure_first_run_counts(run, ROWS as u64)?;
        ensure_same_rows(&data, &format!("src.t{i:02}"), &format!("dst.t{i:02}")).await?;
    }
    let attempts: Vec<u32> = runs.iter().map(|r| r.attempt).collect();
    eprintln!("[control_plane_restart] attempts per run: {attempts:?}");
    for worker in &mut workers {
        worker.ensure_running()?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_lease_twice() -> Result<()> {
    let env = TestEnv::new("two_replicas").await?;
    let result = within(TEST_LIMIT, two_replicas_body(&env)).await;
    env.finish(result).await
}

async fn two_replicas_body(env: &TestEnv) -> Result<()> {
    const SYNCS: usize = 30;
    let store = env.create_database("store").await?;
    let (port1, port2) = (free_port()?, free_port()?);
    let (addr1, addr2) = (format!("127.0.0.1:{port1}"), format!("127.0.0.1:{port2}"));
    // Both start at once on the fresh store: they race to migrate it.
    let (_cp1, _cp2) = tokio::try_join!(
        start_control_plane(env, "cp-1", port1, &store, &[], &[]),
        start_control_plane(env, "cp-2", port2, &store, &[], &[]),
    )?;
    let api1 = Api::new(&addr1, None)?;
    let api2 = Api::new(&addr2, None)?;
    let (_, data) = data_database(env, &api1).await?;
    many_syncs(&api1, &data, SYNCS).await?;
    // Definitions written through one replica are visible through the other.
    let listed = api2
        .syncs
        .clone()
        .list_syncs(v1::ListSyncsRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    ensure!(
        listed.syncs.len() == SYNCS,
        "replica 2 lists {} syncs, expected {SYNCS}",
        listed.syncs.len()
    );
    // Twenty triggers of one sync at once through both replicas: one run.
    let responses = futures::future::try_join_all((0..20).map(|i| {
        let api = if i % 2 == 0 {
            api1.clone()
        } else {
            api2.clone()
        };
        async move { api.trigger("s00", "").await }
    }))
    .await?;
    let mut raced: Vec<String> = responses
        .iter()
        .filter_map(|r| r.run.as_ref().map(|r| r.name.clone()))
        .collect();
    raced.sort_unstable();
    raced.dedup();
    let fresh = responses.iter().filter(|r| !r.coalesced).count();
    ensure!(
        raced.len() == 1 && fresh == 1,
        "20 concurrent triggers through two replicas gave runs {raced:?}, {fresh} not coalesced"
    );
    let mut workers = Vec::new();
    for (i, addr) in [&addr1, &addr1, &addr2, &addr2].into_iter().enumerate() {
        workers.push(start_worker(env, &format!("worker-{i}"), addr, 2, &[])?);
    }
    // s00's run is already queued: triggering it again coalesces into that run.
    let coalesced = api2.trigger("s00", "").await?;
    ensure!(
        coalesced.coalesced && coalesced.run.as_ref().map(|r| &r.name) == raced.first(),
        "a trigger of s00 while its run is active should coalesce: {coalesced:?}"
    );
    let mut names = raced.clone();
    names.extend(
        futures::future::try_join_all((1..SYNCS).map(|i| {
            let api = if i % 2 == 0 {
                api1.clone()
            } else {
                api2.clone()
            };
            async move { api.trigger_new(&format!("s{i:02}")).await }
        }))
        .await?,
    );
    let runs = wait_final(&api2, &names, Duration::from_secs(90)).await?;
    check_many(&runs, &data, true).await?;
    for worker in &mut workers {
        worker.ensure_running()?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigterm_hands_back_or_finishes() -> Result<()> {
    let env = TestEnv::new("worker_sigterm").await?;
    let result = within(TEST_LIMIT, worker_sigterm_body(&env)).await;
    env.finish(result).await
}

async fn worker_sigterm_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    // Default heartbeat (5 s): the lease lives 17 s, so a run back in the queue within a few
    // seconds was handed back, not left to expire.
    let _cp = start_control_plane(
        env,
        "cp",
        port,
        &store,
        &[],
        &[("BACKFLOW__CONTROL_PLANE__RETRY_BACKOFF_SECS", "1")],
    )
    .await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.big", SLOW_ROWS, 3).await?;
    api.create_sync(
        "big",
        pg_sync(&slow_query("src.big", 200, 0.2), "dst.big", Some(500)),
    )
    .await?;
    let mut worker_a = start_worker(
        env,
        "worker-a",
        &addr,
        1,
        &[("BACKFLOW__WORKER__SHUTDOWN_GRACE_SECS", "1")],
    )?;
    let big = api.trigger_new("big").await?;
    eventually(Duration::from_secs(30), "the run to read rows", || {
        let api = api.clone();
        let big = big.clone();
        async move {
            let run = api.get_run(&big).await?;
            ensure!(
                !is_final(&run),
                "the run ended early: {}",
                describe_run(&run)
            );
            Ok(
                (run.state() == v1::RunState::Running && run.counts.unwrap_or_default().read > 0)
                    .then_some(()),
            )
        }
    })
    .await?;

    let term = Instant::now();
    worker_a.sigterm().await?;
    let status = worker_a.wait_exit(Duration::from_secs(15)).await?;
    let took = term.elapsed();
    ensure!(
        status.success(),
        "worker A exited with {status} after SIGTERM"
    );
    let run = api.get_run(&big).await?;
    ensure!(
        run.state() == v1::RunState::Queued
            && run.attempt == 1
            && run
                .error
                .as_ref()
                .is_some_and(|e| e.code == "worker_shutdown" && e.retryable),
        "after SIGTERM ({:.1}s) the run should be queued again with a retryable \
         `worker_shutdown` error: {}",
        took.as_secs_f64(),
        describe_run(&run)
    );

    let mut worker_b = start_worker(env, "worker-b", &addr, 1, &[])?;
    let runs = wait_final(&api, std::slice::from_ref(&big), Duration::from_secs(40)).await?;
    ensure_succeeded(&runs)?;
    ensure!(
        runs[0].attempt == 2,
        "the handed-back run should succeed on attempt 2: {}",
        describe_run(&runs[0])
    );
    ensure_first_run_counts(&runs[0], SLOW_ROWS as u64)?;
    ensure_same_rows(&data, "src.big", "dst.big").await?;

    // An idle worker (its slot in a long poll, default 30 s grace) stops at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = Instant::now();
    worker_b.sigterm().await?;
    let status = worker_b.wait_exit(Duration::from_secs(10)).await?;
    ensure!(
        status.success() && term.elapsed() < Duration::from_secs(3),
        "an idle worker took {:.1}s to stop after SIGTERM ({status})",
        term.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits until run `name` is running with rows read, and returns it.
async fn wait_reading(api: &Api, name: &str) -> Result<v1::Run> {
    eventually(
        Duration::from_secs(30),
        format!("{name} to read rows"),
        || {
            let api = api.clone();
            let name = name.to_owned();
            async move {
                let run = api.get_run(&name).await?;
                ensure!(
                    !is_final(&run),
                    "the run ended early: {}",
                    describe_run(&run)
                );
                Ok((run.state() == v1::RunState::Running
                    && run.counts.unwrap_or_default().read > 0)
                    .then_some(run))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_sigterm_exits_promptly_and_runs_resume() -> Result<()> {
    let env = TestEnv::new("control_plane_sigterm").await?;
    let result = within(TEST_LIMIT, control_plane_sigterm_body(&env)).await;
    env.finish(result).await
}

async fn control_plane_sigterm_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut cp = start_control_plane(env, "cp", port, &store, &[], &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.big", SLOW_ROWS, 7).await?;
    api.create_sync(
        "big",
        pg_sync(&slow_query("src.big", 200, 0.2), "dst.big", Some(500)),
    )
    .await?;
    // Worker A runs the sync; worker B's slots sit in PollWork long polls.
    let mut worker_a = start_worker(env, "worker-a", &addr, 1, &[])?;
    let big = api.trigger_new("big").await?;
    wait_reading(&api, &big).await?;
    let mut worker_b = start_worker(env, "worker-b", &addr, 2, &[])?;
    // A client follows the run.
    let mut watch = api
        .runs
        .clone()
        .watch_run(v1::WatchRunRequest { name: big.clone() })
        .await
        .context("WatchRun")?
        .into_inner();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // SIGTERM: the control plane must stop promptly despite the open stream and long polls.
    let term = Instant::now();
    cp.sigterm().await?;
    let status = cp
        .wait_exit(Duration::from_secs(15))
        .await
        .with_context(|| {
            "the control plane did not exit within 15 s of SIGTERM while a WatchRun stream and \
         PollWork long polls were open"
        })?;
    let took = term.elapsed();
    ensure!(
        status.success(),
        "the control plane exited with {status} after SIGTERM"
    );
    ensure!(
        took < Duration::from_secs(10),
        "the control plane took {:.1}s to stop after SIGTERM",
        took.as_secs_f64()
    );
    // The follower's stream ends (or errors) rather than hanging.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    ensure!(
        ended.is_ok(),
        "the WatchRun stream stayed open after the server stopped"
    );

    // Back up on the same port: the run in flight finishes, on its first attempt.
    let _cp2 = start_control_plane(env, "cp-restarted", port, &store, &[], &[]).await?;
    let runs = wait_final(&api, std::slice::from_ref(&big), Duration::from_secs(60)).await?;
    ensure_succeeded(&runs)?;
    ensure!(
        runs[0].attempt == 1,
        "a 1 s control-plane outage should not cost the run its lease: {}",
        describe_run(&runs[0])
    );
    ensure_first_run_counts(&runs[0], SLOW_ROWS as u64)?;
    ensure_same_rows(&data, "src.big", "dst.big").await?;
    worker_a.ensure_running()?;
    worker_b.ensure_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_fails_over_between_replicas() -> Result<()> {
    let env = TestEnv::new("scheduler_failover").await?;
    let result = within(TEST_LIMIT, scheduler_failover_body(&env)).await;
    env.finish(result).await
}

/// Scheduled runs of `sync`, oldest first.
async fn scheduled_runs(api: &Api, sync: &str) -> Result<Vec<v1::Run>> {
    let mut runs: Vec<v1::Run> = api
        .list_runs(sync)
        .await?
        .into_iter()
        .filter(|r| r.trigger() == v1::RunTrigger::Schedule)
        .collect();
    runs.reverse();
    Ok(runs)
}

async fn scheduler_failover_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let (port1, port2) = (free_port()?, free_port()?);
    let (addr1, addr2) = (format!("127.0.0.1:{port1}"), format!("127.0.0.1:{port2}"));
    let cp1 = start_control_plane(env, "cp-1", port1, &store, &[], &[]).await?;
    let cp2 = start_control_plane(env, "cp-2", port2, &store, &[], &[]).await?;
    let api1 = Api::new(&addr1, None)?;
    let api2 = Api::new(&addr2, None)?;
    let (_, data) = data_database(env, &api1).await?;
    create_source_table(&data, "src.t", 300, 8).await?;
    let mut sync = pg_sync(&plain_query("src.t"), "dst.t", None);
    sync.schedule = Some(v1::Schedule {
        kind: Some(v1::schedule::Kind::Every(prost_types::Duration {
            seconds: 2,
            nanos: 0,
        })),
    });
    api1.create_sync("every2s", sync).await?;

    // The first scheduled run shows which replica runs the scheduler: exactly one says so.
    eventually(Duration::from_secs(15), "a scheduled run", || {
        let api = api1.clone();
        async move { Ok((!scheduled_runs(&api, "every2s").await?.is_empty()).then_some(())) }
    })
    .await?;
    let holds = |p: &Proc| p.log_text().contains("this replica now runs the scheduler");
    let (mut leader, follower_addr, follower_api) = match (holds(&cp1), holds(&cp2)) {
        (true, false) => (cp1, addr2.clone(), api2.clone()),
        (false, true) => (cp2, addr1.clone(), api1.clone()),
        (a, b) => anyhow::bail!(
            "expected exactly one replica to run the scheduler (cp-1: {a}, cp-2: {b})"
        ),
    };
    // The worker talks to the other replica, so the leader's death strands no run.
    let _worker = start_worker(env, "worker", &follower_addr, 1, &[])?;
    eventually(
        Duration::from_secs(15),
        "two scheduled runs to succeed",
        || {
            let api = follower_api.clone();
            async move {
                let runs = scheduled_runs(&api, "every2s").await?;
                let done = runs
                    .iter()
                    .filter(|r| r.state() == v1::RunState::Succeeded)
                    .count();
                Ok((done >= 2).then_some(()))
            }
        },
    )
    .await?;
    // The scheduler's leader dies; the other replica must take over.
    let before = scheduled_runs(&follower_api, "every2s").await?.len();
    leader.kill9().await?;
    eventually(
        Duration::from_secs(20),
        "scheduled runs after the scheduler's replica died",
        || {
            let api = follower_api.clone();
            async move {
                let runs = scheduled_runs(&api, "every2s").await?;
                let done = runs[before.min(runs.len())..]
                    .iter()
                    .filter(|r| r.state() == v1::RunState::Succeeded)
                    .count();
                Ok((done >= 2).then_some(()))
            }
        },
    )
    .await?;
    // Never two scheduled runs for one due time: consecutive runs are about 2 s apart.
    let runs = scheduled_runs(&follower_api, "every2s").await?;
    for pair in runs.windows(2) {
        let at = |r: &v1::Run| {
            r.create_time
                .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
                .unwrap_or_default()
        };
        let gap = at(&pair[1]) - at(&pair[0]);
        ensure!(
            gap >= 1.0,
            "two scheduled runs {gap:.2}s apart ({} and {}): the schedule fired twice",
            pair[0].name,
            pair[1].name
        );
    }
    ensure!(
        !runs.iter().any(|r| r.state() == v1::RunState::Failed),
        "a scheduled run failed: {:?}",
        runs.iter().map(describe_run).collect::<Vec<_>>()
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_runs_stop() -> Result<()> {
    let env = TestEnv::new("cancel").await?;
    let result = within(TEST_LIMIT, cancel_body(&env)).await;
    env.finish(result).await
}

async fn cancel_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _cp = start_control_plane(
        env,
        "cp",
        port,
        &store,
        &["--heartbeat-interval-secs", "1"],
        &[],
    )
    .await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.big", SLOW_ROWS, 9).await?;
    api.create_sync(
        "big",
        pg_sync(&slow_query("src.big", 200, 0.2), "dst.big", Some(500)),
    )
    .await?;

    // A queued run is cancelled at once.
    let queued = api.trigger_new("big").await?;
    let cancelled = api
        .runs
        .clone()
        .cancel_run(v1::CancelRunRequest {
            name: queued.clone(),
        })
        .await
        .context("CancelRun of a queued run")?
        .into_inner()
        .run
        .context("no run")?;
    ensure!(
        cancelled.state() == v1::RunState::Cancelled && cancelled.attempt == 0,
        "a queued run should be cancelled at once: {}",
        describe_run(&cancelled)
    );
    let again = api
        .runs
        .clone()
        .cancel_run(v1::CancelRunRequest {
            name: queued.clone(),
        })
        .await;
    ensure!(
        matches!(&again, Err(s) if s.code() == Code::FailedPrecondition),
        "cancelling a cancelled run should be FAILED_PRECONDITION: {again:?}"
    );

    // A running run stops at the worker's next heartbeat.
    let mut worker = start_worker(env, "worker", &addr, 1, &[])?;
    let running = api.trigger_new("big").await?;
    wait_reading(&api, &running).await?;
    let asked = api
        .runs
        .clone()
        .cancel_run(v1::CancelRunRequest {
            name: running.clone(),
        })
        .await
        .context("CancelRun of a running run")?
        .into_inner()
        .run
        .context("no run")?;
    ensure!(
        asked.cancel_requested,
        "CancelRun of a running run should set cancel_requested: {}",
        describe_run(&asked)
    );
    let asked_at = Instant::now();
    // A sync with a run in flight cannot be deleted.
    let delete = api
        .syncs
        .clone()
        .delete_sync(v1::DeleteSyncRequest {
            name: "syncs/big".into(),
        })
        .await;
    ensure!(
        matches!(&delete, Err(s) if s.code() == Code::FailedPrecondition),
        "deleting a sync with a running run should be FAILED_PRECONDITION: {delete:?}"
    );
    let runs = wait_final(
        &api,
        std::slice::from_ref(&running),
        Duration::from_secs(20),
    )
    .await?;
    let took = asked_at.elapsed();
    ensure!(
        runs[0].state() == v1::RunState::Cancelled && runs[0].attempt == 1,
        "the running run should end cancelled on its first attempt: {}",
        describe_run(&runs[0])
    );
    ensure!(
        took < Duration::from_secs(5),
        "the cancelled run took {:.1}s to stop (heartbeat every 1 s)",
        took.as_secs_f64()
    );
    ensure!(
        runs[0].counts.unwrap_or_default().read < SLOW_ROWS as u64,
        "the cancelled run read every row: {}",
        describe_run(&runs[0])
    );
    // The worker lives on and the next run copies everything.
    worker.ensure_running()?;
    let next = api.trigger_new("big").await?;
    let runs = wait_final(&api, std::slice::from_ref(&next), Duration::from_secs(40)).await?;
    ensure_succeeded(&runs)?;
    ensure_same_rows(&data, "src.big", "dst.big").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_across_workers_use_the_shared_snapshot() -> Result<()> {
    let env = TestEnv::new("incremental_across_workers").await?;
    let result = within(TEST_LIMIT, incremental_body(&env)).await;
    env.finish(result).await
}

async fn incremental_body(env: &TestEnv) -> Result<()> {
    const ROWS: i64 = 3000;
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _cp = start_control_plane(env, "cp", port, &store, &[], &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", ROWS, 10).await?;
    let mut sync = pg_sync(&plain_query("src.t"), "dst.t", Some(700));
    sync.destination.as_mut().context("no destination")?.mode = v1::SyncMode::Mirror as i32;
    api.create_sync("mirror", sync).await?;

    // Worker A makes the first snapshot, then goes away.
    let mut worker_a = start_worker(env, "worker-a", &addr, 1, &[])?;
    let first = api.trigger_new("mirror").await?;
    let runs = wait_final(&api, std::slice::from_ref(&first), Duration::from_secs(40)).await?;
    ensure_succeeded(&runs)?;
    ensure_first_run_counts(&runs[0], ROWS as u64)?;
    worker_a.kill9().await?;

    // The source changes: 10 rows updated, 5 deleted, 7 added.
    let expected = change_ten_five_seven(&data, ROWS as u64).await?;

    // Worker B diffs against worker A's snapshot: only the changes are applied.
    let _worker_b = start_worker(env, "worker-b", &addr, 1, &[])?;
    let second = api.trigger_new("mirror").await?;
    let runs = wait_final(&api, std::slice::from_ref(&second), Duration::from_secs(40)).await?;
    ensure_succeeded(&runs)?;
    let c = runs[0].counts.unwrap_or_default();
    ensure!(
        c == expected,
        "the second run on another worker should apply only the changes:\n  got      {c:?}\n  \
         expected {expected:?}"
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;

    // A full resync ignores the snapshot and writes every row again.
    let full = api
        .syncs
        .clone()
        .trigger_sync(v1::TriggerSyncRequest {
            name: "syncs/mirror".into(),
            full_resync: true,
            request_id: String::new(),
        })
        .await
        .context("TriggerSync full_resync")?
        .into_inner()
        .run
        .context("no run")?;
    ensure!(full.full_resync, "the run does not say it is a full resync");
    let runs = wait_final(
        &api,
        std::slice::from_ref(&full.name),
        Duration::from_secs(40),
    )
    .await?;
    ensure_succeeded(&runs)?;
    let c = runs[0].counts.unwrap_or_default();
    let rows = ROWS as u64 + 2;
    ensure!(
        c.read == rows && c.written == rows && c.deleted == 0 && c.failed == 0,
        "a full resync should write all {rows} rows again: {c:?}"
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_references_resolve_in_the_worker() -> Result<()> {
    let env = TestEnv::new("secret_references").await?;
    let result = within(TEST_LIMIT, secret_references_body(&env)).await;
    env.finish(result).await
}

async fn secret_references_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let data_url = env.create_database("data").await?;
    let data = connect_pg(&data_url, 2).await?;
    sqlx::query("CREATE SCHEMA src").execute(&data).await?;
    sqlx::query("CREATE SCHEMA dst").execute(&data).await?;
    create_source_table(&data, "src.t", 500, 11).await?;
    // The password travels only as a reference; only the worker's environment holds it.
    let mut without_password = url::Url::parse(&data_url)?;
    let password = without_password.password().unwrap_or_default().to_owned();
    without_password
        .set_password(None)
        .map_err(|()| anyhow::anyhow!("cannot strip the password"))?;
    let config = serde_json::json!({
        "url": without_password.to_string(),
        "password": "${env:BF_E2E_DATA_PASSWORD}",
    });

    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _cp = start_control_plane(env, "cp", port, &store, &[], &[]).await?;
    let api = Api::new(&addr, None)?;
    api.create_connection("src", "postgres", config.clone())
        .await?;
    api.create_connection("dst", "postgres", config).await?;
    let stored = api
        .connections
        .clone()
        .get_connection(v1::GetConnectionRequest {
            name: "connections/src".into(),
        })
        .await?
        .into_inner()
        .connection
        .context("no connection")?;
    let stored = backflow_proto::json::struct_to_json(&stored.config.unwrap_or_default());
    ensure!(
        stored["password"] == "${env:BF_E2E_DATA_PASSWORD}",
        "the API should return the reference as written: {stored}"
    );
    api.create_sync("s", pg_sync(&plain_query("src.t"), "dst.t", None))
        .await?;
    let _worker = start_worker(
        env,
        "worker",
        &addr,
        1,
        &[("BF_E2E_DATA_PASSWORD", password.as_str())],
    )?;
    let run = api.trigger_new("s").await?;
    let runs = wait_final(&api, std::slice::from_ref(&run), Duration::from_secs(40)).await?;
    ensure_succeeded(&runs)?;
    ensure_first_run_counts(&runs[0], 500)?;
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_outage_longer_than_leases_still_converges() -> Result<()> {
    let env = TestEnv::new("long_outage").await?;
    let result = within(TEST_LIMIT, long_outage_body(&env)).await;
    env.finish(result).await
}

async fn long_outage_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let hb = ["--heartbeat-interval-secs", "1"];
    let mut cp = start_control_plane(env, "cp", port, &store, &hb, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    for name in ["a", "b"] {
        create_source_table(&data, &format!("src.{name}"), SLOW_ROWS, 14).await?;
        api.create_sync(
            name,
            pg_sync(
                &slow_query(&format!("src.{name}"), 200, 0.2),
                &format!("dst.{name}"),
                Some(500),
            ),
        )
        .await?;
    }
    let mut worker = start_worker(env, "worker", &addr, 2, &[])?;
    let names = vec![api.trigger_new("a").await?, api.trigger_new("b").await?];
    for name in &names {
        wait_reading(&api, name).await?;
    }
    // Down for 7 s, longer than a lease (5 s): the restarted control plane finds the leases
    // expired while their worker still runs them.
    cp.kill9().await?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let _cp2 = start_control_plane(env, "cp-restarted", port, &store, &hb, &[]).await?;
    let runs = wait_final(&api, &names, Duration::from_secs(60)).await?;
    ensure_succeeded(&runs)?;
    for (run, name) in runs.iter().zip(["a", "b"]) {
        ensure_first_run_counts(run, SLOW_ROWS as u64)?;
        ensure_same_rows(&data, &format!("src.{name}"), &format!("dst.{name}")).await?;
    }
    let attempts: Vec<u32> = runs.iter().map(|r| r.attempt).collect();
    eprintln!("[long_outage] attempts per run: {attempts:?}");
    worker.ensure_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_destination_keeps_its_lease() -> Result<()> {
    let env = TestEnv::new("blocked_destination").await?;
    let result = within(TEST_LIMIT, blocked_destination_body(&env)).await;
    env.finish(result).await
}

async fn blocked_destination_body(env: &TestEnv) -> Result<()> {
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _cp = start_control_plane(
        env,
        "cp",
        port,
        &store,
        &["--heartbeat-interval-secs", "1"],
        &[],
    )
    .await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 2000, 17).await?;
    sqlx::query(
        "CREATE TABLE dst.t (id bigint PRIMARY KEY, name text NOT NULL, score double precision, \
         active boolean NOT NULL, updated_at timestamptz NOT NULL)",
    )
    .execute(&data)
    .await?;
    let mut sync = pg_sync(&plain_query("src.t"), "dst.t", Some(500));
    sync.destination
        .as_mut()
        .context("no destination")?
        .create_table = false;
    api.create_sync("s", sync).await?;
    let _worker = start_worker(env, "worker", &addr, 1, &[])?;

    // Someone holds the destination table for 8 s, longer than a lease (5 s).
    let mut locker = data.begin().await?;
    sqlx::query("LOCK TABLE dst.t IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await?;
    let run = api.trigger_new("s").await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let blocked = api.get_run(&run).await?;
    locker.rollback().await?;
    ensure!(
        blocked.state() == v1::RunState::Running && blocked.attempt == 1,
        "a worker waiting on a locked destination must keep heartbeating and keep its lease: {}",
        describe_run(&blocked)
    );
    let runs = wait_final(&api, std::slice::from_ref(&run), Duration::from_secs(30)).await?;
    ensure_succeeded(&runs)?;
    ensure!(
        runs[0].attempt == 1,
        "the blocked run lost its lease: {}",
        describe_run(&runs[0])
    );
    ensure_first_run_counts(&runs[0], 2000)?;
    ensure_same_rows(&data, "src.t", "dst.t").await?;

    // Blocked again, then cancelled: the worker stops waiting on the lock.
    sqlx::query("UPDATE src.t SET name = name || '+' WHERE id <= 100")
        .execute(&data)
        .await?;
    let mut locker = data.begin().await?;
    sqlx::query("LOCK TABLE dst.t IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await?;
    let run = api.trigger_new("s").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    api.runs
        .clone()
        .cancel_run(v1::CancelRunRequest { name: run.clone() })
        .await
        .context("CancelRun")?;
    let cancelled = wait_final(&api, std::slice::from_ref(&run), Duration::from_secs(8)).await;
    locker.rollback().await?;
    let cancelled = cancelled.context("a run blocked on a locked destination ignored CancelRun")?;
    ensure!(
        cancelled[0].state() == v1::RunState::Cancelled,
        "the blocked run should end cancelled: {}",
        describe_run(&cancelled[0])
    );
    Ok(())
}
