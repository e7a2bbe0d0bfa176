//! Following a run: [`RunHandle`] from a trigger, and the `WatchRun` stream that re-opens itself
//! when it ends early (a control-plane restart ends every watch with `UNAVAILABLE`; a proxy may
//! cut a quiet stream), so a caller sees each change once and the final state exactly once.

use backflow_proto::v1;
use futures::{Stream, StreamExt as _};
use tonic::Streaming;

use crate::retry::{with_retries, Idempotency};
use crate::{Client, Error};

/// Whether a run can no longer change: succeeded, failed or cancelled.
pub fn is_final(run: &v1::Run) -> bool {
    matches!(
        run.state(),
        v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
    )
}

/// A run queued by [`Client::trigger`], to follow until it ends.
#[derive(Debug, Clone)]
pub struct RunHandle {
    client: Client,
    run: v1::Run,
    coalesced: bool,
}

impl RunHandle {
    pub(crate) fn new(client: Client, run: v1::Run, coalesced: bool) -> Self {
        Self {
            client,
            run,
            coalesced,
        }
    }

    /// The run's resource name, `runs/{id}`.
    pub fn name(&self) -> &str {
        &self.run.name
    }

    /// The run as `TriggerSync` returned it (usually queued).
    pub fn run(&self) -> &v1::Run {
        &self.run
    }

    /// True when the sync already had a queued or running run and the trigger returned that
    /// one instead of queueing another.
    pub fn coalesced(&self) -> bool {
        self.coalesced
    }

    /// Follows the run until it ends and returns it. A failed or cancelled run is
    /// [`Error::RunFailed`], carrying the run; rows the destination refused do not fail a run
    /// (see `counts.failed` and [`Client::list_rejected_rows`]).
    pub async fn wait(self) -> Result<v1::Run, Error> {
        self.wait_with_progress(|_| {}).await
    }

    /// [`RunHandle::wait`], calling `on_progress` with the run each time its state or counts
    /// change (the final state included).
    pub async fn wait_with_progress(
        self,
        mut on_progress: impl FnMut(&v1::Run),
    ) -> Result<v1::Run, Error> {
        let progress = self.progress();
        futures::pin_mut!(progress);
        let mut last = None;
        while let Some(run) = progress.next().await {
            let run = run?;
            on_progress(&run);
            last = Some(run);
        }
        // The stream only ends cleanly after a final state.
        let run = last.ok_or(Error::MissingField {
            method: "WatchRun",
            field: "run",
        })?;
        if run.state() == v1::RunState::Succeeded {
            Ok(run)
        } else {
            Err(Error::RunFailed { run: Box::new(run) })
        }
    }

    /// The run each time its state or counts change, ending after its final state.
    pub fn progress(self) -> impl Stream<Item = Result<v1::Run, Error>> + Send + 'static {
        self.client.watch_run(&self.run.name)
    }
}

/// Where a watch is between two messages.
struct Watch {
    client: Client,
    name: String,
    stream: Option<Streaming<v1::WatchRunResponse>>,
    last: Option<v1::Run>,
    /// Watches opened since the last message; bounded by the retry policy.
    opened_without_news: u32,
    done: bool,
}

/// `WatchRun` on `name`, re-opened when it ends or turns unavailable before a final state.
pub(crate) fn watch(
    client: Client,
    name: String,
) -> impl Stream<Item = Result<v1::Run, Error>> + Send + 'static {
    let state = Watch {
        client,
        name,
        stream: None,
        last: None,
        opened_without_news: 0,
        done: false,
    };
    futures::stream::unfold(state, |mut w| async move {
        if w.done {
            return None;
        }
        let item = next_change(&mut w).await;
        if item.is_err() {
            w.done = true;
        }
        Some((item, w))
    })
}

/// The next run that differs from the last one seen.
async fn next_change(w: &mut Watch) -> Result<v1::Run, Error> {
    let policy = w.client.retry.clone();
    loop {
        let stream = match &mut w.stream {
            Some(stream) => stream,
            None => {
                if w.opened_without_news >= policy.max_attempts {
                    return Err(Error::WatchInterrupted {
                        run: w.name.clone(),
                        attempts: w.opened_without_news,
                    });
                }
                if w.opened_without_news > 0 {
                    tokio::time::sleep(policy.delay(w.opened_without_news)).await;
                }
                w.opened_without_news += 1;
                let runs = w.client.runs.clone();
                let name = w.name.clone();
                let opened = with_retries(&policy, "WatchRun", Idempotency::Safe, || {
                    let mut runs = runs.clone();
                    let request = v1::WatchRunRequest { name: name.clone() };
                    async move { runs.watch_run(request).await }
                })
                .await?;
                w.stream.insert(opened)
            }
        };
        match stream.message().await {
            Ok(Some(message)) => {
                let run = message.run.ok_or(Error::MissingField {
                    method: "WatchRun",
                    field: "run",
                })?;
                w.opened_without_news = 0;
                // A re-opened watch starts with the run as it is, which may be what was
                // already reported.
                if w.last.as_ref() == Some(&run) {
                    continue;
                }
                if is_final(&run) {
                    w.done = true;
                }
                w.last = Some(run.clone());
                return Ok(run);
            }
            Ok(None) => {
                tracing::debug!(run = %w.name, "run watch ended before the run finished, reopening");
                w.stream = None;
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tracing::debug!(run = %w.name, reason = status.message(), "run watch unavailable, reopening");
                w.stream = None;
            }
            Err(status) => return Err(status.into()),
        }
    }
}
