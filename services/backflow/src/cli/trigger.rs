//! `backflow trigger NAME [--full-resync] [--wait] [--request-id ID]`, and following a run to
//! its end (`--wait`, `runs watch`) with a live progress line on stderr.

use std::time::Duration;

use anyhow::{bail, Context as _};
use backflow_proto::v1;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::client::{resource_name, Client, Collection, RpcResult as _};
use super::output;
use super::Outcome;

/// Options of `backflow trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The sync (`customer_scores` or `syncs/customer_scores`).
    pub name: String,
    /// Re-send every row, ignoring the last snapshot's hashes.
    #[arg(long)]
    pub full_resync: bool,
    /// Follow the run until it ends; exit non-zero if it failed or was cancelled.
    #[arg(long)]
    pub wait: bool,
    /// Idempotency key: triggering again with the same id returns the same run.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `backflow trigger`.
pub async fn run(client: &mut Client, args: TriggerArgs) -> anyhow::Result<Outcome> {
    let name = resource_name(Collection::Syncs, &args.name)?;
    let response = client
        .syncs
        .trigger_sync(v1::TriggerSyncRequest {
            name: name.clone(),
            full_resync: args.full_resync,
            request_id: args.request_id.unwrap_or_default(),
        })
        .await
        .rpc()
        .with_context(|| format!("sync {}", output::id(&name)))?;
    let run = response
        .run
        .context("the server answered TriggerSync without a run")?;
    println!("{}", trigger_line(&run, response.coalesced));
    if !args.wait {
        return Ok(Outcome::Success);
    }
    if !run.trace_id.is_empty() {
        println!("trace id {}", run.trace_id);
    }
    follow(client, &run.name).await
}

/// `queued run runs/… of sync customer_scores`, or for a coalesced trigger
/// `run runs/… of sync customer_scores was already running (coalesced)`.
pub fn trigger_line(run: &v1::Run, coalesced: bool) -> String {
    let sync = output::id(&run.sync);
    if coalesced {
        format!(
            "run {} of sync {sync} was already {} (coalesced)",
            run.name,
            output::run_state(run.state())
        )
    } else {
        format!("queued run {} of sync {sync}", run.name)
    }
}

/// The progress line: `running, attempt 1/3: read 1200, written 300, deleted 0, failed 0`.
pub fn progress_line(run: &v1::Run) -> String {
    let c = run.counts.unwrap_or_default();
    let mut line = output::run_state(run.state()).to_owned();
    if run.attempt > 0 {
        line.push_str(&format!(", attempt {}/{}", run.attempt, run.max_attempts));
    }
    if run.cancel_requested && run.state() == v1::RunState::Running {
        line.push_str(", cancelling");
    }
    line.push_str(&format!(
        ": read {}, written {}, deleted {}, failed {}",
        c.read, c.written, c.deleted, c.failed
    ));
    if let Some(e) = run
        .error
        .as_ref()
        .filter(|_| run.state() == v1::RunState::Queued)
    {
        // A retry waiting for its backoff: say why the last attempt failed.
        line.push_str(&format!(" (retrying after {}: {})", e.code, e.message));
    }
    line
}

/// Whether a run can no longer change.
pub fn is_final(state: v1::RunState) -> bool {
    matches!(
        state,
        v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
    )
}

/// Follows a run with WatchRun until it ends, showing progress on stderr (only when stderr is
/// a terminal), then prints its outcome; failed and cancelled runs are [`Outcome::Failed`].
pub async fn follow(client: &mut Client, run_name: &str) -> anyhow::Result<Outcome> {
    let context = || format!("run {}", output::id(run_name));
    let mut stream = client
        .runs
        .watch_run(v1::WatchRunRequest {
            name: run_name.to_owned(),
        })
        .await
        .rpc()
        .with_context(context)?;

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("waiting for {run_name}"));

    let mut last: Option<v1::Run> = None;
    let ended = loop {
        match stream.message().await {
            Ok(Some(message)) => {
                let Some(run) = message.run else { continue };
                bar.set_message(progress_line(&run));
                let done = is_final(run.state());
                last = Some(run);
                if done {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(status) => break Err(status),
        }
    };
    bar.finish_and_clear();
    ended
        .map_err(super::client::RpcError)
        .with_context(context)?;

    let run = match last {
        Some(run) if is_final(run.state()) => run,
        // The stream ended early (a server restart, a proxy timeout): ask once more.
        _ => client
            .runs
            .get_run(v1::GetRunRequest {
                name: run_name.to_owned(),
            })
            .await
            .rpc()
            .with_context(context)?
            .run
            .unwrap_or_default(),
    };
    if !is_final(run.state()) {
        bail!(
            "run {}: the watch ended while the run was still {}; follow it again with `backflow runs watch {}`",
            output::id(run_name),
            output::run_state(run.state()),
            output::id(run_name)
        );
    }
    Ok(report(&run))
}

/// Prints how a finished run ended; failed and cancelled runs are [`Outcome::Failed`] and their
/// error goes to stderr.
pub fn report(run: &v1::Run) -> Outcome {
    println!("{}", outcome_line(run));
    println!("{}", output::counts_line(&run.counts.unwrap_or_default()));
    if run.rejected_rows > 0 {
        println!(
            "{} rejected rows: `backflow rejected {}` lists them",
            run.rejected_rows,
            output::id(&run.name)
        );
    }
    match run.state() {
        v1::RunState::Succeeded => Outcome::Success,
        _ => {
            if let Some(e) = &run.error {
                eprintln!("error: {}: {}", e.code, e.message);
            }
            Outcome::Failed
        }
    }
}

/// `run runs/… of sync customer_scores succeeded in 3.2s (attempt 1/3)`.
pub fn outcome_line(run: &v1::Run) -> String {
    let took = match output::run_elapsed(run).as_str() {
        "-" => String::new(),
        took => format!(" in {took}"),
    };
    format!(
        "run {} of sync {} {}{took} (attempt {}/{})",
        run.name,
        output::id(&run.sync),
        output::run_state(run.state()),
        run.attempt,
        run.max_attempts
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: v1::RunState) -> v1::Run {
        v1::Run {
            name: "runs/r1".into(),
            sync: "syncs/customer_scores".into(),
            state: state as i32,
            attempt: 1,
            max_attempts: 3,
            counts: Some(v1::RunCounts {
                read: 1200,
                written: 300,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn trigger_lines_say_whether_the_run_was_coalesced() {
        assert_eq!(
            trigger_line(&run(v1::RunState::Queued), false),
            "queued run runs/r1 of sync customer_scores"
        );
        assert_eq!(
            trigger_line(&run(v1::RunState::Running), true),
            "run runs/r1 of sync customer_scores was already running (coalesced)"
        );
    }

    #[test]
    fn progress_shows_state_attempt_and_counts() {
        assert_eq!(
            progress_line(&run(v1::RunState::Running)),
            "running, attempt 1/3: read 1200, written 300, deleted 0, failed 0"
        );
        let mut retry = run(v1::RunState::Queued);
        retry.error = Some(v1::RunError {
            code: "destination_error".into(),
            message: "connection reset".into(),
            retryable: true,
        });
        assert_eq!(
            progress_line(&retry),
            "queued, attempt 1/3: read 1200, written 300, deleted 0, failed 0 \
             (retrying after destination_error: connection reset)"
        );
    }

    #[test]
    fn outcomes_name_state_time_and_attempt() {
        let mut done = run(v1::RunState::Succeeded);
        done.timings = Some(v1::RunTimings {
            total: Some(prost_types::Duration {
                seconds: 3,
                nanos: 200_000_000,
            }),
            ..Default::default()
        });
        assert_eq!(
            outcome_line(&done),
            "run runs/r1 of sync customer_scores succeeded in 3.2s (attempt 1/3)"
        );
        assert!(is_final(v1::RunState::Cancelled));
        assert!(!is_final(v1::RunState::Queued));
    }
}
