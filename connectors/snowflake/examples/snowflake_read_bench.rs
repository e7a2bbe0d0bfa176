//! Benchmark: read a generated result from fakesnow through the Snowflake source and report
//! rows/s, time to the first batch and peak memory (VmHWM).
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo run --release -p backflow-snowflake --example snowflake_read_bench                 # 1,000,000 rows
//! cargo run --release -p backflow-snowflake --example snowflake_read_bench -- --rows 200000
//! ```
//!
//! The rows are generated inside fakesnow (`TABLE(GENERATOR(ROWCOUNT => n))`): an integer id,
//! a 24-byte text, a NUMBER(12,2) and a TIMESTAMP_NTZ per row.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::{Context, Result};
use backflow_connector_core::{ReadOptions, Source};
use futures::StreamExt;
use serde_json::json;

fn rows_wanted() -> Result<u64> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rows" {
            return args
                .next()
                .context("--rows needs a number")?
                .replace('_', "")
                .parse()
                .context("--rows needs a number");
        }
    }
    Ok(1_000_000)
}

/// A line of /proc/self/status in MiB.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let rows = rows_wanted()?;
    let url = std::env::var("BACKFLOW_TEST_SNOWFLAKE_URL").context(
        "BACKFLOW_TEST_SNOWFLAKE_URL is not set; run scripts/services.sh start and \
         eval \"$(scripts/services.sh env)\"",
    )?;
    let (host, port) = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .context("BACKFLOW_TEST_SNOWFLAKE_URL is http://host:port")?;
    let source = backflow_snowflake::validate_source(&json!({
        "account": "bench",
        "user": "bench",
        "database": "BACKFLOW",
        "schema": "BENCH",
        "credential": {"password": "fakesnow-ignores-it"},
        "host": host,
        "port": port.parse::<u16>()?,
        "protocol": "http",
    }))?;
    let query = format!(
        "SELECT seq4() AS id, 'customer-' || LPAD(seq4()::VARCHAR, 15, '0') AS name, \
         ((seq4() % 100000) / 100)::NUMBER(12,2) AS amount, \
         DATEADD(second, seq4(), '2024-01-01'::TIMESTAMP_NTZ) AS at \
         FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
    );
    let baseline = status_mib("VmRSS");
    let started = Instant::now();
    let mut stream = source.read(&query, ReadOptions::default()).await?;
    let mut first = None;
    let mut read = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        first.get_or_insert_with(|| started.elapsed());
        read += batch.num_rows() as u64;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(read == rows, "read {read} rows, expected {rows}");
    println!("snowflake source (fakesnow) read_bench: {rows} rows, 4 columns");
    println!(
        "  total {:.2} s, {:.0} rows/s, first batch after {:.2} s (fakesnow runs the query first)",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        first.unwrap_or_default().as_secs_f64()
    );
    println!(
        "  RSS before the read {:.1} MiB, peak (VmHWM) {:.1} MiB",
        baseline,
        status_mib("VmHWM")
    );
    Ok(())
}
