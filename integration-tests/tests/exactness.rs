//! Exactness under faults, with real processes: an attempt that wrote to the destination and
//! never committed must not leave the destination wrong once the next run succeeds.
//!
//! Each test runs a control plane and workers as `backflow` processes, lets a mirror (or
//! upsert) sync's attempt write its changes, then breaks it the way production does (SIGKILL
//! of the worker, termination of the destination's sessions, SIGKILL of the control plane
//! before the result is committed), changes the source so that the forgotten writes matter
//! (a key the attempt created is deleted, a row it rewrote is reverted, a key it deleted comes
//! back), and requires the destination to equal the source after the retry succeeds, and
//! after one more run.
//!
//! The sync's query puts the changed rows first (newest `updated_at` first) and then sleeps
//! inside PostgreSQL for `src.ctl.secs` seconds, so an attempt is reliably stalled after its
//! first writes. Servers: PostgreSQL, MariaDB and FerretDB from `scripts/services.sh start`.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use backflow_proto::v1;
use common::scores::{ensure_equal, read_pg};
use common::targets::Target;
use common::*;
use sqlx::PgPool;

/// Rows in the source.
const ROWS: i64 = 2000;
/// Rows per batch: the changed rows are all in the first batch written.
const BATCH: u32 = 100;
/// How long one test may take.
const TEST_LIMIT: Duration = Duration::from_secs(240);
/// A key the stalled attempt creates.
const NEW_KEY: i64 = 900_001;
/// A row the stalled attempt rewrites.
const CHANGED_KEY: i64 = 42;

/// The sync's query: every row, changed rows first, then a sleep of `src.ctl.secs` that
/// returns no row.
fn stalling_query() -> String {
    format!(
        "(SELECT {COLUMNS} FROM src.scores ORDER BY updated_at DESC, id) \
         UNION ALL \
         SELECT NULL::bigint, NULL::text, NULL::float8, NULL::boolean, NULL::timestamptz \
         FROM src.ctl WHERE pg_sleep(ctl.secs)::text IS NULL"
    )
}

/// A control plane, the source database and one sync `scores` into `target`.
struct Setup {
    cp: Proc,
    port: u16,
    store: String,
    api: Api,
    source: PgPool,
    target: Target,
}

impl Setup {
    async fn new(
        env: &TestEnv,
        target: Target,
        mode: v1::SyncMode,
        heartbeat: u32,
    ) -> Result<Setup> {
        let store = env.create_database("store").await?;
        let port = free_port()?;
        let heartbeat = heartbeat.to_string();
        let cp = start_control_plane(
            env,
            "cp",
            port,
            &store,
            &["--heartbeat-interval-secs", &heartbeat],
            &[],
        )
        .await?;
        let api = Api::new(&format!("127.0.0.1:{port}"), None)?;
        let source_url = env.create_database("source").await?;
        let source = connect_pg(&source_url, 2).await?;
        sqlx::raw_sql(
            "CREATE SCHEMA src; CREATE TABLE src.ctl (secs float8 NOT NULL); \
             INSERT INTO src.ctl VALUES (0);",
        )
        .execute(&source)
        .await?;
        create_source_table(&source, "src.scores", ROWS, 3).await?;
        api.create_pg_connection("src", &source_url).await?;
        api.create_connection("app", target.kind(), target.config_json())
            .await?;
        api.create_sync(
            "scores",
            v1::Sync {
                source: Some(v1::SyncSource {
                    connection: "connections/src".into(),
                    query: stalling_query(),
                }),
                primary_key: vec!["id".into()],
                destination: Some(v1::SyncDestination {
                    connection: "connections/app".into(),
                    object: target.object_name().into(),
                    mode: mode as i32,
                    create_table: true,
                    ..Default::default()
                }),
                options: Some(v1::SyncOptions {
                    batch_size: Some(BATCH),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;
        Ok(Setup {
            cp,
            port,
            store,
            api,
            source,
            target,
        })
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn sql(&self, sql: &str) -> Result<()> {
        sqlx::raw_sql(sql)
            .execute(&self.source)
            .await
            .with_context(|| sql.to_owned())?;
        Ok(())
    }

    /// Sets how long the query sleeps after its rows.
    async fn stall(&self, secs: f64) -> Result<()> {
        self.sql(&format!("UPDATE src.ctl SET secs = {secs}")).await
    }

    /// Triggers a run and waits for it to succeed.
    async fn run_to_success(&self) -> Result<v1::Run> {
        let run = self.api.trigger_new("scores").await?;
        let runs = wait_final(&self.api, &[run], Duration::from_secs(90)).await?;
        ensure_succeeded(&runs)?;
        runs.into_iter().next().context("no run")
    }

    /// Fails unless the destination holds exactly the source's rows.
    async fn ensure_converged(&self, what: &str) -> Result<()> {
        ensure_equal(
            what,
            &read_pg(&self.source, "src.scores").await?,
            &self.target.read().await?,
        )
    }

    /// Waits until the destination shows the stalled attempt's first writes: `NEW_KEY` exists
    /// and `CHANGED_KEY` has the name `name`.
    async fn wait_written(&self, name: &str) -> Result<()> {
        eventually(
            Duration::from_secs(60),
            "the attempt's first batch in the destination",
            || async move {
                let rows = self.target.read().await?;
                let changed = rows.get(&CHANGED_KEY).is_some_and(|r| r.name == name);
                Ok((rows.contains_key(&NEW_KEY) && changed).then_some(()))
            },
        )
        .await
    }
}

/// Inserts `NEW_KEY` and renames `CHANGED_KEY` to `name`, both touched now (read first).
fn change_sql(name: &str) -> String {
    format!(
        "INSERT INTO src.scores ({COLUMNS}) \
         VALUES ({NEW_KEY}, 'created', 1.5, true, date_trunc('second', now())); \
         UPDATE src.scores SET name = '{name}', updated_at = date_trunc('second', now()) \
         WHERE id = {CHANGED_KEY};"
    )
}

/// Removes `NEW_KEY` and puts `CHANGED_KEY` back as it was before `change_sql`.
fn undo_sql(before: &common::scores::Score) -> String {
    format!(
        "DELETE FROM src.scores WHERE id = {NEW_KEY}; \
         UPDATE src.scores SET name = '{}', updated_at = to_timestamp({}::float8 / 1000000) \
         WHERE id = {CHANGED_KEY};",
        before.name, before.updated_at_micros
    )
}

/// Runs the sync once on worker A, then an attempt that creates `NEW_KEY` and rewrites
/// `CHANGED_KEY`; SIGKILLs worker A once those writes are visible, undoes both changes in the
/// source, and lets worker B retry. Returns the retried run once it succeeded (worker B is
/// returned too, to keep it running).
async fn killed_after_first_writes(env: &TestEnv, setup: &Setup) -> Result<(v1::Run, Proc)> {
    let addr = setup.addr();
    let mut worker_a = start_worker(env, "worker-a", &addr, 1, &[])?;
    setup.run_to_success().await?;
    let before = read_pg(&setup.source, "src.scores").await?[&CHANGED_KEY].clone();
    setup.sql(&change_sql("rewritten")).await?;
    setup.stall(60.0).await?;
    let run = setup.api.trigger_new("scores").await?;
    setup.wait_written("rewritten").await?;
    worker_a.kill9().await?;
    setup.sql(&undo_sql(&before)).await?;
    setup.stall(0.0).await?;
    let worker_b = start_worker(env, "worker-b", &addr, 1, &[])?;
    let runs = wait_final(&setup.api, &[run], Duration::from_secs(120)).await?;
    ensure_succeeded(&runs)?;
    let run = runs.into_iter().next().context("no run")?;
    ensure!(
        run.attempt >= 2,
        "the run should have needed a second attempt: {}",
        describe_run(&run)
    );
    Ok((run, worker_b))
}

/// The worker is SIGKILLed after writing; the source then deletes the key it created and
/// reverts the row it rewrote. Mirror must delete the key and restore the row.
async fn killed_worker_body(env: &TestEnv, target: Target) -> Result<()> {
    let setup = Setup::new(env, target, v1::SyncMode::Mirror, 1).await?;
    let (_, _worker_b) = killed_after_first_writes(env, &setup).await?;
    setup
        .ensure_converged("after the killed attempt's retry")
        .await?;
    let next = setup.run_to_success().await?;
    setup.ensure_converged("after one more run").await?;
    let c = next.counts.unwrap_or_default();
    ensure!(
        c.written == 0 && c.deleted == 0 && c.unchanged == ROWS as u64,
        "the run after the retry should have had nothing to do: {c:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_postgres() -> Result<()> {
    let env = TestEnv::new("exact_killed_worker_pg").await?;
    let result = within(TEST_LIMIT, async {
        let target = Target::postgres(&env).await?;
        killed_worker_body(&env, target).await
    })
    .await;
    env.finish(result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_mariadb() -> Result<()> {
    let env = TestEnv::new("exact_killed_worker_mariadb").await?;
    let result = within(TEST_LIMIT, async {
        let target = Target::mysql().await?;
        killed_worker_body(&env, target).await
    })
    .await;
    env.finish(result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_mongodb() -> Result<()> {
    let env = TestEnv::new("exact_killed_worker_mongodb").await?;
    let result = within(TEST_LIMIT, async {
        let target = Target::mongo()?;
        killed_worker_body(&env, target).await
    })
    .await;
    env.finish(result).await
}

/// Upsert: the worker is SIGKILLed after rewriting a row; the source reverts it. The retry
/// must restore it (the key the attempt created stays: upsert never deletes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_upsert_reverts_a_rewritten_row() -> Result<()> {
    let env = TestEnv::new("exact_killed_worker_upsert").await?;
    let result = within(TEST_LIMIT, async {
        let target = Target::postgres(&env).await?;
        let setup = Setup::new(&env, target, v1::SyncMode::Upsert, 1).await?;
        let (run, _worker_b) = killed_after_first_writes(&env, &setup).await?;
        let c = run.counts.unwrap_or_default();
        ensure!(
            c.removed == 1 && c.deleted == 0,
            "upsert reports the created key as removed and keeps it: {c:?}"
        );
        let mut expected = read_pg(&setup.source, "src.scores").await?;
        let mut actual = setup.target.read().await?;
        ensure!(
            actual.remove(&NEW_KEY).is_some(),
            "upsert must leave the key it created in place"
        );
        expected.remove(&NEW_KEY);
        ensure_equal("upsert after the retry", &expected, &actual)
    })
    .await;
    env.finish(result).await
}

/// The destination's sessions are terminated while the attempt is stalled after writing its
/// first batch; its deletes, sent after the stall, hit the dead session and fail the attempt.
/// Meanwhile the source reverts the rewritten row and drops the created key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_session_cut_mid_write() -> Result<()> {
    let env = TestEnv::new("exact_session_cut").await?;
    let result = within(TEST_LIMIT, async {
        let target = Target::postgres(&env).await?;
        let Target::Postgres { url } = &target else {
            unreachable!("a PostgreSQL target")
        };
        let destination = connect_pg(url, 1).await?;
        let setup = Setup::new(&env, target, v1::SyncMode::Mirror, 1).await?;
        let _worker = start_worker(&env, "worker", &setup.addr(), 1, &[])?;
        setup.run_to_success().await?;
        let before = read_pg(&setup.source, "src.scores").await?[&CHANGED_KEY].clone();
        setup.sql(&change_sql("rewritten")).await?;
        setup
            .sql("DELETE FROM src.scores WHERE id BETWEEN 500 AND 509")
            .await?;
        setup.stall(8.0).await?;
        let run = setup.api.trigger_new("scores").await?;
        setup.wait_written("rewritten").await?;
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND application_name = 'backflow'",
        )
        .fetch_one(&destination)
        .await?;
        ensure!(
            cut > 0,
            "no Backflow session on the destination to terminate"
        );
        setup.sql(&undo_sql(&before)).await?;
        setup.stall(0.0).await?;
        let runs = wait_final(&setup.api, &[run], Duration::from_secs(120)).await?;
        ensure_succeeded(&runs)?;
        ensure!(
            runs[0].attempt >= 2,
            "cutting the session should have failed the first attempt: {}",
            describe_run(&runs[0])
        );
        setup
            .ensure_converged("after the cut attempt's retry")
            .await?;
        setup.run_to_success().await?;
        setup.ensure_converged("after one more run").await
    })
    .await;
    env.finish(result).await
}

/// The control plane is SIGKILLed while the attempt runs; the attempt deletes a key and
/// cannot commit, and its lease runs out. The source then brings the key back unchanged, so
/// the committed snapshot still says it is in place: only the journal knows it was deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_before_commit() -> Result<()> {
    let env = TestEnv::new("exact_cp_killed").await?;
    let result = within(TEST_LIMIT, async {
        let target = Target::postgres(&env).await?;
        // Leases live 3 × 2 + 2 = 8 s without a heartbeat.
        let mut setup = Setup::new(&env, target, v1::SyncMode::Mirror, 2).await?;
        let addr = setup.addr();
        let _worker = start_worker(&env, "worker", &addr, 1, &[])?;
        setup.run_to_success().await?;
        const GONE: i64 = 77;
        let row: (String,) = sqlx::query_as("SELECT name FROM src.scores WHERE id = $1")
            .bind(GONE)
            .fetch_one(&setup.source)
            .await?;
        setup
            .sql(&format!(
                "CREATE TABLE src.saved AS SELECT * FROM src.scores WHERE id = {GONE}; \
                 DELETE FROM src.scores WHERE id = {GONE};"
            ))
            .await?;
        setup.stall(4.0).await?;
        let run = setup.api.trigger_new("scores").await?;
        let (api, name) = (&setup.api, &run);
        eventually(
            Duration::from_secs(30),
            "the attempt to read rows",
            || async move {
                let r = api.get_run(name).await?;
                Ok((r.counts.unwrap_or_default().read > 0).then_some(()))
            },
        )
        .await?;
        setup.cp.kill9().await?;

        // The attempt finishes reading, deletes the key, and cannot report.
        let target = &setup.target;
        eventually(
            Duration::from_secs(30),
            "the attempt's delete",
            || async move {
                let rows = target.read().await?;
                Ok((!rows.contains_key(&GONE)).then_some(()))
            },
        )
        .await?;
        setup
            .sql("INSERT INTO src.scores SELECT * FROM src.saved; UPDATE src.ctl SET secs = 0;")
            .await?;
        ensure!(row.0.starts_with("name-"), "unexpected source row {row:?}");
        // Past the lease: the attempt is abandoned, and the restarted control plane queues
        // the run again.
        tokio::time::sleep(Duration::from_secs(10)).await;
        setup.cp = start_control_plane(
            &env,
            "cp-restarted",
            setup.port,
            &setup.store,
            &["--heartbeat-interval-secs", "2"],
            &[],
        )
        .await?;
        let runs = wait_final(&setup.api, &[run], Duration::from_secs(120)).await?;
        ensure_succeeded(&runs)?;
        ensure!(
            runs[0].attempt >= 2,
            "the run should have been retried after the lost commit: {}",
            describe_run(&runs[0])
        );
        setup
            .ensure_converged("after the lost commit's retry")
            .await?;
        setup.run_to_success().await?;
        setup.ensure_converged("after one more run").await
    })
    .await;
    env.finish(result).await
}
