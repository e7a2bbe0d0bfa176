//! The fallback read path: `jobs.getQueryResults` pages when the Storage Read API is not
//! available (or the query was a script).

use std::sync::Arc;

use backflow_connector_core::{BatchStream, ConnectorError, ErrorKind};
use tokio::sync::mpsc;

use crate::pump::{self, Message};
use crate::rest::{JobRef, Rest, ResultsPage};
use crate::rows;
use crate::schema::ResultSchema;

/// Rows asked for per page (BigQuery also caps a page at about 10 MB). Pages are fetched one
/// ahead and sliced into batches of the requested size, so memory holds about two pages.
const PAGE_ROWS: usize = 20_000;

/// Reads the first page (for the schema) and streams the rest from a task.
pub(crate) async fn read(
    rest: Arc<Rest>,
    job: JobRef,
    batch_size: usize,
) -> Result<BatchStream, ConnectorError> {
    let mut first = rest.query_results(&job, None, PAGE_ROWS).await?;
    while first.job_complete == Some(false) {
        first = rest.query_results(&job, None, PAGE_ROWS).await?;
    }
    let table_schema = first
        .schema
        .clone()
        .filter(|s| !s.fields.is_empty())
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Query,
                "the query returned no result set (a DDL or DML statement?); a source query \
                 must be a SELECT",
            )
        })?;
    let schema = Arc::new(ResultSchema::new(table_schema)?);
    let expected = first
        .total_rows
        .as_deref()
        .and_then(|n| n.parse::<u64>().ok());
    let (tx, rx) = pump::channel(1);
    let producer = tokio::spawn(produce(
        rest,
        job,
        schema.clone(),
        first,
        expected,
        batch_size,
        tx,
    ));
    Ok(pump::batch_stream(schema.arrow.clone(), rx, producer))
}

async fn produce(
    rest: Arc<Rest>,
    job: JobRef,
    schema: Arc<ResultSchema>,
    first: ResultsPage,
    expected: Option<u64>,
    batch_size: usize,
    tx: mpsc::Sender<Message>,
) {
    if let Err(e) = pages(&rest, &job, &schema, first, expected, batch_size, &tx).await {
        let _ = tx.send(Message::Failed(e)).await;
    }
}

async fn pages(
    rest: &Rest,
    job: &JobRef,
    schema: &ResultSchema,
    first: ResultsPage,
    expected: Option<u64>,
    batch_size: usize,
    tx: &mpsc::Sender<Message>,
) -> Result<(), ConnectorError> {
    let mut page = first;
    let mut total = 0u64;
    loop {
        if !page.rows.is_empty() {
            total += page.rows.len() as u64;
            let batch = rows::rows_to_batch(schema, &page.rows)?;
            if !pump::send_sliced(tx, batch, batch_size).await {
                return Ok(());
            }
        }
        match page.page_token.filter(|t| !t.is_empty()) {
            Some(token) => page = rest.query_results(job, Some(&token), PAGE_ROWS).await?,
            None => break,
        }
    }
    if let Some(expected) = expected.filter(|e| *e != total) {
        return Err(ConnectorError::connectivity(format!(
            "BigQuery's result pages held {total} rows but the result has {expected}"
        )));
    }
    tracing::debug!(rows = total, "bigquery rest read done");
    let _ = tx.send(Message::End).await;
    Ok(())
}
