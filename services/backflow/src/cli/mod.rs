//! The client verbs of the `backflow` binary: `apply`, `syncs`, `trigger`, `runs`, `rejected`,
//! `plan`, `connections` and `connectors`, all talking gRPC (`backflow.v1`) to a control plane.
//!
//! Results go to stdout (tables, or JSON with `--output json`); errors, one line each, and the
//! live progress of `--wait` go to stderr.
// Errors and progress are this module's output on stderr.
#![allow(clippy::print_stderr)]

mod apply;
mod client;
mod connections;
mod connectors;
mod output;
mod runs;
mod syncs;
mod trigger;

use std::io::Write as _;

use clap::Subcommand;
use tracing::Instrument as _;

pub use client::ClientArgs;

/// The client verbs, flattened into the binary's subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Make the control plane match a definition file: create, update and (with --prune)
    /// delete connections and syncs.
    Apply(apply::ApplyArgs),
    /// List, show, delete, pause and resume syncs.
    #[command(subcommand)]
    Syncs(syncs::SyncsCommand),
    /// Queue a run of a sync now, and optionally follow it to its end.
    Trigger(trigger::TriggerArgs),
    /// List, show, follow and cancel runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// List the rows the destination refused in a run.
    Rejected(runs::RejectedArgs),
    /// Show what a run of a sync would change now, writing nothing.
    Plan(syncs::PlanArgs),
    /// List, show and test connections.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Describe the connection types the server supports.
    #[command(subcommand)]
    Connectors(connectors::ConnectorsCommand),
}

/// How a verb ended when it did not fail outright.
impl ClientCommand {
    /// The verb, as typed, naming the command's span.
    fn verb(&self) -> &'static str {
        match self {
            ClientCommand::Apply(_) => "apply",
            ClientCommand::Syncs(_) => "syncs",
            ClientCommand::Trigger(_) => "trigger",
            ClientCommand::Runs(_) => "runs",
            ClientCommand::Rejected(_) => "rejected",
            ClientCommand::Plan(_) => "plan",
            ClientCommand::Connections(_) => "connections",
            ClientCommand::Connectors(_) => "connectors",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1, the reason already printed (a failed run, a failed connection test, an apply
    /// with errors).
    Failed,
}

/// Runs one client verb and returns the process exit status; errors are printed as one
/// `error: …` line.
pub async fn run(args: ClientArgs, command: ClientCommand) -> i32 {
    // One span for the whole command; its context travels with every call, so the control
    // plane's spans, and a triggered run's, join this trace.
    let span = tracing::info_span!(
        "cli",
        otel.name = %format!("backflow {}", command.verb()),
        otel.kind = "client",
        rpc.system = "grpc",
    );
    let code = match execute(&args, command).instrument(span).await {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Failed) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    code
}

/// Runs one client verb.
pub async fn execute(args: &ClientArgs, command: ClientCommand) -> anyhow::Result<Outcome> {
    // The file is checked before the server is reached: its errors need no server.
    let definitions = match &command {
        ClientCommand::Apply(apply) => Some(apply::read_definitions(&apply.file)?),
        _ => None,
    };
    let mut client = client::Client::connect(args).await?;
    match command {
        ClientCommand::Apply(apply) => {
            let definitions = definitions.unwrap_or_default();
            apply::run(&mut client, &apply, &definitions).await
        }
        ClientCommand::Syncs(command) => syncs::run(&mut client, command).await,
        ClientCommand::Trigger(trigger) => trigger::run(&mut client, trigger).await,
        ClientCommand::Runs(command) => runs::run(&mut client, command).await,
        ClientCommand::Rejected(rejected) => runs::rejected(&mut client, rejected).await,
        ClientCommand::Plan(plan) => syncs::plan(&mut client, plan).await,
        ClientCommand::Connections(command) => connections::run(&mut client, command).await,
        ClientCommand::Connectors(command) => connectors::run(&mut client, command).await,
    }
}
