//! The scenario every Backflow client runs: a PostgreSQL source mirrored into PostgreSQL, the
//! counts of a first and an incremental run, NOT_FOUND and INVALID_ARGUMENT as typed errors,
//! and concurrent triggers coalescing into the active run. Needs the PostgreSQL server of
//! `scripts/services.sh start` (`BACKFLOW_TEST_POSTGRES_URL`) and fails without it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use backflow_client::{v1, Client, SyncBuilder};
use common::Standalone;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tonic::Code;

const ROWS: i64 = 20_000;

/// Row count and a checksum of every row in key order.
async fn digest(pool: &PgPool, table: &str) -> Result<(i64, String)> {
    Ok(sqlx::query_as(&format!(
        "SELECT count(*), md5(string_agg(id || ':' || name || ':' || score, ',' ORDER BY id)) \
         FROM {table}"
    ))
    .fetch_one(pool)
    .await?)
}

fn added_changed_removed(run: &v1::Run) -> (u64, u64, u64) {
    let counts = run.counts.unwrap_or_default();
    (counts.added, counts.changed, counts.removed)
}

#[tokio::test]
async fn a_postgres_mirror_counts_changes_types_errors_and_coalesces_triggers() {
    let url = std::env::var("BACKFLOW_TEST_POSTGRES_URL").expect(
        "BACKFLOW_TEST_POSTGRES_URL is not set: run scripts/services.sh start and \
         eval \"$(scripts/services.sh env)\"",
    );
    let mut server = Standalone::start(&[]).await.expect("standalone starts");
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (source, destination) = (format!("rs_src_{suffix}"), format!("rs_dst_{suffix}"));
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("the PostgreSQL test server answers");
    let result = tokio::time::timeout(
        Duration::from_secs(240),
        scenario(&server, &pool, &url, &source, &destination),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the scenario took longer than 240 s")));
    for table in [&source, &destination] {
        let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
            .execute(&pool)
            .await;
    }
    server.check(result).unwrap();
}

async fn scenario(
    server: &Standalone,
    pool: &PgPool,
    url: &str,
    source: &str,
    destination: &str,
) -> Result<()> {
    sqlx::raw_sql(&format!(
        "CREATE TABLE {source} (id bigint PRIMARY KEY, name text NOT NULL, score int NOT NULL);
         INSERT INTO {source} SELECT g, 'name ' || g, g % 97 FROM generate_series(1, {ROWS}) g"
    ))
    .execute(pool)
    .await
    .context("creating the source table")?;

    let client = Client::connect(server.address.as_str()).await?;
    for id in ["pg_src", "pg_dst"] {
        client
            .create_connection(id, "postgres", &serde_json::json!({ "url": url }))
            .await?;
    }
    let sync = SyncBuilder::new(
        "pg_src",
        format!("SELECT id, name, score FROM {source}"),
        "pg_dst",
        destination,
        ["id"],
    )
    .mode(v1::SyncMode::Mirror)
    .create_table(true);
    client.create_sync("mirror", sync).await?;

    let first = client.trigger("mirror").await?.wait().await?;
    ensure!(
        added_changed_removed(&first) == (ROWS as u64, 0, 0),
        "first run {first:?}"
    );
    ensure!(digest(pool, destination).await? == digest(pool, source).await?);

    sqlx::raw_sql(&format!(
        "UPDATE {source} SET score = score + 1000 WHERE id <= 100;
         DELETE FROM {source} WHERE id > {deleted};
         INSERT INTO {source} SELECT g, 'new ' || g, 1 FROM generate_series({first_new}, {last_new}) g",
        deleted = ROWS - 50,
        first_new = ROWS + 1,
        last_new = ROWS + 50,
    ))
    .execute(pool)
    .await?;
    let second = client.trigger("mirror").await?.wait().await?;
    ensure!(
        added_changed_removed(&second) == (50, 100, 50),
        "incremental run {second:?}"
    );
    ensure!(digest(pool, destination).await? == digest(pool, source).await?);

    let missing = client.get_sync("no-such-sync").await.unwrap_err();
    ensure!(missing.code() == Some(Code::NotFound), "{missing}");
    // A refused trigger fails in trigger() itself, before any wait.
    let refused = client.trigger("no-such-sync").await.unwrap_err();
    ensure!(refused.code() == Some(Code::NotFound), "{refused}");
    let keyless = SyncBuilder::new(
        "pg_src",
        format!("SELECT id FROM {source}"),
        "pg_dst",
        format!("{destination}_b"),
        Vec::<String>::new(),
    );
    let invalid = client.create_sync("keyless", keyless).await.unwrap_err();
    ensure!(
        invalid.code() == Some(Code::InvalidArgument)
            && invalid
                .field_violations()
                .iter()
                .any(|v| v.field == "sync.primary_key"),
        "{invalid:?}"
    );

    let triggers = (0..10).map(|_| client.trigger("mirror"));
    let handles = futures::future::try_join_all(triggers).await?;
    let runs: BTreeSet<String> = handles.iter().map(|h| h.name().to_owned()).collect();
    ensure!(runs.len() < 10, "ten concurrent triggers queued ten runs");
    let creators = handles.iter().filter(|h| !h.coalesced()).count();
    ensure!(
        creators == runs.len(),
        "{creators} uncoalesced triggers for {} runs",
        runs.len()
    );
    for handle in handles {
        let run = handle.wait().await?;
        // Nothing changed since the incremental run.
        ensure!(added_changed_removed(&run) == (0, 0, 0), "run {run:?}");
    }
    ensure!(digest(pool, destination).await? == digest(pool, source).await?);
    Ok(())
}
