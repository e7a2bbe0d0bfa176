//! `backflow bench`: end-to-end throughput of the engine against a real PostgreSQL, next to
//! the physical limit (`COPY … TO STDOUT | COPY … FROM STDIN`, binary), printed as a report.
//!
//! Timed assertions would be flaky on shared CI machines, so targets live here, where a human
//! reads the numbers together with the machine they ran on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use backflow_connector_core::{Destination, ReadOptions, Source};
use backflow_engine::{
    Engine, RunInput, RunResult, SnapshotRef, SnapshotStore, SyncMode, SyncOptions, SyncSpec,
};
use clap::Args;
use futures::StreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// Options of `backflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rows generated in the source table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// PostgreSQL used as source and destination (a scratch schema `backflow_bench` is
    /// dropped and recreated).
    #[arg(
        long,
        env = "BACKFLOW_TEST_POSTGRES_URL",
        default_value = "postgres://backflow:backflow@127.0.0.1:55432/backflow"
    )]
    postgres_url: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 8192)]
    batch_size: usize,
    /// Keep the bench schema afterwards, for inspection.
    #[arg(long)]
    keep: bool,
}

struct Row {
    scenario: &'static str,
    rows: u64,
    elapsed: Duration,
    peak_rss: u64,
    detail: String,
}

/// Peak resident memory since the last reset, from /proc (Linux).
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets the peak so each scenario reports its own (Linux ≥ 4.0; a no-op elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

const SCHEMA: &str = "backflow_bench";

async fn generate(pool: &PgPool, rows: u64) -> Result<()> {
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
         CREATE SCHEMA {SCHEMA};
         CREATE TABLE {SCHEMA}.src (
           id int8 PRIMARY KEY,
           customer uuid NOT NULL,
           name text,
           email text,
           country text,
           score float8,
           ltv numeric(14,2),
           visits int4,
           active bool,
           signup_date date,
           updated_at timestamptz,
           attributes jsonb
         );
         INSERT INTO {SCHEMA}.src
         SELECT g,
                md5(g::text)::uuid,
                'customer ' || g,
                'user' || g || '@example.com',
                (ARRAY['FR','DE','US','JP','BR','IN'])[1 + g % 6],
                (g % 1000) / 10.0,
                round((g % 100000) * 1.37, 2),
                (g % 500)::int4,
                g % 3 = 0,
                date '2020-01-01' + (g % 1500)::int,
                timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
                jsonb_build_object('plan', (ARRAY['free','pro','team'])[1 + g % 3], 'seats', g % 50)
         FROM generate_series(1, {rows}) g;
         ANALYZE {SCHEMA}.src;"
    ))
    .execute(pool)
    .await
    .context("generating the source table")?;
    Ok(())
}

/// The physical limit: binary COPY out of one table straight into another.
async fn reference_copy(url: &str, rows: u64) -> Result<Row> {
    let mut setup = PgConnection::connect(url).await?;
    sqlx::raw_sql(&format!(
        "DROP TABLE IF EXISTS {SCHEMA}.reference;
         CREATE TABLE {SCHEMA}.reference (LIKE {SCHEMA}.src INCLUDING ALL);"
    ))
    .execute(&mut setup)
    .await?;
    let mut out = PgConnection::connect(url).await?;
    let mut inn = PgConnection::connect(url).await?;
    reset_peak_rss();
    let t = Instant::now();
    let mut copy_in = inn
        .copy_in_raw(&format!(
            "COPY {SCHEMA}.reference FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut stream = out
        .copy_out_raw(&format!("COPY {SCHEMA}.src TO STDOUT (FORMAT binary)"))
        .await?;
    while let Some(chunk) = stream.next().await {
        copy_in.send(chunk?).await?;
    }
    drop(stream);
    let copied = copy_in.finish().await?;
    let elapsed = t.elapsed();
    anyhow::ensure!(
        copied == rows,
        "reference copied {copied} rows, expected {rows}"
    );
    Ok(Row {
        scenario: "reference: COPY binary out | COPY binary in",
        rows,
        elapsed,
        peak_rss: peak_rss_bytes(),
        detail: String::new(),
    })
}

fn stage_detail(r: &RunResult) -> String {
    let t = &r.timings;
    let per_row = if r.snapshot.rows > 0 {
        r.snapshot_heap_bytes as f64 / r.snapshot.rows as f64
    } else {
        0.0
    };
    let j = &r.journal_stats;
    format!(
        "read {:.1}s diff {:.1}s write {:.1}s snapshot {:.1}s | written {} deleted {} | snapshot heap {:.0} B/row | journal {} segments {:.1} MB {:.0} ms",
        t.source_read.as_secs_f64(),
        t.diff.as_secs_f64(),
        t.destination_write.as_secs_f64(),
        t.snapshot_write.as_secs_f64(),
        r.counts.written,
        r.counts.deleted,
        per_row,
        j.segments,
        j.bytes as f64 / 1e6,
        j.write_micros as f64 / 1e3
    )
}

struct Bench {
    engine: Engine,
    batch_size: usize,
}

/// One measured sync: what to run and how the report names it.
struct Scenario<'a> {
    title: &'static str,
    sync: &'a str,
    source: &'a dyn Source,
    destination: &'a dyn Destination,
    query: &'a str,
    object: &'a str,
    previous: Option<&'a SnapshotRef>,
}

impl Bench {
    /// Runs a scenario with its own peak-RSS window and returns its report row.
    async fn measure(&self, s: Scenario<'_>) -> Result<(Row, RunResult)> {
        reset_peak_rss();
        let t = Instant::now();
        let result = self
            .sync(
                s.sync,
                s.source,
                s.destination,
                s.query,
                s.object,
                s.previous,
            )
            .await?;
        let row = Row {
            scenario: s.title,
            rows: result.counts.read,
            elapsed: t.elapsed(),
            peak_rss: peak_rss_bytes(),
            detail: stage_detail(&result),
        };
        Ok((row, result))
    }

    async fn sync(
        &self,
        name: &str,
        source: &dyn Source,
        destination: &dyn Destination,
        query: &str,
        object: &str,
        previous: Option<&SnapshotRef>,
    ) -> Result<RunResult> {
        let spec = SyncSpec {
            name: name.into(),
            query: query.into(),
            primary_key: vec!["id".into()],
            object: object.into(),
            destination_connection: "bench".into(),
            mode: SyncMode::Mirror,
            create_table: true,
            mappings: Vec::new(),
            options: SyncOptions {
                batch_size: self.batch_size,
                ..SyncOptions::default()
            },
        };
        let run_id = uuid_like();
        let result = self
            .engine
            .run(RunInput {
                run_id: &run_id,
                spec: &spec,
                source,
                destination,
                previous,
                full_resync: false,
                progress: None,
            })
            .await?;
        // Every measured run is committed (the next scenario starts from its snapshot), and
        // a committed run's journal is cleared, as the worker does after CompleteRun.
        self.engine
            .snapshots()
            .clear_journal(&result.journal)
            .await?;
        Ok(result)
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

async fn read_only(source: &dyn Source, query: &str, batch_size: usize) -> Result<(u64, Duration)> {
    let t = Instant::now();
    let mut stream = source.read(query, ReadOptions { batch_size }).await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows() as u64;
    }
    Ok((rows, t.elapsed()))
}

async fn export_parquet(
    source: &dyn Source,
    dir: &std::path::Path,
    batch_size: usize,
) -> Result<()> {
    let mut stream = source
        .read(
            &format!("SELECT * FROM {SCHEMA}.src ORDER BY id"),
            ReadOptions { batch_size },
        )
        .await?;
    let schema = stream.schema();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut part = 0;
    let mut writer: Option<parquet::arrow::ArrowWriter<std::fs::File>> = None;
    let mut in_part = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if writer.is_none() {
            let file = std::fs::File::create(dir.join(format!("part-{part:03}.parquet")))?;
            writer = Some(parquet::arrow::ArrowWriter::try_new(
                file,
                schema.clone(),
                Some(props.clone()),
            )?);
            part += 1;
        }
        let w = writer.as_mut().expect("just created");
        w.write(&batch)?;
        in_part += batch.num_rows();
        if in_part >= 250_000 {
            writer.take().expect("open").close()?;
            in_part = 0;
        }
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(())
}

/// Runs every scenario and prints the report.
pub async fn run(args: BenchArgs) -> Result<()> {
    let url = args.postgres_url.clone();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .with_context(|| {
            format!(
                "connecting to {}",
                backflow_connector_core::secret::redact_url(&url)
            )
        })?;
    let rows = args.rows;
    println!(
        "backflow bench: {rows} rows, batch size {}",
        args.batch_size
    );
    let t = Instant::now();
    generate(&pool, rows).await?;
    println!(
        "generated the source table in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let engine = Engine::new(SnapshotStore::local(dir.path().join("snapshots"))?);
    let bench = Bench {
        engine,
        batch_size: args.batch_size,
    };
    let config = serde_json::json!({ "url": url });
    let source: Arc<dyn Source> = backflow_connectors::source("postgres", &config)?;
    let destination: Arc<dyn Destination> = backflow_connectors::destination("postgres", &config)?;
    let query = format!("SELECT * FROM {SCHEMA}.src");
    let mut report = Vec::new();

    report.push(reference_copy(&url, rows).await?);
    let reference = report[0].elapsed;

    reset_peak_rss();
    let (read_rows, read_time) = read_only(source.as_ref(), &query, args.batch_size).await?;
    report.push(Row {
        scenario: "read only: PostgreSQL source, drained",
        rows: read_rows,
        elapsed: read_time,
        peak_rss: peak_rss_bytes(),
        detail: String::new(),
    });

    let dst = format!("{SCHEMA}.dst");
    let pg = |title, previous| Scenario {
        title,
        sync: "bench_pg",
        source: source.as_ref(),
        destination: destination.as_ref(),
        query: &query,
        object: &dst,
        previous,
    };
    let (row, initial) = bench.measure(pg("initial sync PG → PG", None)).await?;
    let initial_time = row.elapsed;
    report.push(row);

    let (row, same) = bench
        .measure(pg("re-sync, no change", Some(&initial.snapshot)))
        .await?;
    anyhow::ensure!(
        same.counts.written == 0,
        "no-change resync wrote {} rows",
        same.counts.written
    );
    let same_time = row.elapsed;
    report.push(row);

    sqlx::raw_sql(&format!(
        "UPDATE {SCHEMA}.src SET score = score + 1, updated_at = now() WHERE id % 100 = 0;
         DELETE FROM {SCHEMA}.src WHERE id % 200 = 1;
         INSERT INTO {SCHEMA}.src SELECT id + {rows}, customer, name, email, country, score, ltv,
                visits, active, signup_date, updated_at, attributes
         FROM {SCHEMA}.src WHERE id % 200 = 2;"
    ))
    .execute(&pool)
    .await?;
    let (row, _) = bench
        .measure(pg(
            "re-sync, 1% upd + 0.5% del + 0.5% ins (mirror)",
            Some(&same.snapshot),
        ))
        .await?;
    let changed_time = row.elapsed;
    report.push(row);

    let parquet_dir = dir.path().join("parquet");
    std::fs::create_dir_all(&parquet_dir)?;
    export_parquet(source.as_ref(), &parquet_dir, args.batch_size).await?;
    let files = backflow_connectors::source(
        "files",
        &serde_json::json!({ "tables": { "src": format!("{}/*.parquet", parquet_dir.display()) } }),
    )?;
    let dst_files = format!("{SCHEMA}.dst_files");
    let (row, _) = bench
        .measure(Scenario {
            title: "initial sync files (Parquet) → PG",
            sync: "bench_files",
            source: files.as_ref(),
            destination: destination.as_ref(),
            query: "SELECT * FROM src",
            object: &dst_files,
            previous: None,
        })
        .await?;
    report.push(row);

    println!();
    println!(
        "{:<50} {:>10} {:>9} {:>12} {:>9}  detail",
        "scenario", "rows", "seconds", "rows/s", "peak MB"
    );
    for r in &report {
        println!(
            "{:<50} {:>10} {:>9.2} {:>12.0} {:>9.0}  {}",
            r.scenario,
            r.rows,
            r.elapsed.as_secs_f64(),
            r.rows as f64 / r.elapsed.as_secs_f64().max(1e-9),
            r.peak_rss as f64 / 1_048_576.0,
            r.detail
        );
    }
    println!();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "initial PG→PG throughput vs reference: {:.2}× (target ≥ 0.85×)",
        ratio(reference, initial_time)
    );
    println!(
        "no-change re-sync vs read only:        {:.2}× the time (target ≤ 1.2×)",
        ratio(same_time, read_time)
    );
    println!(
        "1%-change re-sync vs initial sync:     {:.2}× the time (target ≤ 0.2×)",
        ratio(changed_time, initial_time)
    );
    println!(
        "snapshot heap per row:                 {:.0} bytes (target ≤ 64)",
        same.snapshot_heap_bytes as f64 / same.snapshot.rows.max(1) as f64
    );
    let journal = &initial.journal_stats;
    let per_million = 1e6 / journal.keys.max(1) as f64;
    println!(
        "write journal of the initial sync:     {:.1} MB and {:.0} ms of {:.2} s per 1M rows written",
        journal.bytes as f64 * per_million / 1e6,
        journal.write_micros as f64 * per_million / 1e3,
        initial_time.as_secs_f64() * per_million
    );
    if !args.keep {
        sqlx::raw_sql(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .execute(&pool)
            .await?;
    }
    Ok(())
}
