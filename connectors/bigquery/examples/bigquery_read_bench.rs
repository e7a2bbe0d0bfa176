//! Reads a generated result from the BigQuery emulator through both read paths and prints
//! rows/s and the process's peak memory.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo run --release -p backflow-bigquery --example bigquery_read_bench -- [ROWS] [storage|rest]
//! ```
//!
//! `storage` (the default) reads through the Storage Read API; `rest` points the Storage
//! endpoint at a gRPC server without the BigQuery service, so the source falls back to
//! `getQueryResults` pages. Run one path per process: peak memory (VmHWM) is per process.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::Context;
use backflow_connector_core::{ReadOptions, Source};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "storage".into());
    let api = std::env::var("BACKFLOW_TEST_BIGQUERY_URL").context(
        "BACKFLOW_TEST_BIGQUERY_URL is not set: run `eval \"$(scripts/services.sh env)\"`",
    )?;
    let grpc = std::env::var("BACKFLOW_TEST_BIGQUERY_GRPC").context(
        "BACKFLOW_TEST_BIGQUERY_GRPC is not set: run `eval \"$(scripts/services.sh env)\"`",
    )?;
    let storage = match path.as_str() {
        "storage" => format!("http://{grpc}"),
        "rest" => format!("http://{}", serve_without_bigquery().await?),
        other => anyhow::bail!("unknown path `{other}`: expected storage or rest"),
    };
    let source = backflow_bigquery::validate_source(&serde_json::json!({
        "project": "test",
        "api_endpoint": api,
        "storage_endpoint": storage,
    }))?;
    let query = format!(
        "SELECT x AS id, CONCAT('name-', CAST(x AS STRING)) AS name, x * 0.5 AS score, \
         MOD(x, 2) = 0 AS even FROM UNNEST(GENERATE_ARRAY(1, {rows})) AS x"
    );
    println!(
        "bigquery emulator, {rows} rows x 4 columns (INT64, STRING, FLOAT64, BOOL), {path} path"
    );
    let started = Instant::now();
    let mut stream = source.read(&query, ReadOptions::default()).await?;
    let job_done = started.elapsed();
    let mut read = 0u64;
    while let Some(batch) = stream.next().await {
        read += batch?.num_rows() as u64;
    }
    let total = started.elapsed();
    anyhow::ensure!(read == rows, "read {read} rows, expected {rows}");
    println!(
        "  until read() returned (job and session): {:>8.2} s",
        job_done.as_secs_f64()
    );
    println!(
        "  total:                                  {:>8.2} s",
        total.as_secs_f64()
    );
    println!(
        "  throughput:                             {:>8.0} rows/s",
        rows as f64 / total.as_secs_f64()
    );
    println!(
        "  peak memory (VmHWM):                    {:>8} kB",
        peak_memory_kb()
    );
    Ok(())
}

/// A gRPC server with no services: every call answers UNIMPLEMENTED, which makes the source
/// fall back to REST pages.
async fn serve_without_bigquery() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

fn peak_memory_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
