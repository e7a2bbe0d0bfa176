//! The client's side of the wire: which control plane to talk to, the channel, the bearer
//! token, resource names, and the one mapping from a gRPC status to a readable message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use backflow_common::client_tls::client_tls_config;
use backflow_proto::v1::connection_service_client::ConnectionServiceClient;
use backflow_proto::v1::run_service_client::RunServiceClient;
use backflow_proto::v1::sync_service_client::SyncServiceClient;
use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// Where the control plane listens when nothing else is said (`backflow standalone`'s default).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Options every client verb shares.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The control plane's gRPC address.
    #[arg(long, global = true, env = "BACKFLOW_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// API token, sent as `authorization: Bearer TOKEN`.
    #[arg(long, global = true, env = "BACKFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of CA certificates trusted besides the system's, for an `https://` server
    /// whose certificate a private CA issued.
    #[arg(long, global = true, env = "BACKFLOW_CA_CERT", value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
}

/// Adds `authorization: Bearer …` to every request when a token is configured, and the W3C
/// trace context of the command's span.
#[derive(Debug, Clone, Default)]
pub struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerAuth {
    /// Auth for `token`; none for a missing or blank token.
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let header = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => Some(
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| anyhow!("the token holds characters not allowed in a header"))?,
            ),
        };
        Ok(Self { header })
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        backflow_common::trace_context::inject_current(request.metadata_mut());
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

type Service = InterceptedService<Channel, BearerAuth>;

/// Stubs of the three public services over one channel.
#[derive(Debug, Clone)]
pub struct Client {
    /// SyncService.
    pub syncs: SyncServiceClient<Service>,
    /// RunService.
    pub runs: RunServiceClient<Service>,
    /// ConnectionService.
    pub connections: ConnectionServiceClient<Service>,
}

impl Client {
    /// Connects to the control plane now, so that an unreachable server is one clear error
    /// before anything else happens.
    pub async fn connect(args: &ClientArgs) -> anyhow::Result<Self> {
        let url = server_url(&args.server)?;
        let auth = BearerAuth::new(args.token.as_deref())?;
        let channel = endpoint(&url, args.ca_cert.as_deref())?
            .connect()
            .await
            .map_err(|e| {
                let cause = root_cause(&e);
                let hint = if cause.contains("certificate") {
                    "a private CA's certificate is trusted with --ca-cert or BACKFLOW_CA_CERT"
                } else {
                    "is `backflow standalone` running?"
                };
                anyhow!("cannot reach the control plane at {url}: {cause}; {hint}")
            })?;
        Ok(Self::new(channel, auth))
    }

    /// Stubs over an existing channel (tests serve over an in-memory one).
    pub fn new(channel: Channel, auth: BearerAuth) -> Self {
        Self {
            syncs: SyncServiceClient::with_interceptor(channel.clone(), auth.clone()),
            runs: RunServiceClient::with_interceptor(channel.clone(), auth.clone()),
            connections: ConnectionServiceClient::with_interceptor(channel, auth),
        }
    }
}

/// The server address as a URL: `127.0.0.1:7070` becomes `http://127.0.0.1:7070`; a trailing
/// slash is dropped.
pub fn server_url(server: &str) -> anyhow::Result<String> {
    let server = server.trim().trim_end_matches('/');
    if server.is_empty() {
        bail!("--server is empty");
    }
    Ok(if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    })
}

/// The channel's endpoint; `ca_cert` matters only for `https://` (the variable may be set
/// for every command of a shell).
fn endpoint(url: &str, ca_cert: Option<&Path>) -> anyhow::Result<Endpoint> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("`{url}` is not a valid server address"))?
        .connect_timeout(Duration::from_secs(5))
        // WatchRun streams can be quiet for a long time; keep the connection alive.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(client_tls_config(ca_cert)?)
            .context("setting up TLS")?;
    }
    Ok(endpoint)
}

/// The innermost error: `Connection refused (os error 111)` rather than `transport error`.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut error = error;
    while let Some(source) = error.source() {
        error = source;
    }
    error.to_string()
}

/// Kinds of resource names this CLI sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// `syncs/{id}`.
    Syncs,
    /// `runs/{id}`.
    Runs,
    /// `connections/{id}`.
    Connections,
}

impl Collection {
    fn prefix(self) -> &'static str {
        match self {
            Collection::Syncs => "syncs",
            Collection::Runs => "runs",
            Collection::Connections => "connections",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Collection::Syncs => "sync",
            Collection::Runs => "run",
            Collection::Connections => "connection",
        }
    }
}

/// The full resource name for a bare id (`customer_scores`) or a full name
/// (`syncs/customer_scores`); a name of another collection is refused.
pub fn resource_name(collection: Collection, input: &str) -> anyhow::Result<String> {
    let input = input.trim();
    let prefix = collection.prefix();
    let id = match input.split_once('/') {
        None => input,
        Some((p, id)) if p == prefix && !id.contains('/') => id,
        Some(_) => bail!(
            "{} is not a {} name: give `ID` or `{prefix}/ID`",
            backflow_connector_core::quoted(input),
            collection.singular()
        ),
    };
    if id.is_empty() {
        bail!("the {} name is empty", collection.singular());
    }
    Ok(format!("{prefix}/{id}"))
}

/// A failed call, displayed through [`describe_status`].
#[derive(Debug)]
pub struct RpcError(pub Status);

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_status(&self.0))
    }
}

impl std::error::Error for RpcError {}

/// Unwraps a response, turning a status into an [`RpcError`].
pub trait RpcResult<T> {
    /// The message, or the readable error.
    fn rpc(self) -> Result<T, RpcError>;
}

impl<T> RpcResult<T> for Result<tonic::Response<T>, Status> {
    fn rpc(self) -> Result<T, RpcError> {
        self.map(tonic::Response::into_inner).map_err(RpcError)
    }
}

/// THE mapping from a gRPC status to what a person reads: the code in words, then the field
/// violations of a `BadRequest` detail when the server sent any (they say more than the
/// message), else the message.
///
/// `invalid argument: sync.primary_key: must name at least one column`
pub fn describe_status(status: &Status) -> String {
    let code = match status.code() {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by the server",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    };
    let violations: Vec<String> = status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| {
                    if v.field.is_empty() {
                        v.description.clone()
                    } else {
                        format!("{}: {}", v.field, v.description)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut text = code.to_owned();
    if !violations.is_empty() {
        text.push_str(": ");
        text.push_str(&violations.join("; "));
    } else if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    if status.code() == Code::Unauthenticated {
        text.push_str(" (pass --token or set BACKFLOW_TOKEN)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    #[test]
    fn names_accept_ids_and_full_names() {
        let n = |c, s| resource_name(c, s).map_err(|e| e.to_string());
        assert_eq!(
            n(Collection::Syncs, "customer_scores").unwrap(),
            "syncs/customer_scores"
        );
        assert_eq!(
            n(Collection::Syncs, " syncs/customer_scores ").unwrap(),
            "syncs/customer_scores"
        );
        assert_eq!(
            n(Collection::Runs, "0193a0b2-0000-7000-8000-000000000001").unwrap(),
            "runs/0193a0b2-0000-7000-8000-000000000001"
        );
        assert_eq!(
            n(Collection::Connections, "connections/app_db").unwrap(),
            "connections/app_db"
        );
        assert_eq!(
            n(Collection::Syncs, "runs/abc").unwrap_err(),
            "`runs/abc` is not a sync name: give `ID` or `syncs/ID`"
        );
        assert!(n(Collection::Syncs, "syncs/a/b").is_err());
        assert_eq!(
            n(Collection::Runs, "runs/").unwrap_err(),
            "the run name is empty"
        );
        assert!(n(Collection::Connections, "").is_err());
    }

    #[test]
    fn server_urls_get_a_scheme() {
        assert_eq!(
            server_url("127.0.0.1:7070").unwrap(),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            server_url("https://backflow.example:443/").unwrap(),
            "https://backflow.example:443"
        );
        assert!(server_url(" ").is_err());
        assert!(endpoint("http://127.0.0.1:7070", None).is_ok());
        assert!(endpoint("http://bad host", None).is_err());
    }

    #[test]
    fn statuses_read_as_code_and_field_violations() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "the sync is invalid",
            ErrorDetails::with_bad_request(vec![FieldViolation::new(
                "sync.primary_key",
                "must name at least one column",
            )]),
        );
        assert_eq!(
            describe_status(&status),
            "invalid argument: sync.primary_key: must name at least one column"
        );
        let error = anyhow::Error::new(RpcError(status)).context("sync customer_scores");
        assert_eq!(
            format!("{error:#}"),
            "sync customer_scores: invalid argument: sync.primary_key: must name at least one column"
        );
        assert_eq!(
            error.downcast_ref::<RpcError>().map(|e| e.0.code()),
            Some(Code::InvalidArgument)
        );

        assert_eq!(
            describe_status(&Status::not_found("no sync `x`")),
            "not found: no sync `x`"
        );
        assert_eq!(
            describe_status(&Status::unauthenticated("missing bearer token")),
            "unauthenticated: missing bearer token (pass --token or set BACKFLOW_TOKEN)"
        );
        assert_eq!(describe_status(&Status::internal("")), "internal error");
    }

    #[test]
    fn the_interceptor_sends_a_bearer_token() {
        let mut auth = BearerAuth::new(Some("s3cret")).unwrap();
        let request = auth.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        let mut none = BearerAuth::new(Some("  ")).unwrap();
        let request = none.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(BearerAuth::new(Some("bad\ntoken")).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_one_clear_line() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = ClientArgs {
            server: format!("127.0.0.1:{port}"),
            token: None,
            ca_cert: None,
        };
        let error = Client::connect(&args).await.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "cannot reach the control plane at http://127.0.0.1:{port}: "
            )),
            "{error}"
        );
        assert!(
            error.ends_with("; is `backflow standalone` running?"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}
