//! Benchmark: PostgreSQL → MariaDB through Backflow's writer, next to the raw reference
//! (`COPY … TO STDOUT` piped into `LOAD DATA LOCAL INFILE` by the command-line clients).
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo run --release -p backflow-mysql --example pg_to_mariadb              # 100,000 rows
//! cargo run --release -p backflow-mysql --example pg_to_mariadb -- --rows 1000000
//! ```
//!
//! `BACKFLOW_BENCH_ROWS` sets the size too. It prints rows/s for: the reference; an initial
//! load (plain INSERTs into the empty table); the same rows through the upsert statement; a
//! 1% change (upsert); 1% deletes through the writer; and the three delete strategies on the
//! same table: multi-table `DELETE … JOIN` against an indexed staging table (what the writer
//! does), key lists (`WHERE id IN (…)`), and `WHERE EXISTS (SELECT … FROM staging)`.
#![allow(clippy::print_stdout)]

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use backflow_connector_core::{Destination, ReadOptions, Source, WriteMode, WriteTarget};
use futures::StreamExt;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor, PgConnection};

const COLUMNS: &str = "id, name, amount, score, flag, at";

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set; run scripts/services.sh start and eval \"$(scripts/services.sh env)\"")
    })
}

fn rows_wanted() -> Result<i64> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rows" {
            return args
                .next()
                .context("--rows needs a number")?
                .parse()
                .context("--rows");
        }
    }
    match std::env::var("BACKFLOW_BENCH_ROWS") {
        Ok(v) => v.parse().context("BACKFLOW_BENCH_ROWS"),
        Err(_) => Ok(100_000),
    }
}

fn report(what: &str, rows: i64, secs: f64, reference: Option<f64>) {
    let rate = rows as f64 / secs;
    match reference {
        Some(r) => println!(
            "{what:<44} {rows:>9} rows {secs:>8.2}s {rate:>12.0} rows/s  {:>5.2}x reference",
            rate / r
        ),
        None => println!("{what:<44} {rows:>9} rows {secs:>8.2}s {rate:>12.0} rows/s"),
    }
}

/// Streams `query` from PostgreSQL into `target` through the writer; returns seconds.
async fn sync(pg_url: &str, my_url: &str, query: &str, target: &WriteTarget) -> Result<f64> {
    let source = backflow_postgres::validate_source(&serde_json::json!({ "url": pg_url }))?;
    let dest = backflow_mysql::validate_destination(&serde_json::json!({ "url": my_url }))?;
    let start = Instant::now();
    let mut stream = source.read(query, ReadOptions::default()).await?;
    let mut writer = dest.open(target).await?;
    while let Some(batch) = stream.next().await {
        let out = writer.write(&batch?).await?;
        if !out.failed.is_empty() || !out.skipped.is_empty() {
            bail!("unexpected outcome {out:?}");
        }
    }
    writer.close().await?;
    Ok(start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let n = rows_wanted()?;
    let pg_url = env("BACKFLOW_TEST_POSTGRES_URL")?;
    let my_url = env("BACKFLOW_TEST_MYSQL_URL")?;
    let my = url::Url::parse(&my_url)?;
    let mut pg = PgConnection::connect(&pg_url).await?;
    let mut conn = MySqlConnection::connect(&my_url).await?;
    for t in ["bench_ref", "bench_initial", "bench_upsert"] {
        conn.execute(format!("DROP TABLE IF EXISTS {t}").as_str())
            .await?;
    }
    pg.execute("DROP TABLE IF EXISTS bench_src").await?;
    pg.execute(
        format!(
            "CREATE TABLE bench_src AS SELECT i::int8 AS id, 'customer ' || i AS name, \
             ((i % 100000) / 7.0)::numeric(12,2) AS amount, random() AS score, i % 2 = 0 AS flag, \
             timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS at \
             FROM generate_series(1, {n}) AS i; ALTER TABLE bench_src ADD PRIMARY KEY (id)"
        )
        .as_str(),
    )
    .await?;
    println!("PG → MariaDB, {n} rows of ({COLUMNS})");

    // The reference: the clients' own bulk paths, no Backflow.
    conn.execute(
        "CREATE TABLE bench_ref (id BIGINT PRIMARY KEY, name LONGTEXT, amount DECIMAL(12,2), \
         score DOUBLE, flag BOOLEAN, at DATETIME(6)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    )
    .await?;
    let pipeline = format!(
        "psql '{pg_url}' -qc \"COPY (SELECT id, name, amount, score, flag::int, \
         at AT TIME ZONE 'UTC' FROM bench_src) TO STDOUT\" | \
         mariadb --no-defaults --local-infile=1 -h {} -P {} -u {} -p{} {} \
         -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE bench_ref\"",
        my.host_str().unwrap_or("127.0.0.1"),
        my.port().unwrap_or(3306),
        my.username(),
        my.password().unwrap_or(""),
        my.path().trim_start_matches('/')
    );
    let start = Instant::now();
    let status = Command::new("sh").arg("-c").arg(&pipeline).status()?;
    if !status.success() {
        bail!("the reference pipeline failed");
    }
    let reference_secs = start.elapsed().as_secs_f64();
    let reference = n as f64 / reference_secs;
    report(
        "reference: COPY | LOAD DATA LOCAL INFILE",
        n,
        reference_secs,
        None,
    );

    let query = format!("SELECT {COLUMNS} FROM bench_src");
    let target = |object: &str, initial_load: bool, deletes: bool| WriteTarget {
        object: object.to_string(),
        schema: std::sync::Arc::new(arrow::datatypes::Schema::empty()),
        primary_key: vec!["id".to_string()],
        mode: WriteMode::Upsert,
        create_table: true,
        deletes,
        initial_load,
    };
    let schema = backflow_postgres::validate_source(&serde_json::json!({ "url": pg_url }))?
        .preview(&query, 1)
        .await?
        .schema;
    let with_schema = |mut t: WriteTarget| {
        t.schema = schema.clone();
        t
    };
    let secs = sync(
        &pg_url,
        &my_url,
        &query,
        &with_schema(target("bench_initial", true, false)),
    )
    .await?;
    report(
        "backflow initial load (plain INSERT)",
        n,
        secs,
        Some(reference),
    );
    let secs = sync(
        &pg_url,
        &my_url,
        &query,
        &with_schema(target("bench_upsert", false, false)),
    )
    .await?;
    report(
        "backflow upsert (ON DUPLICATE KEY UPDATE)",
        n,
        secs,
        Some(reference),
    );

    let changed = n / 100;
    let change_query = "SELECT id, name || ' v2' AS name, amount, score, flag, at \
         FROM bench_src WHERE id % 100 = 0";
    let secs = sync(
        &pg_url,
        &my_url,
        change_query,
        &with_schema(target("bench_initial", false, false)),
    )
    .await?;
    report("backflow 1% change (upsert)", changed, secs, None);

    let dest = backflow_mysql::validate_destination(&serde_json::json!({ "url": my_url }))?;
    let source = backflow_postgres::validate_source(&serde_json::json!({ "url": pg_url }))?;
    let start = Instant::now();
    let mut writer = dest
        .open(&with_schema(target("bench_initial", false, true)))
        .await?;
    let mut keys = source
        .read(
            "SELECT id FROM bench_src WHERE id % 100 = 1",
            ReadOptions::default(),
        )
        .await?;
    let mut deleted = 0;
    while let Some(batch) = keys.next().await {
        let batch = batch?;
        let out = writer.delete(&batch).await?;
        deleted += out.applied(batch.num_rows());
    }
    writer.close().await?;
    report(
        "backflow 1% delete (DELETE … JOIN staging)",
        deleted as i64,
        start.elapsed().as_secs_f64(),
        None,
    );

    // Delete strategies on the reference table, each removing a different 1% of the keys.
    let staged = |residue: i64| {
        format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS bench_keys (id BIGINT PRIMARY KEY); \
             DELETE FROM bench_keys; \
             INSERT INTO bench_keys SELECT id FROM bench_ref WHERE id % 100 = {residue}"
        )
    };
    conn.execute(staged(2).as_str()).await?;
    let start = Instant::now();
    conn.execute("DELETE t FROM bench_ref AS t JOIN bench_keys AS s ON t.id = s.id")
        .await?;
    report(
        "delete strategy: multi-table DELETE … JOIN",
        changed,
        start.elapsed().as_secs_f64(),
        None,
    );

    let ids: Vec<String> = (1..=n)
        .filter(|i| i % 100 == 3)
        .map(|i| i.to_string())
        .collect();
    let start = Instant::now();
    for chunk in ids.chunks(10_000) {
        conn.execute(format!("DELETE FROM bench_ref WHERE id IN ({})", chunk.join(",")).as_str())
            .await?;
    }
    report(
        "delete strategy: key lists (IN, 10k per stmt)",
        changed,
        start.elapsed().as_secs_f64(),
        None,
    );

    conn.execute(staged(4).as_str()).await?;
    let start = Instant::now();
    conn.execute(
        "DELETE FROM bench_ref WHERE EXISTS (SELECT 1 FROM bench_keys AS s WHERE s.id = bench_ref.id)",
    )
    .await?;
    report(
        "delete strategy: WHERE EXISTS (indexed staging)",
        changed,
        start.elapsed().as_secs_f64(),
        None,
    );

    for t in ["bench_ref", "bench_initial", "bench_upsert"] {
        conn.execute(format!("DROP TABLE IF EXISTS {t}").as_str())
            .await?;
    }
    pg.execute("DROP TABLE bench_src").await?;
    Ok(())
}
