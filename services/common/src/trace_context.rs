//! W3C trace context (`traceparent`) across process boundaries: read from and written to gRPC
//! metadata, stored as a string on a run, and turned back into the parent of a span.
//!
//! Nothing here needs a tracer to be installed. When tracing is off, spans carry no
//! OpenTelemetry context and these functions inject and return nothing.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (gRPC metadata key) of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct OneValue<'a>(&'a str);

impl Extractor for OneValue<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// Writes the current span's trace context into outgoing gRPC metadata, so the server's spans
/// join this trace. Does nothing when the current span is not traced.
pub fn inject_current(metadata: &mut MetadataMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(metadata));
    }
}

/// The trace context a caller sent in its request headers (an empty context when none or a
/// malformed one was sent).
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The context a stored `traceparent` names, to parent the spans that continue its trace; an
/// empty context for an empty or malformed value.
pub fn from_traceparent(traceparent: &str) -> Context {
    if traceparent.is_empty() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&OneValue(traceparent))
}

/// The `traceparent` of the current span, to store with work that continues later (a queued
/// run); `None` when the current span is not traced.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The trace id inside a `traceparent` (`00-<trace id>-<span id>-<flags>`), for log lines
/// and for showing a run's trace; `None` when malformed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then_some(id)
}

/// Makes `span` a child of the caller's span when the request headers carry a trace context.
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = extract(headers);
    if cx.span().span_context().is_valid() {
        // Fails only if the span was already started, which a caller just created it cannot be.
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` a child of the span a stored `traceparent` names. A missing or malformed value
/// leaves `span` where it is (a new trace, or a child of the current span).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let cx = from_traceparent(traceparent);
    if cx.span().span_context().is_valid() {
        // Fails only if the span was already started, which a caller just created it cannot be.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_through_a_context() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = from_traceparent(tp);
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace_id_of(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!from_traceparent("garbage").span().span_context().is_valid());
        assert!(!from_traceparent("").span().span_context().is_valid());
        assert_eq!(trace_id_of("garbage"), None);
    }

    #[test]
    fn headers_carry_the_context() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = extract(&headers);
        assert_eq!(
            cx.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
        assert!(!extract(&http::HeaderMap::new())
            .span()
            .span_context()
            .is_valid());
    }
}
