//! Every application-database destination end to end, through the CLI a user would type:
//! `backflow apply` of a mirror sync from PostgreSQL, `backflow trigger --wait`, then a round of
//! updates, deletes and inserts in the source, a second `trigger --wait`, and the destination
//! read back with that database's own client must equal the source.
//!
//! Servers: PostgreSQL (also the stand-in for CockroachDB, which cannot run here), MariaDB,
//! FerretDB (the MongoDB-compatible server) and the Firestore emulator, all started by
//! `scripts/services.sh start`. A missing server fails the test with the variable to set.

mod common;

use anyhow::Result;
use common::scores::{ensure_equal, read_pg};
use common::targets::Target;
use common::*;

/// Rows in the source at the first run.
const ROWS: i64 = 3000;

async fn mirror_round_trip(
    name: &str,
    make: impl AsyncFnOnce(&TestEnv) -> Result<Target>,
) -> Result<()> {
    let env = TestEnv::new(name).await?;
    let result = within(TEST_LIMIT, async {
        let target = make(&env).await?;
        mirror_body(&env, &target).await
    })
    .await;
    env.finish(result).await
}

/// How long one destination's round trip may take.
const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

async fn mirror_body(env: &TestEnv, target: &Target) -> Result<()> {
    let kind = target.kind();
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 1, &[]).await?;
    let source_url = env.create_database("source").await?;
    let source = connect_pg(&source_url, 2).await?;
    sqlx::query("CREATE SCHEMA src").execute(&source).await?;
    create_source_table(&source, "src.scores", ROWS, 11).await?;

    let yaml = format!(
        "connections:\n\
         \x20 - name: warehouse\n    type: postgres\n    config: {{ url: \"{source_url}\" }}\n\
         \x20 - name: app\n    type: {kind}\n    config: {}\n\
         syncs:\n\
         \x20 - name: scores\n\
         \x20   source: {{ connection: warehouse, query: \"SELECT {COLUMNS} FROM src.scores\" }}\n\
         \x20   primary_key: [id]\n\
         \x20   destination: {{ connection: app, {}, mode: mirror, create_table: true }}\n\
         \x20   options: {{ batch_size: 1000 }}\n",
        target.config(),
        target.object()
    );
    std::fs::write(env.path().join("backflow.yaml"), yaml)?;
    run_cli(env, &addr, &["apply", "-f", "backflow.yaml"])
        .await?
        .ensure_ok("apply")?;

    run_cli(env, &addr, &["trigger", "scores", "--wait"])
        .await?
        .ensure_ok(&format!("{kind}: first trigger --wait"))?;
    ensure_last_run_counts(env, &addr, kind, (ROWS as u64, 0, 0)).await?;
    ensure_equal(
        kind,
        &read_pg(&source, "src.scores").await?,
        &target.read().await?,
    )?;

    // A round of changes: 150 updated, 100 deleted, 80 inserted.
    sqlx::query(
        "UPDATE src.scores SET name = name || '-v2', score = coalesce(score, 0) + 1 \
         WHERE id % 20 = 0",
    )
    .execute(&source)
    .await?;
    sqlx::query("DELETE FROM src.scores WHERE id % 30 = 1")
        .execute(&source)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO src.scores ({COLUMNS}) \
         SELECT g, 'new-' || g, g / 4.0, g % 2 = 0, timestamptz '2025-06-01 00:00:00+00' + make_interval(secs => g) \
         FROM generate_series({}, {}) AS g",
        ROWS + 1,
        ROWS + 80
    ))
    .execute(&source)
    .await?;

    run_cli(env, &addr, &["trigger", "scores", "--wait"])
        .await?
        .ensure_ok(&format!("{kind}: second trigger --wait"))?;
    ensure_last_run_counts(env, &addr, kind, (80, 150, 100)).await?;
    ensure_equal(
        kind,
        &read_pg(&source, "src.scores").await?,
        &target.read().await?,
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_postgres", Target::postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockroachdb_statements_mirror_converges_through_the_cli() -> Result<()> {
    // No CockroachDB server runs here: the CockroachDB statement set runs against PostgreSQL.
    mirror_round_trip("dest_cockroachdb", Target::cockroach).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_mysql", async |_: &TestEnv| Target::mysql().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_mongodb", async |_: &TestEnv| Target::mongo()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_firestore", async |_: &TestEnv| Target::firestore()).await
}
