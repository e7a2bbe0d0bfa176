//! The one `backflow` binary. Libraries hold the logic; this only parses the command line and
//! wires them together.
// Printing reports is this binary's job; the workspace lint guards libraries.
#![allow(clippy::print_stdout)]

mod bench;
mod demo_data;
mod local_run;

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
    /// Run the syncs of a definition file in this process (embedded state, no control plane).
    Run(local_run::RunArgs),
    /// Write the quickstart's demo warehouse (customers with scores) as Parquet.
    DemoData(demo_data::DemoDataArgs),
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
        Command::Run(args) => local_run::run(args).await,
        Command::DemoData(args) => demo_data::run(args),
        Command::Bench(args) => bench::run(args).await,
    }
}
