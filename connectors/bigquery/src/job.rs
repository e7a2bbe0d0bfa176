//! Running a query as a job: insert, poll until done, re-run on transient job failures, and
//! cancel when the caller stops waiting.

use std::sync::Arc;
use std::time::Duration;

use backflow_connector_core::ConnectorError;
use serde_json::Value;

use crate::error;
use crate::rest::{JobRef, Rest, TableRef};

/// Times a query is run (each as a new job) when its job fails with a transient reason, as
/// Google's clients do with their `job_retry`.
const JOB_ATTEMPTS: u32 = 3;
/// The first and the longest pause between two `jobs.get` polls.
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);

/// A query job that finished successfully.
#[derive(Debug, Clone)]
pub(crate) struct DoneJob {
    pub(crate) job: JobRef,
    /// The table holding the result (an anonymous table for a plain query); none for a
    /// script, whose result only `getQueryResults` serves.
    pub(crate) destination: Option<TableRef>,
}

/// Runs `query` to completion. If the returned future is dropped before the job finished
/// (the run was cancelled), the job is cancelled with `jobs.cancel`.
pub(crate) async fn run(
    rest: &Arc<Rest>,
    query: &str,
    location: Option<&str>,
    default_dataset: Option<&str>,
) -> Result<DoneJob, ConnectorError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let job_id = format!("backflow_{}", uuid::Uuid::new_v4().simple());
        match run_once(rest, &job_id, query, location, default_dataset).await {
            Err(e) if e.is_retryable() && attempt < JOB_ATTEMPTS => {
                tracing::warn!(attempt, job_id, error = %e, "bigquery job failed transiently, running it again");
                tokio::time::sleep(crate::rest::backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

async fn run_once(
    rest: &Arc<Rest>,
    job_id: &str,
    query: &str,
    location: Option<&str>,
    default_dataset: Option<&str>,
) -> Result<DoneJob, ConnectorError> {
    let mut guard = CancelOnDrop {
        rest: rest.clone(),
        job: JobRef {
            id: job_id.to_string(),
            location: location.map(str::to_string),
        },
        armed: true,
    };
    let inserted = rest
        .insert_query_job(job_id, query, location, default_dataset, false)
        .await?;
    let mut resource = match inserted {
        Some(resource) => resource,
        None => rest.get_job(&guard.job).await?,
    };
    // BigQuery fills in the location it chose; later calls must name it.
    if let Some(l) = resource
        .pointer("/jobReference/location")
        .and_then(Value::as_str)
    {
        guard.job.location = Some(l.to_string());
    }
    tracing::debug!(job_id, "bigquery job started");
    let mut pause = FIRST_POLL;
    while state(&resource) != Some("DONE") {
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(MAX_POLL);
        resource = rest.get_job(&guard.job).await?;
    }
    guard.armed = false;
    if let Some(err) = resource.pointer("/status/errorResult") {
        let reason = err.get("reason").and_then(Value::as_str).unwrap_or("");
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the job failed without a message");
        return Err(error::from_job(job_id, reason, message));
    }
    let destination = resource
        .pointer("/configuration/query/destinationTable")
        .and_then(|t| serde_json::from_value::<TableRef>(t.clone()).ok());
    // A script's destination table holds nothing useful (its last statement's result is
    // served by getQueryResults only).
    let script = resource
        .pointer("/statistics/numChildJobs")
        .and_then(Value::as_str)
        .is_some_and(|n| n != "0");
    tracing::debug!(job_id, "bigquery job done");
    Ok(DoneJob {
        job: guard.job.clone(),
        destination: destination.filter(|_| !script),
    })
}

/// Dry-runs `query` (`SELECT 1` for `check`): proves the credentials may create jobs in the
/// project without running anything.
pub(crate) async fn dry_run(
    rest: &Rest,
    query: &str,
    location: Option<&str>,
    default_dataset: Option<&str>,
) -> Result<(), ConnectorError> {
    let job_id = format!("backflow_check_{}", uuid::Uuid::new_v4().simple());
    let resource = rest
        .insert_query_job(&job_id, query, location, default_dataset, true)
        .await?
        .unwrap_or(Value::Null);
    if let Some(err) = resource.pointer("/status/errorResult") {
        let reason = err.get("reason").and_then(Value::as_str).unwrap_or("");
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(error::from_job(&job_id, reason, message));
    }
    Ok(())
}

fn state(resource: &Value) -> Option<&str> {
    resource.pointer("/status/state").and_then(Value::as_str)
}

/// Cancels the job when dropped while still armed: the future running the job was dropped.
struct CancelOnDrop {
    rest: Arc<Rest>,
    job: JobRef,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let rest = self.rest.clone();
        let job = self.job.clone();
        runtime.spawn(async move {
            match rest.cancel_job(&job).await {
                Ok(()) => tracing::info!(job_id = job.id, "bigquery job cancelled"),
                Err(e) => {
                    tracing::warn!(job_id = job.id, error = %e, "cancelling the bigquery job failed")
                }
            }
        });
    }
}
