//! The one `backflow` binary. Libraries hold the logic; this only parses the command line and
//! wires them together.
// Printing reports is this binary's job; the workspace lint guards libraries.
#![allow(clippy::print_stdout)]

mod bench;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Backflow: reverse ETL from warehouses into application databases.
#[derive(Debug, Parser)]
#[command(name = "backflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure sync throughput against a real PostgreSQL and print a report.
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args).await,
    }
}
