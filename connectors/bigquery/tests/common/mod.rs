//! Shared helpers of the BigQuery tests: the emulator from `scripts/services.sh`, seeding
//! through its REST API, and sources for both read paths.

// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::sync::Arc;

use backflow_bigquery::BigQuerySource;
use backflow_connector_core::Source;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use backflow_connector_contract::fixtures::read_all;
pub use backflow_connector_contract::unique_name as unique;

/// The project the emulator serves.
pub const PROJECT: &str = "test";

/// The BigQuery emulator started by `scripts/services.sh start`.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// REST base URL, `http://127.0.0.1:59050`.
    pub api: String,
    /// Storage Read API address, `127.0.0.1:59060`.
    pub grpc: SocketAddr,
    http: reqwest::Client,
}

impl Emulator {
    /// Reads `BACKFLOW_TEST_BIGQUERY_URL` and `BACKFLOW_TEST_BIGQUERY_GRPC`; panics with how
    /// to set them when missing (the tests never skip).
    pub fn from_env() -> Self {
        let hint = "start the emulator with `scripts/services.sh start` and run \
                    `eval \"$(scripts/services.sh env)\"`";
        let api = std::env::var("BACKFLOW_TEST_BIGQUERY_URL")
            .unwrap_or_else(|_| panic!("BACKFLOW_TEST_BIGQUERY_URL is not set: {hint}"));
        let grpc = std::env::var("BACKFLOW_TEST_BIGQUERY_GRPC")
            .unwrap_or_else(|_| panic!("BACKFLOW_TEST_BIGQUERY_GRPC is not set: {hint}"))
            .parse()
            .expect("BACKFLOW_TEST_BIGQUERY_GRPC is host:port");
        Self {
            api,
            grpc,
            http: reqwest::Client::new(),
        }
    }

    /// The source config for this emulator, with the Storage API at `storage`.
    pub fn config(&self, storage: SocketAddr) -> Value {
        json!({
            "project": PROJECT,
            "api_endpoint": self.api,
            "storage_endpoint": format!("http://{storage}"),
        })
    }

    /// A source reading through the Storage Read API.
    pub fn storage_source(&self) -> BigQuerySource {
        backflow_bigquery::validate_source(&self.config(self.grpc)).expect("valid config")
    }

    /// A source whose Storage endpoint is a gRPC server without the BigQuery service, so
    /// every read falls back to `getQueryResults` pages.
    pub async fn rest_source(&self) -> BigQuerySource {
        let addr = serve_without_bigquery().await;
        backflow_bigquery::validate_source(&self.config(addr)).expect("valid config")
    }

    /// POSTs `body` to `{api}/bigquery/v2/projects/test/{path}`, failing on an error answer.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}/bigquery/v2/projects/{PROJECT}/{path}", self.api);
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status();
        let value: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path}: {status}: {value}");
        Ok(value)
    }

    /// Creates a dataset named `name`.
    pub async fn create_dataset(&self, name: &str) -> anyhow::Result<()> {
        self.post(
            "datasets",
            &json!({"datasetReference": {"projectId": PROJECT, "datasetId": name}}),
        )
        .await
        .map(|_| ())
    }

    /// Runs a statement (DDL, DML) and fails if its job failed.
    pub async fn run(&self, sql: &str) -> anyhow::Result<Value> {
        let job = self
            .post(
                "jobs",
                &json!({
                    "jobReference": {"projectId": PROJECT, "jobId": unique("seed")},
                    "configuration": {"query": {"query": sql, "useLegacySql": false}},
                }),
            )
            .await?;
        if let Some(err) = job.pointer("/status/errorResult") {
            anyhow::bail!("{sql}: {err}");
        }
        Ok(job)
    }

    /// Deletes a dataset and its tables; best effort.
    pub async fn drop_dataset(&self, name: &str) {
        let url = format!(
            "{}/bigquery/v2/projects/{PROJECT}/datasets/{name}?deleteContents=true",
            self.api
        );
        let _ = self.http.delete(&url).send().await;
    }
}

/// A gRPC server with no services, on a loopback port: every call answers UNIMPLEMENTED,
/// as Google's endpoint answers a project without the Storage API.
pub async fn serve_without_bigquery() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// A shared handle on a source, as the contract suite wants it.
pub fn shared(source: BigQuerySource) -> Arc<dyn Source> {
    Arc::new(source)
}
