//! `backflow runs list|get|watch|cancel` and `backflow rejected RUN`.

use anyhow::Context as _;
use backflow_proto::v1;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use super::client::{resource_name, Client, Collection, RpcResult as _};
use super::output::{self, OutputArgs};
use super::trigger::{follow, is_final};
use super::Outcome;

/// `backflow runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List(ListArgs),
    /// Show one run.
    Get {
        /// The run (`<uuid>` or `runs/<uuid>`).
        run: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Follow a run until it ends; exit non-zero if it failed or was cancelled.
    Watch {
        /// The run.
        run: String,
    },
    /// Cancel a queued run, or ask the worker of a running run to stop.
    Cancel {
        /// The run.
        run: String,
    },
}

/// A run state, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Finished and committed.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl From<StateFilter> for v1::RunState {
    fn from(state: StateFilter) -> Self {
        match state {
            StateFilter::Queued => v1::RunState::Queued,
            StateFilter::Running => v1::RunState::Running,
            StateFilter::Succeeded => v1::RunState::Succeeded,
            StateFilter::Failed => v1::RunState::Failed,
            StateFilter::Cancelled => v1::RunState::Cancelled,
        }
    }
}

/// Options of `backflow runs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this sync.
    #[arg(long)]
    pub sync: Option<String>,
    /// Only runs in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateFilter>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of `backflow rejected`.
#[derive(Debug, Args)]
pub struct RejectedArgs {
    /// The run (`<uuid>` or `runs/<uuid>`).
    pub run: String,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The page size to ask for when `want` more items are needed (the API caps pages at 1000).
fn page_size(want: usize) -> i32 {
    i32::try_from(want.clamp(1, 1000)).unwrap_or(1000)
}

/// Runs a `runs` verb.
pub async fn run(client: &mut Client, command: RunsCommand) -> anyhow::Result<Outcome> {
    match command {
        RunsCommand::List(args) => {
            let sync = args
                .sync
                .as_deref()
                .map(|s| resource_name(Collection::Syncs, s))
                .transpose()?
                .unwrap_or_default();
            let state = args.state.map_or(v1::RunState::Unspecified, Into::into);
            let mut runs = Vec::new();
            let mut page_token = String::new();
            while runs.len() < args.limit {
                let page = client
                    .runs
                    .list_runs(v1::ListRunsRequest {
                        sync: sync.clone(),
                        state: state as i32,
                        page_size: page_size(args.limit - runs.len()),
                        page_token,
                    })
                    .await
                    .rpc()
                    .context("listing runs")?;
                runs.extend(page.runs);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            runs.truncate(args.limit);
            args.output.print(
                || Value::Array(runs.iter().map(output::run_json).collect()),
                || output::runs_table(&runs),
            );
            Ok(Outcome::Success)
        }
        RunsCommand::Get { run, output } => {
            let name = resource_name(Collection::Runs, &run)?;
            let run = get(client, &name).await?;
            output.print(|| output::run_json(&run), || output::run_details(&run));
            Ok(Outcome::Success)
        }
        RunsCommand::Watch { run } => {
            let name = resource_name(Collection::Runs, &run)?;
            follow(client, &name).await
        }
        RunsCommand::Cancel { run } => {
            let name = resource_name(Collection::Runs, &run)?;
            let run = client
                .runs
                .cancel_run(v1::CancelRunRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("run {}", output::id(&name)))?
                .run
                .unwrap_or_default();
            println!("{}", cancel_line(&name, &run));
            Ok(Outcome::Success)
        }
    }
}

/// `cancelled run runs/…`, or, for a running run, `asked the worker to stop run runs/…`.
pub fn cancel_line(name: &str, run: &v1::Run) -> String {
    if is_final(run.state()) {
        format!("run {name} is {}", output::run_state(run.state()))
    } else {
        format!("asked the worker to stop run {name}")
    }
}

async fn get(client: &mut Client, name: &str) -> anyhow::Result<v1::Run> {
    Ok(client
        .runs
        .get_run(v1::GetRunRequest {
            name: name.to_owned(),
        })
        .await
        .rpc()
        .with_context(|| format!("run {}", output::id(name)))?
        .run
        .unwrap_or_default())
}

/// `backflow rejected RUN`.
pub async fn rejected(client: &mut Client, args: RejectedArgs) -> anyhow::Result<Outcome> {
    let name = resource_name(Collection::Runs, &args.run)?;
    let mut rows = Vec::new();
    let mut page_token = String::new();
    while rows.len() < args.limit {
        let page = client
            .runs
            .list_rejected_rows(v1::ListRejectedRowsRequest {
                run: name.clone(),
                page_size: page_size(args.limit - rows.len()),
                page_token,
            })
            .await
            .rpc()
            .with_context(|| format!("run {}", output::id(&name)))?;
        rows.extend(page.rejected_rows);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    rows.truncate(args.limit);
    args.output.print(
        || Value::Array(rows.iter().map(output::rejected_json).collect()),
        || output::rejected_table(&rows),
    );
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_capped_by_the_api_limit() {
        assert_eq!(page_size(20), 20);
        assert_eq!(page_size(5000), 1000);
        assert_eq!(page_size(0), 1);
    }

    #[test]
    fn cancel_says_whether_the_run_stopped_at_once() {
        let mut run = v1::Run {
            state: v1::RunState::Cancelled as i32,
            ..Default::default()
        };
        assert_eq!(cancel_line("runs/r1", &run), "run runs/r1 is cancelled");
        run.state = v1::RunState::Running as i32;
        run.cancel_requested = true;
        assert_eq!(
            cancel_line("runs/r1", &run),
            "asked the worker to stop run runs/r1"
        );
    }
}
