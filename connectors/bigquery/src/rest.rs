//! The BigQuery REST API (v2) calls the source makes, with retries of transient failures.
//!
//! Every call is retried with exponential backoff when it fails transiently: the connection
//! failed or dropped, HTTP 429 or 5xx, or a transient `reason` (`backendError`,
//! `rateLimitExceeded`, which BigQuery sends as a 403). `jobs.insert` carries a job id made by
//! the client, so a retried insert whose first attempt did reach the server answers
//! `409 duplicate` instead of running the query twice.

use std::time::Duration;

use backflow_connector_core::{ConnectorError, ErrorKind};
use bytes::Bytes;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Credentials;
use crate::config::BigQueryConfig;
use crate::error;
use crate::schema::TableSchema;

/// Attempts of one call before a transient failure is returned (as retryable).
const ATTEMPTS: u32 = 5;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A job, as the calls after `jobs.insert` address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobRef {
    pub(crate) id: String,
    pub(crate) location: Option<String>,
}

/// A table, as a job names its destination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TableRef {
    pub(crate) project_id: String,
    pub(crate) dataset_id: String,
    pub(crate) table_id: String,
}

impl TableRef {
    /// `projects/{p}/datasets/{d}/tables/{t}`, as the Storage Read API names a table.
    pub(crate) fn path(&self) -> String {
        format!(
            "projects/{}/datasets/{}/tables/{}",
            self.project_id, self.dataset_id, self.table_id
        )
    }
}

/// A table's schema and size (`tables.get`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TableInfo {
    #[serde(default)]
    pub(crate) schema: TableSchema,
    /// Rows in the table, as a decimal string.
    #[serde(default)]
    pub(crate) num_rows: Option<String>,
}

/// One `getQueryResults` page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultsPage {
    #[serde(default)]
    pub(crate) job_complete: Option<bool>,
    #[serde(default)]
    pub(crate) schema: Option<TableSchema>,
    #[serde(default)]
    pub(crate) total_rows: Option<String>,
    #[serde(default)]
    pub(crate) page_token: Option<String>,
    #[serde(default)]
    pub(crate) rows: Vec<crate::rows::Row>,
}

/// A REST client for one project.
#[derive(Debug, Clone)]
pub(crate) struct Rest {
    http: reqwest::Client,
    /// `{api_endpoint}/bigquery/v2`.
    base: url::Url,
    project: String,
    credentials: Credentials,
}

impl Rest {
    /// A client for `config`'s endpoint; does no I/O.
    pub(crate) fn new(
        config: &BigQueryConfig,
        credentials: Credentials,
    ) -> Result<Self, ConnectorError> {
        let base = url::Url::parse(&format!("{}/bigquery/v2", config.api_endpoint()))
            .map_err(|e| ConnectorError::config("api_endpoint", format!("not a valid URL: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| ConnectorError::internal(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            project: config.project().to_string(),
            credentials,
        })
    }

    /// `{base}/projects/{project}/{segments…}` with `query` parameters.
    fn url(&self, project: &str, segments: &[&str], query: &[(&str, &str)]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push("projects")
                .push(project)
                .extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Starts a query job named `job_id`; returns the job resource, or `None` when a retried
    /// insert found the job already created by an earlier attempt.
    pub(crate) async fn insert_query_job(
        &self,
        job_id: &str,
        query: &str,
        location: Option<&str>,
        default_dataset: Option<&str>,
        dry_run: bool,
    ) -> Result<Option<Value>, ConnectorError> {
        let mut job_reference = json!({"projectId": self.project, "jobId": job_id});
        if let Some(location) = location {
            job_reference["location"] = json!(location);
        }
        let mut query_config = json!({"query": query, "useLegacySql": false});
        if let Some(dataset) = default_dataset {
            query_config["defaultDataset"] =
                json!({"projectId": self.project, "datasetId": dataset});
        }
        let body = json!({
            "jobReference": job_reference,
            "configuration": {"query": query_config, "dryRun": dry_run},
        });
        let url = self.url(&self.project, &["jobs"], &[]);
        match self
            .call(Method::POST, url, Some(&body), "jobs.insert", true)
            .await?
        {
            Some(bytes) => parse(&bytes, "jobs.insert").map(Some),
            None => Ok(None),
        }
    }

    /// The job resource (`jobs.get`).
    pub(crate) async fn get_job(&self, job: &JobRef) -> Result<Value, ConnectorError> {
        let url = self.url(&self.project, &["jobs", &job.id], &location_param(job));
        self.call_json(Method::GET, url, "jobs.get").await
    }

    /// Asks BigQuery to stop the job (`jobs.cancel`); it may still complete.
    pub(crate) async fn cancel_job(&self, job: &JobRef) -> Result<(), ConnectorError> {
        let url = self.url(
            &self.project,
            &["jobs", &job.id, "cancel"],
            &location_param(job),
        );
        self.call(Method::POST, url, None, "jobs.cancel", false)
            .await
            .map(|_| ())
    }

    /// A table's schema and row count (`tables.get`).
    pub(crate) async fn get_table(&self, table: &TableRef) -> Result<TableInfo, ConnectorError> {
        let url = self.url(
            &table.project_id,
            &["datasets", &table.dataset_id, "tables", &table.table_id],
            &[],
        );
        self.call_json(Method::GET, url, "tables.get").await
    }

    /// One page of a finished query's rows (`jobs.getQueryResults`), timestamps as integer
    /// microseconds.
    pub(crate) async fn query_results(
        &self,
        job: &JobRef,
        page_token: Option<&str>,
        max_results: usize,
    ) -> Result<ResultsPage, ConnectorError> {
        let max = max_results.to_string();
        let mut query = location_param(job);
        query.push(("maxResults", max.as_str()));
        query.push(("formatOptions.useInt64Timestamp", "true"));
        query.push(("timeoutMs", "10000"));
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let url = self.url(&self.project, &["queries", &job.id], &query);
        self.call_json(Method::GET, url, "jobs.getQueryResults")
            .await
    }

    /// A bodiless call whose answer deserializes into `T`.
    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: url::Url,
        what: &str,
    ) -> Result<T, ConnectorError> {
        let bytes = self
            .call(method, url, None, what, false)
            .await?
            .unwrap_or_default();
        parse(&bytes, what)
    }

    /// Sends the request, retrying transient failures. With `duplicate_means_done`, a `409`
    /// after a retry is the earlier attempt's success and yields `None`.
    async fn call(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
        what: &str,
        duplicate_means_done: bool,
    ) -> Result<Option<Bytes>, ConnectorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .call_once(method.clone(), url.clone(), body, what)
                .await
            {
                Ok(value) => return Ok(Some(value)),
                Err(e) if duplicate_means_done && attempt > 1 && e.code() == Some("duplicate") => {
                    return Ok(None)
                }
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    tracing::warn!(attempt, call = what, error = %e, "bigquery call failed transiently, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call_once(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Bytes, ConnectorError> {
        let mut request = self.http.request(method, url.clone());
        if let Some(authorization) = self.credentials.authorization().await? {
            request = request.header("authorization", authorization.expose());
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let endpoint = url.origin().ascii_serialization();
        let response = request.send().await.map_err(|e| {
            ConnectorError::connectivity(format!(
                "cannot reach BigQuery at {endpoint} ({what}): {}",
                error_chain(&e)
            ))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            ConnectorError::connectivity(format!(
                "the connection to BigQuery at {endpoint} dropped while reading the {what} \
                 answer: {}",
                error_chain(&e)
            ))
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let err = value.get("error");
        let reason = err
            .and_then(|e| e.get("errors"))
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("reason"))
            .and_then(Value::as_str)
            .or_else(|| err.and_then(|e| e.get("status")).and_then(Value::as_str));
        let message = err
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect());
        Err(error::from_rest(what, status.as_u16(), reason, &message))
    }
}

/// Deserializes an answer, which must be JSON of the expected shape.
fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ConnectorError> {
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        ConnectorError::new(
            ErrorKind::Internal,
            format!("unexpected {what} answer from BigQuery: {e}"),
        )
    })
}

/// `location=…` when the job has one (jobs outside US and EU are found only with it).
fn location_param(job: &JobRef) -> Vec<(&'static str, &str)> {
    job.location
        .as_deref()
        .map(|l| vec![("location", l)])
        .unwrap_or_default()
}

/// Exponential backoff: 0.5 s, 1 s, 2 s, 4 s, … capped at 8 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(4)))
        .min(Duration::from_secs(8))
}

/// An error with its sources, which carry the useful part (`connection refused`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(10), Duration::from_secs(8));
    }

    #[test]
    fn urls_escape_ids_and_carry_the_location() {
        let config = BigQueryConfig::validate(&json!({
            "project": "p",
            "api_endpoint": "http://127.0.0.1:9050/",
            "storage_endpoint": "http://127.0.0.1:9060",
        }))
        .unwrap();
        let rest = Rest::new(&config, Credentials::None).unwrap();
        let job = JobRef {
            id: "j1".into(),
            location: Some("EU".into()),
        };
        let url = rest.url("p", &["jobs", &job.id], &location_param(&job));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9050/bigquery/v2/projects/p/jobs/j1?location=EU"
        );
        let url = rest.url("p", &["datasets", "d", "tables", "a b"], &[]);
        assert!(url.as_str().ends_with("/tables/a%20b"), "{url}");
    }
}
