//! The soak: mirror syncs into PostgreSQL, MariaDB and MongoDB (FerretDB) under continuous
//! source changes, with random faults for a given time: workers SIGKILLed or SIGTERMed,
//! the control plane SIGKILLed, destination sessions terminated. Then the faults stop, every
//! sync runs once more, and each destination is compared with its source row by row; any
//! differing row fails the soak.
//!
//! Not part of the test suite (it runs for minutes): `scripts/soak.sh MINUTES [SYNCS]
//! [WORKERS]` starts the services and runs it. It prints a report: runs and attempts, fault
//! events by kind, source changes, rows compared and rows differing.
// The report is this test's output.
#![allow(clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use backflow_proto::v1;
use common::scores::read_pg;
use common::targets::Target;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

/// Rows in each source table at the start.
const ROWS: i64 = 3000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of several minutes; run it with scripts/soak.sh"]
async fn soak() -> Result<()> {
    let settings = Settings {
        duration: Duration::from_secs(env_u64("BACKFLOW_SOAK_SECS", 300)),
        syncs: env_u64("BACKFLOW_SOAK_SYNCS", 8) as usize,
        workers: env_u64("BACKFLOW_SOAK_WORKERS", 3) as usize,
        seed: env_u64("BACKFLOW_SOAK_SEED", 7),
    };
    let env = TestEnv::new("soak").await?;
    let limit = settings.duration + Duration::from_secs(900);
    let result = within(limit, soak_body(&env, &settings)).await;
    env.finish(result).await
}

struct Settings {
    duration: Duration,
    syncs: usize,
    workers: usize,
    seed: u64,
}

/// The fault events, by kind.
#[derive(Debug, Default)]
struct Chaos {
    worker_sigkill: u64,
    worker_sigterm: u64,
    control_plane_sigkill: u64,
    session_cuts: u64,
}

impl Chaos {
    fn total(&self) -> u64 {
        self.worker_sigkill + self.worker_sigterm + self.control_plane_sigkill + self.session_cuts
    }
}

/// The processes under test, restarted as the faults require.
struct Cluster<'a> {
    env: &'a TestEnv,
    port: u16,
    store: String,
    cp: Proc,
    workers: Vec<Proc>,
}

impl Cluster<'_> {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn restart_control_plane(&mut self) -> Result<()> {
        self.cp = start_control_plane(
            self.env,
            "cp",
            self.port,
            &self.store,
            &["--heartbeat-interval-secs", "1"],
            &[],
        )
        .await?;
        Ok(())
    }

    fn restart_worker(&mut self, k: usize) -> Result<()> {
        self.workers[k] = start_worker(self.env, &format!("worker-{k}"), &self.addr(), 2, &[])?;
        Ok(())
    }
}

/// The query of sync `i`: every row, with now and then a short sleep inside PostgreSQL so
/// that faults often land while a run is writing.
fn query(i: usize) -> String {
    format!(
        "SELECT s.id, s.name, s.score, s.active, s.updated_at FROM src.t{i} s \
         CROSS JOIN LATERAL pg_sleep(CASE WHEN random() < 0.003 THEN 0.3 ELSE 0 END) AS z"
    )
}

async fn soak_body(env: &TestEnv, settings: &Settings) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let cp = start_control_plane(
        env,
        "cp",
        port,
        &store,
        &["--heartbeat-interval-secs", "1"],
        &[],
    )
    .await?;
    let api = Api::new(&format!("127.0.0.1:{port}"), None)?;
    let source_url = env.create_database("source").await?;
    let source = connect_pg(&source_url, 4).await?;
    sqlx::query("CREATE SCHEMA src").execute(&source).await?;
    api.create_pg_connection("src", &source_url).await?;

    let mut targets = Vec::with_capacity(settings.syncs);
    for i in 0..settings.syncs {
        create_source_table(&source, &format!("src.t{i}"), ROWS, i as i64).await?;
        let target = match i % 3 {
            0 => Target::postgres(env).await?,
            1 => Target::mysql().await?,
            _ => Target::mongo()?,
        };
        api.create_connection(&format!("app{i}"), target.kind(), target.config_json())
            .await?;
        api.create_sync(
            &format!("s{i}"),
            v1::Sync {
                source: Some(v1::SyncSource {
                    connection: "connections/src".into(),
                    query: query(i),
                }),
                primary_key: vec!["id".into()],
                destination: Some(v1::SyncDestination {
                    connection: format!("connections/app{i}"),
                    object: target.object_name().into(),
                    mode: v1::SyncMode::Mirror as i32,
                    create_table: true,
                    ..Default::default()
                }),
                options: Some(v1::SyncOptions {
                    batch_size: Some(200),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;
        targets.push(target);
    }
    let mut cluster = Cluster {
        env,
        port,
        store,
        cp,
        workers: Vec::new(),
    };
    for k in 0..settings.workers {
        cluster.workers.push(start_worker(
            env,
            &format!("worker-{k}"),
            &cluster.addr(),
            2,
            &[],
        )?);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    let changer = tokio::spawn(change_sources(
        source.clone(),
        settings.syncs,
        settings.seed,
        stop.clone(),
        changes.clone(),
    ));
    let trigger = tokio::spawn(trigger_all(api.clone(), settings.syncs, stop.clone()));

    let started = Instant::now();
    let mut chaos = Chaos::default();
    while started.elapsed() < settings.duration {
        let pause = Duration::from_millis(rng.random_range(6_000..16_000));
        tokio::time::sleep(pause.min(settings.duration.saturating_sub(started.elapsed()))).await;
        if started.elapsed() >= settings.duration {
            break;
        }
        match rng.random_range(0..4) {
            0 => {
                let k = rng.random_range(0..cluster.workers.len());
                cluster.workers[k].kill9().await?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..2_000))).await;
                cluster.restart_worker(k)?;
                chaos.worker_sigkill += 1;
            }
            1 => {
                let k = rng.random_range(0..cluster.workers.len());
                cluster.workers[k].sigterm().await?;
                cluster.workers[k]
                    .wait_exit(Duration::from_secs(60))
                    .await?;
                cluster.restart_worker(k)?;
                chaos.worker_sigterm += 1;
            }
            2 => {
                cluster.cp.kill9().await?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..4_000))).await;
                cluster.restart_control_plane().await?;
                chaos.control_plane_sigkill += 1;
            }
            _ => {
                cut_sessions(&targets).await?;
                chaos.session_cuts += 1;
            }
        }
        for worker in &mut cluster.workers {
            worker.ensure_running()?;
        }
        cluster.cp.ensure_running()?;
    }
    stop.store(true, Ordering::SeqCst);
    changer.await??;
    trigger.await?;

    // Converge: one run per sync that started after the last change, and succeeded.
    for i in 0..settings.syncs {
        converge(&api, &format!("s{i}")).await?;
    }
    let mut compared = 0usize;
    let mut differing = 0usize;
    for (i, target) in targets.iter().enumerate() {
        let expected = read_pg(&source, &format!("src.t{i}")).await?;
        let actual = target.read().await?;
        compared += expected.len();
        let diff = differing_rows(&expected, &actual);
        if diff > 0 {
            println!(
                "soak: sync s{i} ({}) has {diff} differing rows",
                target.kind()
            );
        }
        differing += diff;
    }

    let (mut runs, mut succeeded, mut failed, mut attempts) = (0, 0, 0, 0u64);
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..settings.syncs {
        for run in api.list_runs(&format!("s{i}")).await? {
            runs += 1;
            attempts += u64::from(run.attempt);
            match run.state() {
                v1::RunState::Succeeded => succeeded += 1,
                v1::RunState::Failed => {
                    failed += 1;
                    let error = run.error.unwrap_or_default();
                    *failures
                        .entry(format!("{}: {}", error.code, error.message))
                        .or_default() += 1;
                }
                _ => {}
            }
        }
    }
    println!(
        "soak: {:.0} s, {} syncs ({} PostgreSQL, {} MariaDB, {} MongoDB/FerretDB), {} workers",
        started.elapsed().as_secs_f64(),
        settings.syncs,
        settings.syncs.div_ceil(3),
        (settings.syncs + 1) / 3,
        settings.syncs / 3,
        settings.workers
    );
    println!(
        "soak: {runs} runs ({succeeded} succeeded, {failed} failed) over {attempts} attempts; {} source changes",
        changes.load(Ordering::SeqCst)
    );
    for (reason, count) in &failures {
        println!("soak: {count} runs failed with {reason}");
    }
    println!("soak: {} chaos events: {chaos:?}", chaos.total());
    println!("soak: {compared} rows compared, {differing} rows differing");
    ensure!(
        differing == 0,
        "{differing} destination rows differ from their source after convergence"
    );
    Ok(())
}

/// Keys missing from `actual`, extra in it, or with other values.
fn differing_rows(expected: &common::scores::Rows, actual: &common::scores::Rows) -> usize {
    let mut keys: BTreeMap<i64, ()> = expected.keys().map(|k| (*k, ())).collect();
    keys.extend(actual.keys().map(|k| (*k, ())));
    keys.keys()
        .filter(|k| expected.get(k) != actual.get(k))
        .count()
}

/// Updates, deletes and inserts a few rows of a random source table every 100 ms.
async fn change_sources(
    source: PgPool,
    syncs: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    changes: Arc<AtomicU64>,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let mut next_id = 1_000_000i64;
    while !stop.load(Ordering::SeqCst) {
        let t = rng.random_range(0..syncs);
        let sql = match rng.random_range(0..3) {
            0 => format!(
                "UPDATE src.t{t} SET name = 'u' || md5(random()::text), \
                 score = floor(random() * 400) / 4, updated_at = date_trunc('second', now()) \
                 WHERE id IN (SELECT id FROM src.t{t} ORDER BY random() LIMIT {})",
                rng.random_range(1..6)
            ),
            1 => format!(
                "DELETE FROM src.t{t} WHERE id IN (SELECT id FROM src.t{t} ORDER BY random() LIMIT {})",
                rng.random_range(1..4)
            ),
            _ => {
                let n = rng.random_range(1..4);
                next_id += n;
                format!(
                    "INSERT INTO src.t{t} ({COLUMNS}) SELECT g, 'i' || g, g / 4.0, g % 2 = 0, \
                     date_trunc('second', now()) FROM generate_series({}, {}) g",
                    next_id - n + 1,
                    next_id
                )
            }
        };
        sqlx::query(&sql)
            .execute(&source)
            .await
            .with_context(|| sql.clone())?;
        changes.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Triggers every sync once a second; a trigger while the control plane is down just fails.
async fn trigger_all(api: Api, syncs: usize, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        for i in 0..syncs {
            let _ = api.trigger(&format!("s{i}"), "").await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Terminates every destination session of Backflow's: PostgreSQL backends of the target
/// databases, MariaDB connections to them, and FerretDB's PostgreSQL backends.
async fn cut_sessions(targets: &[Target]) -> Result<()> {
    let admin = connect_pg(&postgres_url(), 1).await?;
    let mut pg_databases: Vec<String> = vec!["ferretdb".into()];
    let mut mysql_databases = Vec::new();
    for target in targets {
        match target {
            Target::Postgres { url } | Target::Cockroach { url } => {
                pg_databases.push(url::Url::parse(url)?.path().trim_start_matches('/').into());
            }
            Target::Mysql { url } => {
                mysql_databases.push(
                    url::Url::parse(url)?
                        .path()
                        .trim_start_matches('/')
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
    sqlx::query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
    )
    .bind(&pg_databases)
    .fetch_one(&admin)
    .await
    .context("terminating PostgreSQL sessions")?;
    if !mysql_databases.is_empty() {
        use sqlx::{Connection as _, Row as _};
        let mut mysql =
            sqlx::MySqlConnection::connect(&service_env("BACKFLOW_TEST_MYSQL_URL")?).await?;
        let placeholders = vec!["?"; mysql_databases.len()].join(", ");
        let sql =
            format!("SELECT id FROM information_schema.processlist WHERE db IN ({placeholders})");
        let mut query = sqlx::query(&sql);
        for database in &mysql_databases {
            query = query.bind(database);
        }
        let ids = query.fetch_all(&mut mysql).await?;
        for row in ids {
            let id: i64 = row.try_get(0)?;
            // A connection may end by itself in between.
            let _ = sqlx::query(&format!("KILL {id}")).execute(&mut mysql).await;
        }
    }
    Ok(())
}

/// Triggers `sync` until a run it created (not one already queued or running) succeeds.
async fn converge(api: &Api, sync: &str) -> Result<()> {
    for _ in 0..6 {
        let response = api.trigger(sync, "").await?;
        let run = response.run.context("TriggerSync answered without a run")?;
        let runs = wait_final(api, &[run.name], Duration::from_secs(180)).await?;
        if !response.coalesced && runs[0].state() == v1::RunState::Succeeded {
            return Ok(());
        }
    }
    anyhow::bail!("{sync} did not converge in six runs")
}
