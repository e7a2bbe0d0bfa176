//! The gRPC client of `WorkerService`: a lazily connected channel, the bearer token on every
//! call, and the one rule for which failures are worth retrying.
//!
//! The channel connects on first use and reconnects by itself, so a control plane that is
//! down when the worker starts, or restarts later, costs retries, never the process.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use backflow_common::client_tls::client_tls_config;
use backflow_proto::v1::worker_service_client::WorkerServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::runner::RunnerError;

/// How long to wait for a TCP connection to the control plane.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings find a control plane that vanished without closing the connection.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// A ping unanswered this long drops the connection; the next call reconnects.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `WorkerService` client every task of the worker clones (clones share one channel).
pub(crate) type WorkerClient = WorkerServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Adds `authorization: Bearer <token>` to every call when the worker has a token, and the
/// current span's W3C trace context.
#[derive(Clone)]
pub(crate) struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerAuth {
    /// Builds the header once; the error never repeats the token.
    fn new(token: Option<&str>) -> Result<Self, RunnerError> {
        let header = match token {
            None => None,
            Some(token) => {
                let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| RunnerError::InvalidToken)?;
                // Keeps the value out of debug output of requests.
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Self { header })
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        // The control plane's spans of this call join the trace of the run being reported.
        backflow_common::trace_context::inject_current(request.metadata_mut());
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// A client whose channel connects on first use; fails only on a malformed address or token,
/// or an unusable CA file. An `https://` server is trusted through the system's roots plus
/// `ca_cert`.
pub(crate) fn connect_lazy(
    server: &str,
    token: Option<&str>,
    ca_cert: Option<&Path>,
) -> Result<WorkerClient, RunnerError> {
    let invalid = |message: String| RunnerError::InvalidServer {
        server: server.to_owned(),
        message,
    };
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(invalid("expected an http:// or https:// URL".into()));
    }
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if server.starts_with("https://") {
        let tls = client_tls_config(ca_cert).map_err(|e| invalid(e.to_string()))?;
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| invalid(e.to_string()))?;
    }
    let channel = endpoint.connect_lazy();
    Ok(WorkerServiceClient::with_interceptor(
        channel,
        BearerAuth::new(token)?,
    ))
}

/// Whether a failed call may succeed if sent again: the control plane was unreachable,
/// restarting, overloaded, or the connection broke mid-call. Refusals that a retry cannot
/// change (a stale lease, a malformed request, bad credentials) are not.
pub(crate) fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
    )
}

/// Runs one call with a client-side time limit, so a control plane that accepted the
/// connection but stopped answering cannot hang a worker task; the limit counts as
/// `DEADLINE_EXCEEDED`, which [`is_transient`] retries.
pub(crate) async fn with_timeout<T>(
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer from the control plane within {limit:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    #[test]
    fn the_token_travels_as_a_bearer_header() {
        let mut auth = BearerAuth::new(Some("s3cr3t")).unwrap();
        let request = auth.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cr3t"
        );
        let mut none = BearerAuth::new(None).unwrap();
        let request = none.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_echoing_it() {
        let e = BearerAuth::new(Some("bad\ntoken")).err().unwrap();
        assert!(!e.to_string().contains("bad"), "{e}");
    }

    #[tokio::test]
    async fn addresses_are_checked_but_not_dialled() {
        // Nothing listens on port 9: a lazy channel must not care yet.
        assert!(connect_lazy("http://127.0.0.1:9", None, None).is_ok());
        assert!(connect_lazy("https://127.0.0.1:9", None, None).is_ok());
        assert!(connect_lazy("127.0.0.1:7070", None, None).is_err());
        assert!(connect_lazy("http://bad host", None, None).is_err());
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(connect_lazy("https://127.0.0.1:9", None, Some(missing)).is_err());
    }

    #[test]
    fn outages_are_transient_and_refusals_are_not() {
        for status in [
            Status::unavailable("down"),
            Status::unknown("transport error"),
            Status::deadline_exceeded("slow"),
        ] {
            assert!(is_transient(&status), "{status:?}");
        }
        for status in [
            Status::failed_precondition("stale lease"),
            Status::invalid_argument("bad"),
            Status::unauthenticated("token"),
            Status::not_found("run"),
        ] {
            assert!(!is_transient(&status), "{status:?}");
        }
    }
}
