//! The one `backflow` binary. Libraries hold the logic; this only parses the command line and
//! wires them together.
// Printing reports is this binary's job; the workspace lint guards libraries.
#![allow(clippy::print_stdout)]

mod bench;
mod cli;
mod demo_data;
mod local_run;
mod serve;

use backflow_common::telemetry::{self, LogFormat, TelemetryOptions};
use clap::{Parser, Subcommand};

/// Backflow: reverse ETL from warehouses into application databases.
#[derive(Debug, Parser)]
#[command(name = "backflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: cli::ClientArgs,
    /// Log lines as `text` (for a terminal) or `json` (one object per line, for collectors).
    #[arg(
        long,
        global = true,
        env = "BACKFLOW__LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a control plane and workers in one process: SQLite state and snapshots under the
    /// data directory, loopback only. The one-command embedded default.
    Standalone(serve::StandaloneArgs),
    /// Run a control plane (gRPC API, queue, scheduler) on a SQLite or PostgreSQL store.
    ControlPlane(serve::ControlPlaneArgs),
    /// Run a stateless worker that leases runs from a control plane.
    Worker(serve::WorkerArgs),
    /// Create or upgrade the state store's schema.
    Migrate(serve::MigrateArgs),
    /// Run the syncs of a definition file in this process (embedded state, no control plane).
    Run(local_run::RunArgs),
    /// Write the quickstart's demo warehouse (customers with scores) as Parquet.
    DemoData(demo_data::DemoDataArgs),
    /// Measure sync throughput against a real PostgreSQL and print a report.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Services log what they do; one-shot commands only warn, so their output stays readable.
    let (default_level, service_name) = match cli.command {
        Command::Standalone(_) => ("info", "backflow"),
        Command::ControlPlane(_) => ("info", "backflow-control-plane"),
        Command::Worker(_) => ("info", "backflow-worker"),
        Command::Client(_) => ("warn", "backflow-cli"),
        _ => ("warn", "backflow"),
    };
    let telemetry = telemetry::init(&TelemetryOptions {
        service_name,
        log_format: cli.log_format,
        default_level,
    })?;
    let result = match cli.command {
        Command::Standalone(args) => serve::standalone(args).await,
        Command::ControlPlane(args) => serve::control_plane(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Run(args) => local_run::run(args).await,
        Command::DemoData(args) => demo_data::run(args),
        Command::Bench(args) => bench::run(args).await,
        // Client verbs print their own one-line errors and choose the exit status.
        Command::Client(command) => {
            let code = cli::run(cli.client, command).await;
            flush(telemetry).await;
            std::process::exit(code)
        }
    };
    flush(telemetry).await;
    result
}

/// Sends the spans still queued (bounded wait) off the runtime's threads.
async fn flush(telemetry: telemetry::Telemetry) {
    if telemetry.tracing_enabled() {
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
}
