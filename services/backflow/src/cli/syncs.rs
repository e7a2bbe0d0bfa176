//! `backflow syncs list|get|delete|pause|resume` and `backflow plan`.

use anyhow::Context as _;
use backflow_proto::v1;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::apply::list_all_syncs;
use super::client::{resource_name, Client, Collection, RpcResult as _};
use super::output::{self, OutputArgs};
use super::Outcome;

/// `backflow syncs …`.
#[derive(Debug, Subcommand)]
pub enum SyncsCommand {
    /// List every sync.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one sync.
    Get {
        /// The sync (`customer_scores` or `syncs/customer_scores`).
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a sync and its run history (refused while a run is active).
    Delete {
        /// The sync.
        name: String,
    },
    /// Stop the scheduler from starting runs of a sync; triggers are refused.
    Pause {
        /// The sync.
        name: String,
    },
    /// Undo `pause`.
    Resume {
        /// The sync.
        name: String,
    },
}

/// Options of `backflow plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The sync.
    pub name: String,
    /// Keys to show per kind of change (the server caps it at 1000).
    #[arg(long, default_value_t = 10)]
    pub sample: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs a `syncs` verb.
pub async fn run(client: &mut Client, command: SyncsCommand) -> anyhow::Result<Outcome> {
    match command {
        SyncsCommand::List { output } => {
            let syncs = list_all_syncs(client).await?;
            output.print(
                || Value::Array(syncs.iter().map(output::sync_json).collect()),
                || output::syncs_table(&syncs),
            );
        }
        SyncsCommand::Get { name, output } => {
            let name = resource_name(Collection::Syncs, &name)?;
            let sync = client
                .syncs
                .get_sync(v1::GetSyncRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("sync {}", output::id(&name)))?
                .sync
                .unwrap_or_default();
            output.print(|| output::sync_json(&sync), || output::sync_details(&sync));
        }
        SyncsCommand::Delete { name } => {
            let name = resource_name(Collection::Syncs, &name)?;
            client
                .syncs
                .delete_sync(v1::DeleteSyncRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("sync {}", output::id(&name)))?;
            println!("deleted sync {}", output::id(&name));
        }
        SyncsCommand::Pause { name } => {
            let name = resource_name(Collection::Syncs, &name)?;
            client
                .syncs
                .pause_sync(v1::PauseSyncRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("sync {}", output::id(&name)))?;
            println!("paused sync {}", output::id(&name));
        }
        SyncsCommand::Resume { name } => {
            let name = resource_name(Collection::Syncs, &name)?;
            client
                .syncs
                .resume_sync(v1::ResumeSyncRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("sync {}", output::id(&name)))?;
            println!("resumed sync {}", output::id(&name));
        }
    }
    Ok(Outcome::Success)
}

/// `backflow plan NAME`.
pub async fn plan(client: &mut Client, args: PlanArgs) -> anyhow::Result<Outcome> {
    let name = resource_name(Collection::Syncs, &args.name)?;
    let plan = client
        .syncs
        .plan_sync(v1::PlanSyncRequest {
            name: name.clone(),
            sample_size: args.sample,
        })
        .await
        .rpc()
        .with_context(|| format!("sync {}", output::id(&name)))?;
    args.output.print(
        || output::plan_json(&name, &plan),
        || output::plan_text(&plan),
    );
    Ok(Outcome::Success)
}
