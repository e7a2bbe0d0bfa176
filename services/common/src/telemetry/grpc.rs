//! The gRPC server's telemetry as one tower layer in front of every service: a server span per
//! call that continues the caller's W3C trace context (`traceparent` metadata), and the
//! request metrics `backflow_grpc_requests_total{method, code}` and
//! `backflow_grpc_request_duration_seconds{method}`.
//!
//! The workers' plumbing calls (long polls, heartbeats, progress reports) and health checks
//! get `debug` spans, which are not exported: a trace per heartbeat would bury the runs.
//! Their metrics are recorded like any other call's. The code is the `grpc-status` the
//! response headers carry (errors, which tonic sends as trailers-only responses) or `OK`; for
//! a stream, the duration is the time to its first response headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

/// Counter of gRPC requests by method and status code.
pub const GRPC_REQUESTS_TOTAL: &str = "backflow_grpc_requests_total";
/// Histogram of gRPC request latency by method.
pub const GRPC_REQUEST_DURATION: &str = "backflow_grpc_request_duration_seconds";

/// Methods that are not traced (they are metered).
const QUIET: &[&str] = &[
    "/backflow.v1.WorkerService/PollWork",
    "/backflow.v1.WorkerService/Heartbeat",
    "/backflow.v1.WorkerService/ReportProgress",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
];

/// The layer; add it outermost so that refused calls (authentication) are counted too.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTelemetryLayer;

impl<S> Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry { inner }
    }
}

/// The service [`GrpcTelemetryLayer`] wraps around the server.
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for GrpcTelemetry<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_owned();
        let method = path.trim_start_matches('/').to_owned();
        let (rpc_service, rpc_method) = method.split_once('/').unwrap_or((&method, ""));
        let span = if QUIET.iter().any(|q| path.starts_with(q)) {
            tracing::debug_span!("grpc.server", rpc.method = %method)
        } else {
            tracing::info_span!(
                "grpc.server",
                otel.name = %method,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %rpc_service,
                rpc.method = %rpc_method,
                rpc.grpc.status_code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            )
        };
        crate::trace_context::continue_from(&span, request.headers());
        let started = Instant::now();
        let future = inner.call(request);
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0),
                    Err(_) => 2,
                };
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code);
                if code != 0 {
                    span.record("otel.status_code", "ERROR");
                }
                metrics::counter!(
                    GRPC_REQUESTS_TOTAL,
                    "method" => method.clone(),
                    "code" => code_name(code),
                )
                .increment(1);
                metrics::histogram!(GRPC_REQUEST_DURATION, "method" => method)
                    .record(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

/// The canonical name of a gRPC status code, as Prometheus dashboards expect it.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}
