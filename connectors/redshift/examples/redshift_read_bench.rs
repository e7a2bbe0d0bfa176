//! Benchmark: read 1,000,000 rows through the Redshift source (server-side cursor, text
//! values), against the PostgreSQL test server, and print rows/s and peak memory.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo run --release -p backflow-redshift --example redshift_read_bench              # 1,000,000 rows
//! cargo run --release -p backflow-redshift --example redshift_read_bench -- 250000
//! ```
//!
//! The table (`id BIGINT, amount DECIMAL(18,2), flag BOOLEAN, created_at TIMESTAMPTZ, label
//! VARCHAR(64)`) is generated with `generate_series` and dropped afterwards. Peak memory is
//! the process's `VmHWM` from `/proc/self/status`, reset just before the read.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::{Context, Result};
use backflow_connector_core::{ReadOptions, Source};
use futures::StreamExt;
use sqlx::{Connection, Executor, PgConnection};

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("BACKFLOW_TEST_POSTGRES_URL")
        .context("BACKFLOW_TEST_POSTGRES_URL is not set; eval \"$(scripts/services.sh env)\"")?;
    let rows: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("the argument is a row count")?,
        None => 1_000_000,
    };
    let table = format!("bench_read_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&url).await?;
    admin
        .execute(
            format!(
                "CREATE TABLE public.{table} AS SELECT i::BIGINT AS id, \
                 ((i % 100000) / 7.0)::DECIMAL(18,2) AS amount, i % 2 = 0 AS flag, \
                 TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second' AS created_at, \
                 ('customer-' || i)::VARCHAR(64) AS label \
                 FROM generate_series(1, {rows}) AS g(i)"
            )
            .as_str(),
        )
        .await?;
    let result = bench(&url, &table, rows).await;
    admin
        .execute(format!("DROP TABLE public.{table}").as_str())
        .await?;
    result
}

async fn bench(url: &str, table: &str, rows: u64) -> Result<()> {
    let source = backflow_redshift::validate_source(&serde_json::json!({ "url": url }))?;
    let baseline = reset_peak()?;
    let started = Instant::now();
    let mut stream = source
        .read(
            &format!("SELECT id, amount, flag, created_at, label FROM public.{table}"),
            ReadOptions::default(),
        )
        .await?;
    let mut read = 0u64;
    while let Some(batch) = stream.next().await {
        read += batch?.num_rows() as u64;
    }
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM")?;
    anyhow::ensure!(read == rows, "read {read} rows of {rows}");
    println!(
        "redshift source (cursor, on PostgreSQL): {read} rows in {:.2}s = {:.0} rows/s; \
         peak RSS {} MiB (was {} MiB before the read)",
        elapsed.as_secs_f64(),
        read as f64 / elapsed.as_secs_f64(),
        peak / 1024,
        baseline / 1024
    );
    Ok(())
}

/// Resets `VmHWM` to the current RSS and returns it, in KiB.
fn reset_peak() -> Result<u64> {
    std::fs::write("/proc/self/clear_refs", "5").context("reset the peak RSS")?;
    status_kib("VmHWM")
}

/// A `/proc/self/status` line in KiB.
fn status_kib(key: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/self/status"))
}
