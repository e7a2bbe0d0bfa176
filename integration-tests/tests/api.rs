//! The public API and the CLI against real `backflow` processes: idempotent and coalesced
//! triggers, schedules, validation errors that name the field, authentication, and the
//! `apply` / `trigger --wait` / `runs list` flow.

// Progress notes (timings) go to the test's captured stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use backflow_proto::v1;
use common::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_is_idempotent_and_coalesced() -> Result<()> {
    let env = TestEnv::new("trigger_idempotent").await?;
    let result = within(TEST_LIMIT, trigger_idempotent_body(&env)).await;
    env.finish(result).await
}

async fn trigger_idempotent_body(env: &TestEnv) -> Result<()> {
    // No worker yet: runs stay queued until the test starts one.
    let (_cp, addr) = sqlite_control_plane(env, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 500, 1).await?;
    api.create_sync("s", pg_sync(&plain_query("src.t"), "dst.t", None))
        .await?;
    api.create_sync("race", pg_sync(&plain_query("src.t"), "dst.race", None))
        .await?;

    // The same request id twice: one run.
    let first = api.trigger("s", "req-1").await?;
    let run = first.run.clone().context("no run")?;
    ensure!(
        !first.coalesced && run.state() == v1::RunState::Queued,
        "the first trigger should queue a new run: {first:?}"
    );
    let again = api.trigger("s", "req-1").await?;
    let again_run = again.run.context("no run")?;
    ensure!(
        again_run.name == run.name,
        "a repeated request id made another run: {} then {}",
        run.name,
        again_run.name
    );
    let runs = api.list_runs("s").await?;
    ensure!(
        runs.len() == 1,
        "ListRuns shows {} runs after two triggers with one request id",
        runs.len()
    );

    // Without a request id (or with another one) while the run is queued: coalesced.
    for request_id in ["", "req-2"] {
        let coalesced = api.trigger("s", request_id).await?;
        ensure!(
            coalesced.coalesced && coalesced.run.as_ref().map(|r| &r.name) == Some(&run.name),
            "a trigger (request id {request_id:?}) while {} is queued should coalesce into it: \
             {coalesced:?}",
            run.name
        );
    }
    ensure!(
        api.list_runs("s").await?.len() == 1,
        "coalesced triggers created runs"
    );

    // Ten triggers at once: one run, exactly one of them not coalesced.
    let responses = futures::future::try_join_all((0..10).map(|_| {
        let api = api.clone();
        async move { api.trigger("race", "").await }
    }))
    .await?;
    let names: HashSet<String> = responses
        .iter()
        .filter_map(|r| r.run.as_ref().map(|r| r.name.clone()))
        .collect();
    let fresh = responses.iter().filter(|r| !r.coalesced).count();
    ensure!(
        names.len() == 1 && fresh == 1,
        "ten concurrent triggers gave runs {names:?} with {fresh} not coalesced"
    );
    ensure!(
        api.list_runs("race").await?.len() == 1,
        "concurrent triggers created several runs"
    );

    // Once the run has finished, the old request id still answers with the old run, and a
    // trigger without one queues a new run.
    let _worker = start_worker(env, "worker", &addr, 2, &[])?;
    let race = names.into_iter().next().context("no race run")?;
    let done = wait_final(&api, &[run.name.clone(), race], Duration::from_secs(60)).await?;
    ensure_succeeded(&done)?;
    let replay = api.trigger("s", "req-1").await?;
    let replay_run = replay.run.context("no run")?;
    ensure!(
        replay_run.name == run.name && replay_run.state() == v1::RunState::Succeeded,
        "a request id replayed after the run ended should return that run: {}",
        describe_run(&replay_run)
    );
    ensure!(
        api.list_runs("s").await?.len() == 1,
        "the replay created a run"
    );
    let next = api.trigger("s", "").await?;
    let next_run = next.run.clone().context("no run")?;
    ensure!(
        !next.coalesced && next_run.name != run.name,
        "a trigger after the run ended should queue a new run: {next:?}"
    );
    ensure!(
        api.list_runs("s").await?.len() == 2,
        "expected two runs of s"
    );
    let second = wait_final(
        &api,
        std::slice::from_ref(&next_run.name),
        Duration::from_secs(60),
    )
    .await?;
    ensure_succeeded(&second)?;
    // The second run found nothing new.
    let c = second[0].counts.unwrap_or_default();
    ensure!(
        c.read == 500 && c.unchanged == 500 && c.added == 0 && c.written == 0,
        "the second run should find every row unchanged: {c:?}"
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_schedule_fires() -> Result<()> {
    let env = TestEnv::new("interval_schedule").await?;
    let result = within(TEST_LIMIT, interval_schedule_body(&env)).await;
    env.finish(result).await
}

async fn interval_schedule_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 2, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 300, 4).await?;
    let mut sync = pg_sync(&plain_query("src.t"), "dst.t", None);
    sync.schedule = Some(v1::Schedule {
        kind: Some(v1::schedule::Kind::Every(prost_types::Duration {
            seconds: 2,
            nanos: 0,
        })),
    });
    api.create_sync("every2s", sync).await?;

    let runs = eventually(
        Duration::from_secs(12),
        "two scheduled runs to succeed",
        || {
            let api = api.clone();
            async move {
                let runs = api.list_runs("every2s").await?;
                let done = runs
                    .iter()
                    .filter(|r| {
                        r.trigger() == v1::RunTrigger::Schedule
                            && r.state() == v1::RunState::Succeeded
                    })
                    .count();
                Ok((done >= 2).then_some(runs))
            }
        },
    )
    .await?;
    for run in &runs {
        ensure!(
            run.trigger() == v1::RunTrigger::Schedule,
            "a run nobody triggered is not a scheduled one: {}",
            describe_run(run)
        );
        ensure!(
            matches!(
                run.state(),
                v1::RunState::Succeeded | v1::RunState::Queued | v1::RunState::Running
            ),
            "a scheduled run failed: {}",
            describe_run(run)
        );
    }
    ensure_same_rows(&data, "src.t", "dst.t").await?;

    // Paused: triggers are refused and the schedule stops firing.
    api.syncs
        .clone()
        .pause_sync(v1::PauseSyncRequest {
            name: "syncs/every2s".into(),
        })
        .await
        .context("PauseSync")?;
    let refused = api.trigger("every2s", "").await;
    ensure!(
        refused
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<tonic::Status>())
            .is_some_and(|s| s.code() == Code::FailedPrecondition),
        "a trigger of a paused sync should be FAILED_PRECONDITION: {refused:?}"
    );
    // A run fired just before the pause may still be created; after that, nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused_count = api.list_runs("every2s").await?.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = api.list_runs("every2s").await?.len();
    ensure!(
        later == paused_count,
        "a paused sync got {} new runs in 4 s",
        later - paused_count
    );
    api.syncs
        .clone()
        .resume_sync(v1::ResumeSyncRequest {
            name: "syncs/every2s".into(),
        })
        .await
        .context("ResumeSync")?;
    eventually(
        Duration::from_secs(8),
        "a scheduled run after resuming",
        || {
            let api = api.clone();
            async move { Ok((api.list_runs("every2s").await?.len() > later).then_some(())) }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_invalid_argument_naming_the_field() -> Result<()> {
    let env = TestEnv::new("bad_definitions").await?;
    let result = within(TEST_LIMIT, bad_definitions_body(&env)).await;
    env.finish(result).await
}

async fn bad_definitions_body(env: &TestEnv) -> Result<()> {
    let (_cp, addr) = sqlite_control_plane(env, &[]).await?;
    let api = Api::new(&addr, None)?;
    let url = postgres_url();
    api.create_pg_connection("src", &url).await?;
    api.create_pg_connection("dst", &url).await?;
    let good = || pg_sync("SELECT 1 AS id", "dst_table", None);

    let mut no_key = good();
    no_key.primary_key.clear();
    let mut unknown_connection = good();
    unknown_connection.source = Some(v1::SyncSource {
        connection: "connections/nope".into(),
        query: "SELECT 1 AS id".into(),
    });
    let mut bad_cron = good();
    bad_cron.schedule = Some(v1::Schedule {
        kind: Some(v1::schedule::Kind::Cron("every tuesday".into())),
    });
    let writing = pg_sync("DELETE FROM customers", "dst_table", None);
    for (id, sync, field) in [
        ("no_key", no_key, "sync.primary_key"),
        ("writing_query", writing, "sync.source.query"),
        (
            "unknown_connection",
            unknown_connection,
            "sync.source.connection",
        ),
        ("bad_cron", bad_cron, "sync.schedule.cron"),
    ] {
        let result = api
            .syncs
            .clone()
            .create_sync(v1::CreateSyncRequest {
                sync_id: id.into(),
                sync: Some(sync),
            })
            .await;
        let status = match result {
            Ok(response) => bail!("CreateSync {id} was accepted: {:?}", response.into_inner()),
            Err(status) => status,
        };
        let fields = violated_fields(&status).with_context(|| format!("CreateSync {id}"))?;
        ensure!(
            fields.iter().any(|f| f == field),
            "CreateSync {id}: the violations name {fields:?}, not {field}"
        );
        let get = api
            .syncs
            .clone()
            .get_sync(v1::GetSyncRequest {
                name: format!("syncs/{id}"),
            })
            .await;
        ensure!(
            matches!(&get, Err(s) if s.code() == Code::NotFound),
            "the refused sync {id} exists anyway: {get:?}"
        );
    }
    // The good one is accepted: the refusals were about the fields.
    api.create_sync("good", good()).await?;
    // A connection in use cannot be deleted.
    let delete = api
        .connections
        .clone()
        .delete_connection(v1::DeleteConnectionRequest {
            name: "connections/src".into(),
        })
        .await;
    ensure!(
        matches!(&delete, Err(s) if s.code() == Code::FailedPrecondition),
        "deleting a connection a sync uses should be FAILED_PRECONDITION: {delete:?}"
    );

    // `apply` refuses an unknown key before reaching the server, naming the key and its line.
    let bad_yaml = format!(
        "connections:\n  - name: src\n    type: postgres\n    config: {{ url: \"{url}\" }}\n\
         syncs:\n  - name: typo\n    source: {{ connection: src, query: \"SELECT 1 AS id\" }}\n\
         \x20   primary_keys: [id]\n    destination: {{ connection: src, table: typo, mode: upsert }}\n"
    );
    let line = bad_yaml
        .lines()
        .position(|l| l.contains("primary_keys"))
        .context("no primary_keys line")?
        + 1;
    std::fs::write(env.path().join("bad.yaml"), &bad_yaml)?;
    let out = run_cli(env, &addr, &["apply", "-f", "bad.yaml"]).await?;
    ensure!(
        out.code != 0,
        "apply of a file with an unknown key succeeded: {out:?}"
    );
    ensure!(
        out.stderr.contains("primary_keys") && out.stderr.contains(&format!("line {line}")),
        "apply's error should name `primary_keys` and line {line}: {:?}",
        out.stderr
    );
    ensure!(
        !out.stdout.contains("created"),
        "apply changed the server despite a bad file: {:?}",
        out.stdout
    );

    // A file that parses but that the server refuses: the error names the field.
    let rejected_yaml = format!(
        "connections:\n  - name: src\n    type: postgres\n    config: {{ url: \"{url}\" }}\n\
         syncs:\n  - name: cron_typo\n    source: {{ connection: src, query: \"SELECT 1 AS id\" }}\n\
         \x20   primary_key: [id]\n    destination: {{ connection: src, table: cron_typo, mode: upsert }}\n\
         \x20   schedule: {{ cron: \"every tuesday\" }}\n"
    );
    std::fs::write(env.path().join("rejected.yaml"), &rejected_yaml)?;
    let out = run_cli(env, &addr, &["apply", "-f", "rejected.yaml"]).await?;
    ensure!(
        out.code != 0,
        "apply of a sync with a bad cron succeeded: {out:?}"
    );
    ensure!(
        out.stderr.contains("sync.schedule.cron") && out.stderr.contains("cron_typo"),
        "apply's error should name the sync and `sync.schedule.cron`: {:?}",
        out.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rejects_missing_or_wrong_tokens() -> Result<()> {
    let env = TestEnv::new("auth").await?;
    let result = within(TEST_LIMIT, auth_body(&env)).await;
    env.finish(result).await
}

async fn auth_body(env: &TestEnv) -> Result<()> {
    let (_cp, addr) = sqlite_control_plane(
        env,
        &[
            (
                "BACKFLOW__CONTROL_PLANE__API_TOKENS",
                "[apitokenone, apitokentwo]",
            ),
            ("BACKFLOW__CONTROL_PLANE__WORKER_TOKEN", "workertoken"),
        ],
    )
    .await?;
    let anonymous = Api::new(&addr, None)?;
    let wrong = Api::new(&addr, Some("nottoken"))?;
    let as_worker = Api::new(&addr, Some("workertoken"))?;
    let api = Api::new(&addr, Some("apitokenone"))?;
    let api2 = Api::new(&addr, Some("apitokentwo"))?;

    let list = |api: &Api| {
        let mut syncs = api.syncs.clone();
        async move {
            syncs
                .list_syncs(v1::ListSyncsRequest {
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
        }
    };
    for (who, client) in [
        ("no token", &anonymous),
        ("a wrong token", &wrong),
        ("the worker token", &as_worker),
    ] {
        let result = list(client).await;
        ensure!(
            matches!(&result, Err(s) if s.code() == Code::Unauthenticated),
            "ListSyncs with {who} should be UNAUTHENTICATED: {result:?}"
        );
    }
    list(&api)
        .await
        .context("ListSyncs with the first api token")?;
    list(&api2)
        .await
        .context("ListSyncs with the second api token")?;

    let poll = |api: &Api| {
        let mut workers = api.workers.clone();
        async move {
            workers
                .poll_work(v1::PollWorkRequest {
                    worker_id: "auth-test".into(),
                    wait: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 100_000_000,
                    }),
                })
                .await
        }
    };
    for (who, client) in [("no token", &anonymous), ("the api token", &api)] {
        let result = poll(client).await;
        ensure!(
            matches!(&result, Err(s) if s.code() == Code::Unauthenticated),
            "PollWork with {who} should be UNAUTHENTICATED: {result:?}"
        );
    }
    let polled = poll(&as_worker)
        .await
        .context("PollWork with the worker token")?;
    ensure!(
        polled.into_inner().lease.is_none(),
        "PollWork leased a run though none was queued"
    );

    let health = anonymous
        .health
        .clone()
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("the health check without a token")?
        .into_inner();
    ensure!(
        health.status() == ServingStatus::Serving,
        "health says {health:?}"
    );

    // A worker with a wrong token gets nothing; one with the right token runs the sync.
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 400, 5).await?;
    api.create_sync("s", pg_sync(&plain_query("src.t"), "dst.t", None))
        .await?;
    let mut impostor = start_worker(
        env,
        "worker-wrong-token",
        &addr,
        1,
        &[("BACKFLOW__WORKER__TOKEN", "apitokenone")],
    )?;
    let run = api.trigger_new("s").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = api.get_run(&run).await?;
    ensure!(
        waiting.state() == v1::RunState::Queued && waiting.attempt == 0,
        "a worker with the api token leased a run: {}",
        describe_run(&waiting)
    );
    impostor.ensure_running()?;
    impostor.kill9().await?;
    let _worker = start_worker(
        env,
        "worker",
        &addr,
        1,
        &[("BACKFLOW__WORKER__TOKEN", "workertoken")],
    )?;
    let runs = wait_final(&api, std::slice::from_ref(&run), Duration::from_secs(60)).await?;
    ensure_succeeded(&runs)?;
    ensure_first_run_counts(&runs[0], 400)?;
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_apply_trigger_wait_and_list_runs() -> Result<()> {
    let env = TestEnv::new("cli_flow").await?;
    let result = within(TEST_LIMIT, cli_flow_body(&env)).await;
    env.finish(result).await
}

async fn cli_flow_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut standalone = start_standalone(env, "standalone", port, 2, &[]).await?;
    let data_url = env.create_database("data").await?;
    let data = connect_pg(&data_url, 2).await?;
    sqlx::query("CREATE SCHEMA src").execute(&data).await?;
    sqlx::query("CREATE SCHEMA dst").execute(&data).await?;
    create_source_table(&data, "src.scores", 2500, 6).await?;
    let yaml = format!(
        "connections:\n\
         \x20 - name: warehouse\n    type: postgres\n    config: {{ url: \"{data_url}\" }}\n\
         \x20 - name: app_db\n    type: postgres\n    config: {{ url: \"{data_url}\" }}\n\
         syncs:\n\
         \x20 - name: scores\n\
         \x20   source: {{ connection: warehouse, query: \"SELECT {COLUMNS} FROM src.scores\" }}\n\
         \x20   primary_key: [id]\n\
         \x20   destination: {{ connection: app_db, table: dst.scores, mode: upsert, create_table: true }}\n\
         \x20   options: {{ batch_size: 1000 }}\n"
    );
    std::fs::write(env.path().join("backflow.yaml"), yaml)?;

    let first = run_cli(env, &addr, &["apply", "-f", "backflow.yaml"]).await?;
    first.ensure_ok("apply")?;
    let lines: Vec<&str> = first.stdout.lines().collect();
    ensure!(
        lines
            == [
                "created connection warehouse",
                "created connection app_db",
                "created sync scores"
            ],
        "the first apply printed {:?}",
        first.stdout
    );
    let second = run_cli(env, &addr, &["apply", "-f", "backflow.yaml"]).await?;
    second.ensure_ok("apply (again)")?;
    let lines: Vec<&str> = second.stdout.lines().collect();
    ensure!(
        lines
            == [
                "unchanged connection warehouse",
                "unchanged connection app_db",
                "unchanged sync scores"
            ],
        "the second apply printed {:?}",
        second.stdout
    );

    let trigger = run_cli(env, &addr, &["trigger", "scores", "--wait"]).await?;
    trigger.ensure_ok("trigger scores --wait")?;
    ensure!(
        trigger.stdout.contains("succeeded"),
        "trigger --wait did not report success: {:?}",
        trigger.stdout
    );
    ensure_same_rows(&data, "src.scores", "dst.scores").await?;

    let list = run_cli(env, &addr, &["runs", "list", "--output", "json"]).await?;
    list.ensure_ok("runs list --output json")?;
    let runs: serde_json::Value = serde_json::from_str(&list.stdout)
        .with_context(|| format!("runs list --output json printed {:?}", list.stdout))?;
    let runs = runs
        .as_array()
        .context("runs list --output json is not an array")?;
    ensure!(runs.len() == 1, "expected one run, got {runs:?}");
    let run = &runs[0];
    ensure!(
        run["sync"] == "syncs/scores"
            && run["state"] == "succeeded"
            && run["trigger"] == "manual"
            && run["attempt"] == 1
            && run["counts"]["read"] == 2500
            && run["counts"]["written"] == 2500,
        "unexpected run in the JSON list: {run}"
    );

    // A failing run makes `trigger --wait` exit non-zero.
    sqlx::query("DROP TABLE src.scores").execute(&data).await?;
    let failing = run_cli(env, &addr, &["trigger", "scores", "--wait"]).await?;
    ensure!(
        failing.code != 0,
        "trigger --wait of a sync whose source table is gone exited 0: {failing:?}"
    );

    // An idle standalone stops cleanly and promptly on SIGTERM.
    standalone.sigterm().await?;
    let status = standalone
        .wait_exit(Duration::from_secs(10))
        .await
        .context("standalone did not exit within 10 s of SIGTERM")?;
    ensure!(
        status.success(),
        "standalone exited with {status} after SIGTERM"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_retry_until_max_attempts() -> Result<()> {
    let env = TestEnv::new("retries").await?;
    let result = within(TEST_LIMIT, retries_body(&env)).await;
    env.finish(result).await
}

async fn retries_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(
        env,
        "standalone",
        port,
        2,
        &[("BACKFLOW__CONTROL_PLANE__RETRY_BACKOFF_SECS", "1")],
    )
    .await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 200, 12).await?;
    // A destination nobody listens on: a connectivity error, which may pass on a retry.
    let closed = free_port()?;
    api.create_connection(
        "down",
        "postgres",
        serde_json::json!({
            "url": format!("postgres://backflow:backflow@127.0.0.1:{closed}/nothing"),
            "connect_timeout_secs": 1,
        }),
    )
    .await?;
    let mut unreachable = pg_sync(&plain_query("src.t"), "dst.t", None);
    unreachable
        .destination
        .as_mut()
        .context("no destination")?
        .connection = "connections/down".into();
    unreachable
        .options
        .as_mut()
        .context("no options")?
        .max_attempts = Some(2);
    api.create_sync("unreachable", unreachable).await?;
    // A source query that can never work: not retried.
    api.create_sync(
        "missing",
        pg_sync(&plain_query("src.does_not_exist"), "dst.missing", None),
    )
    .await?;

    let retried = api.trigger_new("unreachable").await?;
    let hopeless = api.trigger_new("missing").await?;
    let runs = wait_final(&api, &[retried, hopeless], Duration::from_secs(40)).await?;
    let (retried, hopeless) = (&runs[0], &runs[1]);
    ensure!(
        retried.state() == v1::RunState::Failed
            && retried.attempt == 2
            && retried.max_attempts == 2
            && retried.error.as_ref().is_some_and(|e| e.retryable),
        "an unreachable destination should fail after its 2 attempts with a retryable error: {}",
        describe_run(retried)
    );
    ensure!(
        hopeless.state() == v1::RunState::Failed
            && hopeless.attempt == 1
            && hopeless
                .error
                .as_ref()
                .is_some_and(|e| !e.retryable && e.message.contains("does_not_exist")),
        "a missing source table should fail at once, naming the table: {}",
        describe_run(hopeless)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sync_runs_follow_success() -> Result<()> {
    let env = TestEnv::new("after_sync").await?;
    let result = within(TEST_LIMIT, after_sync_body(&env)).await;
    env.finish(result).await
}

async fn after_sync_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 2, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.a", 300, 13).await?;
    api.create_sync("first", pg_sync(&plain_query("src.a"), "dst.a", None))
        .await?;
    // The follower reads what the first sync wrote.
    let mut follower = pg_sync(&plain_query("dst.a"), "dst.b", None);
    follower.schedule = Some(v1::Schedule {
        kind: Some(v1::schedule::Kind::AfterSync("syncs/first".into())),
    });
    api.create_sync("second", follower).await?;

    let first = api.trigger_new("first").await?;
    wait_final(&api, std::slice::from_ref(&first), Duration::from_secs(30))
        .await
        .and_then(|runs| ensure_succeeded(&runs))?;
    let followed = eventually(Duration::from_secs(30), "the after-sync run", || {
        let api = api.clone();
        async move {
            let runs = api.list_runs("second").await?;
            Ok(runs.into_iter().find(is_final))
        }
    })
    .await?;
    ensure!(
        followed.trigger() == v1::RunTrigger::AfterSync
            && followed.state() == v1::RunState::Succeeded,
        "the follower should run after the first sync succeeded: {}",
        describe_run(&followed)
    );
    ensure_first_run_counts(&followed, 300)?;
    ensure_same_rows(&data, "src.a", "dst.b").await?;
    Ok(())
}

/// The comparison every test relies on must see a missing row, an extra row, a changed value
/// and a NULL that became a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_comparison_detects_differences() -> Result<()> {
    let env = TestEnv::new("row_comparison").await?;
    let result = within(TEST_LIMIT, row_comparison_body(&env)).await;
    env.finish(result).await
}

async fn row_comparison_body(env: &TestEnv) -> Result<()> {
    let url = env.create_database("data").await?;
    let pool = connect_pg(&url, 2).await?;
    create_source_table(&pool, "a", 100, 1).await?;
    create_source_table(&pool, "b", 100, 1).await?;
    ensure_same_rows(&pool, "a", "b").await?;
    for (break_it, fix_it) in [
        (
            "DELETE FROM b WHERE id = 5",
            "INSERT INTO b SELECT * FROM a WHERE id = 5",
        ),
        (
            "INSERT INTO b SELECT id + 1000, name, score, active, updated_at FROM a WHERE id = 5",
            "DELETE FROM b WHERE id = 1005",
        ),
        (
            "UPDATE b SET name = name || 'x' WHERE id = 9",
            "UPDATE b SET name = a.name FROM a WHERE a.id = b.id AND b.id = 9",
        ),
        (
            "UPDATE b SET score = 1 WHERE id = 14",
            "UPDATE b SET score = NULL WHERE id = 14",
        ),
        (
            "UPDATE b SET updated_at = updated_at + interval '1 microsecond' WHERE id = 3",
            "UPDATE b SET updated_at = a.updated_at FROM a WHERE a.id = b.id AND b.id = 3",
        ),
    ] {
        sqlx::query(break_it).execute(&pool).await?;
        ensure!(
            ensure_same_rows(&pool, "a", "b").await.is_err(),
            "the comparison missed: {break_it}"
        );
        sqlx::query(fix_it).execute(&pool).await?;
        ensure_same_rows(&pool, "a", "b")
            .await
            .with_context(|| format!("after undoing {break_it}"))?;
    }
    Ok(())
}

/// Runs sync `id` once and fails unless it succeeded; returns the run.
async fn run_once(api: &Api, id: &str) -> Result<v1::Run> {
    let run = api.trigger_new(id).await?;
    let runs = wait_final(api, std::slice::from_ref(&run), Duration::from_secs(30)).await?;
    ensure_succeeded(&runs)?;
    runs.into_iter().next().context("no run")
}

/// Replaces the fields of sync `id` named by `paths` with those of `sync`.
async fn update_sync(api: &Api, id: &str, mut sync: v1::Sync, paths: &[&str]) -> Result<()> {
    sync.name = format!("syncs/{id}");
    api.syncs
        .clone()
        .update_sync(v1::UpdateSyncRequest {
            sync: Some(sync),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        })
        .await
        .with_context(|| format!("UpdateSync {id} {paths:?}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_destination_resends_every_row() -> Result<()> {
    let env = TestEnv::new("moved_destination").await?;
    let result = within(TEST_LIMIT, moved_destination_body(&env)).await;
    env.finish(result).await
}

async fn moved_destination_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 1, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 400, 15).await?;
    api.create_sync("s", pg_sync(&plain_query("src.t"), "dst.first", None))
        .await?;
    run_once(&api, "s").await?;
    ensure_same_rows(&data, "src.t", "dst.first").await?;

    // Same source, another table: the last snapshot describes dst.first, not dst.second,
    // so every row must be written again.
    update_sync(
        &api,
        "s",
        pg_sync("", "dst.second", None),
        &["destination.object"],
    )
    .await?;
    let moved = run_once(&api, "s").await?;
    ensure_same_rows(&data, "src.t", "dst.second")
        .await
        .with_context(|| {
            format!(
                "after moving the destination to dst.second, the run wrote nothing there: {}",
                describe_run(&moved)
            )
        })?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remapping_a_column_fills_the_new_column() -> Result<()> {
    let env = TestEnv::new("remapped_column").await?;
    let result = within(TEST_LIMIT, remapped_column_body(&env)).await;
    env.finish(result).await
}

async fn remapped_column_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 1, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 400, 16).await?;
    sqlx::query("CREATE TABLE dst.m (id bigint PRIMARY KEY, label_a text, label_b text)")
        .execute(&data)
        .await?;
    let mut sync = pg_sync("SELECT id, name FROM src.t", "dst.m", None);
    sync.destination
        .as_mut()
        .context("no destination")?
        .create_table = false;
    sync.mappings = vec![v1::Mapping {
        from: "name".into(),
        to: "label_a".into(),
    }];
    api.create_sync("m", sync.clone()).await?;
    run_once(&api, "m").await?;

    // `name` now goes to label_b: every row must be written again to fill it.
    sync.mappings[0].to = "label_b".into();
    update_sync(&api, "m", sync, &["mappings"]).await?;
    let remapped = run_once(&api, "m").await?;
    let filled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dst.m d JOIN src.t s USING (id) WHERE d.label_b = s.name",
    )
    .fetch_one(&data)
    .await?;
    ensure!(
        filled == 400,
        "after remapping name to label_b, {filled} of 400 rows have it: {}",
        describe_run(&remapped)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_listed_and_retried() -> Result<()> {
    let env = TestEnv::new("rejected_rows").await?;
    let result = within(TEST_LIMIT, rejected_rows_body(&env)).await;
    env.finish(result).await
}

async fn rejected_rows_body(env: &TestEnv) -> Result<()> {
    const ROWS: i64 = 1000;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 1, &[]).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", ROWS, 1).await?;
    // The destination refuses scores of 100 and more.
    sqlx::query(
        "CREATE TABLE dst.t (id bigint PRIMARY KEY, name text NOT NULL, score double precision \
         CONSTRAINT score_below_100 CHECK (score < 100), active boolean NOT NULL, \
         updated_at timestamptz NOT NULL)",
    )
    .execute(&data)
    .await?;
    let refused: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM src.t WHERE score >= 100 ORDER BY id")
            .fetch_all(&data)
            .await?;
    ensure!(!refused.is_empty(), "the data has no row to refuse");
    let mut sync = pg_sync(&plain_query("src.t"), "dst.t", Some(256));
    sync.destination
        .as_mut()
        .context("no destination")?
        .create_table = false;
    api.create_sync("s", sync).await?;

    let first = run_once(&api, "s").await?;
    let c = first.counts.unwrap_or_default();
    let bad = refused.len() as u64;
    ensure!(
        c.read == ROWS as u64 && c.failed == bad && c.written == ROWS as u64 - bad,
        "expected {bad} refused rows and the rest written: {c:?}"
    );
    ensure!(
        first.rejected_rows == bad,
        "the run says {} rejected rows, expected {bad}",
        first.rejected_rows
    );
    // Every refused key is listed once, page by page, with the destination's reason.
    let mut listed = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = api
            .runs
            .clone()
            .list_rejected_rows(v1::ListRejectedRowsRequest {
                run: first.name.clone(),
                page_size: 50,
                page_token,
            })
            .await
            .context("ListRejectedRows")?
            .into_inner();
        listed.extend(page.rejected_rows);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut keys: Vec<String> = listed.iter().map(|r| r.key.clone()).collect();
    keys.sort_unstable();
    let mut expected: Vec<String> = refused.iter().map(|id| format!("id={id}")).collect();
    expected.sort_unstable();
    ensure!(
        keys == expected,
        "ListRejectedRows gave {} keys (first {:?}), expected {} (first {:?})",
        keys.len(),
        keys.first(),
        expected.len(),
        expected.first()
    );
    ensure!(
        listed
            .iter()
            .all(|r| r.operation == "write" && r.message.contains("score_below_100")),
        "a rejected row lacks the operation or the constraint's name: {:?}",
        listed.first()
    );
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM dst.t")
        .fetch_one(&data)
        .await?;
    ensure!(
        written == ROWS - refused.len() as i64,
        "dst.t has {written} rows"
    );

    // The refused rows stayed out of the snapshot: once the destination accepts them, the next
    // run writes exactly those.
    sqlx::query("ALTER TABLE dst.t DROP CONSTRAINT score_below_100")
        .execute(&data)
        .await?;
    let second = run_once(&api, "s").await?;
    let c = second.counts.unwrap_or_default();
    ensure!(
        c.added == bad && c.written == bad && c.failed == 0 && c.unchanged == ROWS as u64 - bad,
        "the next run should write only the {bad} rows refused before: {c:?}"
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    Ok(())
}
