//! Logs and traces of every Backflow process, set up once at start.
//!
//! Logs go to stderr, readable text by default or one JSON object per line (`--log-format
//! json`, for log shippers); `RUST_LOG` picks the levels. Traces are exported over OTLP/gRPC
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and are
//! off otherwise. The other standard variables apply as the OpenTelemetry SDK reads them:
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SDK_DISABLED`.
//!
//! Spans are exported by a batch processor on its own thread with a bounded queue: a slow or
//! absent collector delays nothing and fails nothing, spans beyond the queue are dropped.
//! Only Backflow's own spans at `info` and above are exported (libraries' spans stay out), so
//! a trace shows the run, not the connection pool.

pub mod grpc;
mod json;

use std::str::FromStr;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Longest time spent flushing spans at exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line with the fields of the event and of its spans (`run_id`,
    /// `trace_id`, …) at the top level, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::InvalidLogFormat(other.to_owned())),
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-format` / `BACKFLOW__LOG_FORMAT` is neither `text` nor `json`.
    #[error("log format `{0}` is not supported: use `text` or `json`")]
    InvalidLogFormat(String),
    /// The OTLP exporter could not be built (a malformed endpoint, typically).
    #[error("cannot export traces to the OTLP endpoint: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("logging was already set up: {0}")]
    AlreadyInitialised(String),
}

/// What to set up.
#[derive(Debug, Clone)]
pub struct TelemetryOptions {
    /// `service.name` when `OTEL_SERVICE_NAME` does not say, e.g. `backflow-worker`.
    pub service_name: &'static str,
    /// Text or JSON logs.
    pub log_format: LogFormat,
    /// Log level when `RUST_LOG` is not set.
    pub default_level: &'static str,
}

/// Handle to the trace pipeline; [`Telemetry::shutdown`] flushes spans still queued.
#[derive(Debug)]
#[must_use = "spans still queued are lost unless `shutdown` is called before exit"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint is configured).
    pub fn tracing_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes queued spans, waiting at most a few seconds: an unreachable collector delays
    /// the exit by that much, never more. Blocking; call it off the async runtime's threads
    /// or at the very end.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}

/// The OTLP endpoint from the standard variables, if traces should be exported.
fn otlp_endpoint() -> Option<String> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim() == "true");
    if disabled {
        return None;
    }
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

/// Builds the tracer provider exporting over OTLP/gRPC. Must run inside a Tokio runtime: the
/// exporter's channel lives on it.
fn tracer_provider(service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Backflow's own spans at `info` and above, and its warnings and errors (as span events).
fn exported(meta: &Metadata<'_>) -> bool {
    let limit = if meta.is_span() {
        Level::INFO
    } else {
        Level::WARN
    };
    meta.target().starts_with("backflow") && *meta.level() <= limit
}

/// Installs the global subscriber: logs to stderr and, when an OTLP endpoint is configured,
/// traces. Call once, inside the Tokio runtime.
pub fn init(options: &TelemetryOptions) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| options.default_level.into());
    let logs = match options.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .with_filter(filter)
            .boxed(),
    };
    let provider = otlp_endpoint()
        .map(|_| tracer_provider(options.service_name))
        .transpose()?;
    let traces = provider.as_ref().map(|provider| {
        // Spans made directly with the OpenTelemetry API (a run's time in the queue) use the
        // same pipeline.
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("backflow"))
            .with_filter(filter_fn(exported))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))?;
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_bad_ones_are_named() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(" Text ".parse::<LogFormat>().unwrap(), LogFormat::Text);
        let e = "xml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(e.contains("`xml`"), "{e}");
    }
}
