//! Ergonomic Rust client for the `backflow.v1` gRPC API: create connections and syncs, trigger
//! a run and follow it to its end, read its rejected rows.
//!
//! ```no_run
//! # async fn example() -> Result<(), backflow_client::Error> {
//! use backflow_client::{Client, SyncBuilder};
//!
//! let client = Client::builder("http://127.0.0.1:7070").token("s3cret").connect().await?;
//! client
//!     .create_sync(
//!         "customer_scores",
//!         SyncBuilder::new("warehouse", "SELECT customer_id, ltv FROM scores", "app_db",
//!                          "customer_scores", ["customer_id"]),
//!     )
//!     .await?;
//! let run = client.trigger("customer_scores").await?.wait().await?;
//! println!("wrote {} rows", run.counts.unwrap_or_default().written);
//! # Ok(()) }
//! ```
//!
//! Calls that are safe to repeat are retried with backoff while the control plane is
//! `UNAVAILABLE` ([`RetryPolicy`]); creates are not. Every call carries the caller's
//! OpenTelemetry context through the global text-map propagator, so a run joins the trace of
//! the code that triggered it.

mod error;
mod metadata;
mod retry;
mod run;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use backflow_proto::v1::connection_service_client::ConnectionServiceClient;
use backflow_proto::v1::run_service_client::RunServiceClient;
use backflow_proto::v1::sync_service_client::SyncServiceClient;
use futures::Stream;
use opentelemetry::Context;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The environment variable naming a PEM file of CA certificates to trust besides the system's.
pub const CA_CERT_ENV: &str = "BACKFLOW_CA_CERT";

/// The generated messages and stubs, so one dependency is enough.
pub use backflow_proto::v1;
pub use error::{Error, FieldViolation};
pub use metadata::RequestMetadata;
pub use retry::RetryPolicy;
pub use run::{is_final, RunHandle};
pub use sync::SyncBuilder;

use metadata::ContextSource;
use retry::{with_retries, Idempotency};
use sync::{resource_name, RUNS, SYNCS};

/// The transport under every stub: one HTTP/2 channel with the token and trace headers added.
pub type Service = InterceptedService<Channel, RequestMetadata>;

/// A connection to one control plane. Cheap to clone: clones share the HTTP/2 channel.
#[derive(Debug, Clone)]
pub struct Client {
    syncs: SyncServiceClient<Service>,
    runs: RunServiceClient<Service>,
    connections: ConnectionServiceClient<Service>,
    retry: RetryPolicy,
}

/// Settings of a [`Client`] before it connects.
#[derive(Clone)]
pub struct ClientBuilder {
    address: String,
    token: Option<String>,
    ca_certificate: Option<Vec<u8>>,
    retry: RetryPolicy,
    connect_timeout: Duration,
    timeout: Duration,
    context: ContextSource,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Sends `authorization: Bearer TOKEN` on every call (the control plane's API token).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts these PEM CA certificates besides the system's, for an `https://` control plane
    /// whose certificate a private CA issued. Without it, the file the `BACKFLOW_CA_CERT`
    /// environment variable names is read (the variable the CLI, the worker and every Backflow
    /// client share).
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }

    /// How calls that are safe to repeat are retried on `UNAVAILABLE`.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline of each call until its response starts (default 30 s); a `WatchRun` stream
    /// is not limited once it started.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where the trace context of each call comes from; by default
    /// `opentelemetry::Context::current()`. With `tracing-opentelemetry`, pass
    /// `|| tracing::Span::current().context()` so the current tracing span is the parent.
    pub fn trace_context(mut self, source: impl Fn() -> Context + Send + Sync + 'static) -> Self {
        self.context = Arc::new(source);
        self
    }

    /// Connects now, so an unreachable server is one clear error at start-up.
    pub async fn connect(self) -> Result<Client, Error> {
        let metadata = self.metadata()?;
        let channel = self
            .endpoint()?
            .connect()
            .await
            .map_err(|e| Error::Connect {
                address: self.address.clone(),
                reason: root_cause(&e),
            })?;
        Ok(Client::new(channel, metadata, self.retry))
    }

    /// Connects on the first call and reconnects after failures; for services that start
    /// before the control plane does (the first calls are retried per the policy). Call it
    /// inside a Tokio runtime: the channel's worker task starts here.
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let metadata = self.metadata()?;
        let channel = self.endpoint()?.connect_lazy();
        Ok(Client::new(channel, metadata, self.retry))
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let address = self.address.trim().trim_end_matches('/');
        let url = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let invalid = |reason: String| Error::InvalidSetting {
            setting: "address",
            reason,
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| invalid(format!("`{url}` is not a URL: {e}")))?
            .connect_timeout(self.connect_timeout)
            // WatchRun streams can be quiet for minutes; keep the connection alive.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            .timeout(self.timeout);
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(pem) = self.ca_certificate_pem()? {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| invalid(format!("TLS setup failed: {e}")))?;
        }
        Ok(endpoint)
    }

    /// The private CA's certificates: as given, or from the file `BACKFLOW_CA_CERT` names.
    fn ca_certificate_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        let pem = match (&self.ca_certificate, std::env::var_os(CA_CERT_ENV)) {
            (Some(pem), _) => pem.clone(),
            (None, Some(path)) if !path.is_empty() => {
                std::fs::read(&path).map_err(|e| Error::InvalidSetting {
                    setting: CA_CERT_ENV,
                    reason: format!("cannot read {}: {e}", path.to_string_lossy()),
                })?
            }
            (None, _) => return Ok(None),
        };
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::InvalidSetting {
                setting: "ca_certificate",
                reason: "holds no PEM certificate".into(),
            });
        }
        Ok(Some(pem))
    }

    fn metadata(&self) -> Result<RequestMetadata, Error> {
        let authorization = match self.token.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                return Err(Error::InvalidSetting {
                    setting: "token",
                    reason: "is empty".into(),
                })
            }
            Some(token) => Some(MetadataValue::try_from(format!("Bearer {token}")).map_err(
                |_| Error::InvalidSetting {
                    setting: "token",
                    reason: "holds characters not allowed in a header".into(),
                },
            )?),
        };
        Ok(RequestMetadata::new(
            authorization,
            Arc::clone(&self.context),
        ))
    }
}

/// The innermost error: `Connection refused (os error 111)` rather than `transport error`.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut error = error;
    while let Some(source) = error.source() {
        error = source;
    }
    error.to_string()
}

/// Options of [`Client::trigger_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerOptions {
    full_resync: bool,
    request_id: Option<String>,
}

impl TriggerOptions {
    /// Re-send every row, ignoring the last snapshot's hashes.
    pub fn full_resync(mut self, full_resync: bool) -> Self {
        self.full_resync = full_resync;
        self
    }

    /// The idempotency key: triggering the same sync again with the same id returns the run
    /// of the first trigger. Without one, the client makes a fresh id per trigger (and reuses
    /// it across its own retries).
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }
}

impl Client {
    fn new(channel: Channel, metadata: RequestMetadata, retry: RetryPolicy) -> Client {
        Client {
            syncs: SyncServiceClient::with_interceptor(channel.clone(), metadata.clone()),
            runs: RunServiceClient::with_interceptor(channel.clone(), metadata.clone()),
            connections: ConnectionServiceClient::with_interceptor(channel, metadata),
            retry,
        }
    }

    /// Connects to the control plane at `address` (`http://host:port`, `https://…`, or
    /// `host:port`) with the default settings and no token.
    pub async fn connect(address: impl Into<String>) -> Result<Client, Error> {
        Self::builder(address).connect().await
    }

    /// Settings for a client of the control plane at `address`.
    pub fn builder(address: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            address: address.into(),
            token: None,
            ca_certificate: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            context: Arc::new(Context::current),
        }
    }

    /// Creates connection `id` of connector `kind` (`postgres`, `files`, `sqlite`, …) with the
    /// connector's `config`; secrets belong in it as references (`${env:NAME}`), never values.
    /// Not retried: a retry after a lost answer would report `ALREADY_EXISTS`.
    pub async fn create_connection(
        &self,
        id: &str,
        kind: &str,
        config: &serde_json::Value,
    ) -> Result<v1::Connection, Error> {
        let request = v1::CreateConnectionRequest {
            connection_id: id.to_owned(),
            connection: Some(v1::Connection {
                r#type: kind.to_owned(),
                config: Some(backflow_proto::json::struct_from_json(config)),
                ..Default::default()
            }),
            validate_only: false,
        };
        let stub = self.connections.clone();
        let response = with_retries(&self.retry, "CreateConnection", Idempotency::Unsafe, || {
            let mut stub = stub.clone();
            let request = request.clone();
            async move { stub.create_connection(request).await }
        })
        .await?;
        response.connection.ok_or(Error::MissingField {
            method: "CreateConnection",
            field: "connection",
        })
    }

    /// Creates sync `id`. An invalid definition fails with `INVALID_ARGUMENT` and every wrong
    /// field in [`Error::field_violations`]. Not retried (see [`Client::create_connection`]).
    pub async fn create_sync(
        &self,
        id: &str,
        sync: impl Into<v1::Sync>,
    ) -> Result<v1::Sync, Error> {
        let request = v1::CreateSyncRequest {
            sync_id: id.to_owned(),
            sync: Some(sync.into()),
        };
        let stub = self.syncs.clone();
        let response = with_retries(&self.retry, "CreateSync", Idempotency::Unsafe, || {
            let mut stub = stub.clone();
            let request = request.clone();
            async move { stub.create_sync(request).await }
        })
        .await?;
        response.sync.ok_or(Error::MissingField {
            method: "CreateSync",
            field: "sync",
        })
    }

    /// One sync, by id or `syncs/{id}`.
    pub async fn get_sync(&self, name: &str) -> Result<v1::Sync, Error> {
        let request = v1::GetSyncRequest {
            name: resource_name(SYNCS, name),
        };
        let stub = self.syncs.clone();
        let response = with_retries(&self.retry, "GetSync", Idempotency::Safe, || {
            let mut stub = stub.clone();
            let request = request.clone();
            async move { stub.get_sync(request).await }
        })
        .await?;
        response.sync.ok_or(Error::MissingField {
            method: "GetSync",
            field: "sync",
        })
    }

    /// Queues a run of `sync` (id or `syncs/{id}`) and returns a handle to follow it. Retried
    /// on `UNAVAILABLE` with the same request id, so a retry never queues a second run.
    pub async fn trigger(&self, sync: &str) -> Result<RunHandle, Error> {
        self.trigger_with(sync, TriggerOptions::default()).await
    }

    /// [`Client::trigger`] with options.
    pub async fn trigger_with(
        &self,
        sync: &str,
        options: TriggerOptions,
    ) -> Result<RunHandle, Error> {
        let request = v1::TriggerSyncRequest {
            name: resource_name(SYNCS, sync),
            full_resync: options.full_resync,
            request_id: options
                .request_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        };
        let stub = self.syncs.clone();
        let response = with_retries(&self.retry, "TriggerSync", Idempotency::Safe, || {
            let mut stub = stub.clone();
            let request = request.clone();
            async move { stub.trigger_sync(request).await }
        })
        .await?;
        let run = response.run.ok_or(Error::MissingField {
            method: "TriggerSync",
            field: "run",
        })?;
        Ok(RunHandle::new(self.clone(), run, response.coalesced))
    }

    /// One run, by id or `runs/{id}`.
    pub async fn get_run(&self, name: &str) -> Result<v1::Run, Error> {
        let request = v1::GetRunRequest {
            name: resource_name(RUNS, name),
        };
        let stub = self.runs.clone();
        let response = with_retries(&self.retry, "GetRun", Idempotency::Safe, || {
            let mut stub = stub.clone();
            let request = request.clone();
            async move { stub.get_run(request).await }
        })
        .await?;
        response.run.ok_or(Error::MissingField {
            method: "GetRun",
            field: "run",
        })
    }

    /// The run (id or `runs/{id}`) now and each time its state or counts change, ending after
    /// its final state. The watch is re-opened when the server ends it early.
    pub fn watch_run(
        &self,
        name: &str,
    ) -> impl Stream<Item = Result<v1::Run, Error>> + Send + 'static {
        run::watch(self.clone(), resource_name(RUNS, name))
    }

    /// Every row the destination refused in a run (all pages), with its key, column and the
    /// destination's message. The server keeps at most the sync's `max_rejected_rows` per run;
    /// `Run::rejected_rows` is the exact count.
    pub async fn list_rejected_rows(&self, run: &str) -> Result<Vec<v1::RejectedRow>, Error> {
        let run = resource_name(RUNS, run);
        let mut rows = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = v1::ListRejectedRowsRequest {
                run: run.clone(),
                page_size: 1000,
                page_token,
            };
            let stub = self.runs.clone();
            let page = with_retries(&self.retry, "ListRejectedRows", Idempotency::Safe, || {
                let mut stub = stub.clone();
                let request = request.clone();
                async move { stub.list_rejected_rows(request).await }
            })
            .await?;
            rows.extend(page.rejected_rows);
            if page.next_page_token.is_empty() {
                return Ok(rows);
            }
            page_token = page.next_page_token;
        }
    }

    /// The `SyncService` stub on this client's channel, for calls the client does not wrap
    /// (`UpdateSync`, `PauseSync`, `PlanSync`, …). Carries the token and trace context; not
    /// retried.
    pub fn sync_service(&self) -> SyncServiceClient<Service> {
        self.syncs.clone()
    }

    /// The `RunService` stub (`ListRuns`, `CancelRun`, …); see [`Client::sync_service`].
    pub fn run_service(&self) -> RunServiceClient<Service> {
        self.runs.clone()
    }

    /// The `ConnectionService` stub (`TestConnection`, …); see [`Client::sync_service`].
    pub fn connection_service(&self) -> ConnectionServiceClient<Service> {
        self.connections.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_settings_are_named_without_echoing_the_token() {
        let error = Client::builder("http://bad host")
            .connect_lazy()
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidSetting {
                    setting: "address",
                    ..
                }
            ),
            "{error}"
        );
        let error = Client::builder("127.0.0.1:1")
            .token("  ")
            .connect_lazy()
            .unwrap_err();
        assert!(matches!(
            error,
            Error::InvalidSetting {
                setting: "token",
                ..
            }
        ));
        let error = Client::builder("127.0.0.1:1")
            .token("bad\ntoken")
            .connect_lazy()
            .unwrap_err();
        assert!(!error.to_string().contains("bad\ntoken"), "{error}");
        assert!(!format!("{:?}", Client::builder("x").token("s3cret")).contains("s3cret"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_one_retryable_error() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = Client::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(error.is_retryable());
        assert!(
            error.to_string().starts_with(&format!(
                "cannot reach the control plane at 127.0.0.1:{port}: "
            )),
            "{error}"
        );
    }
}
