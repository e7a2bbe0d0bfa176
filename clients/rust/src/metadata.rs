//! What every request carries besides its message: the bearer token, and the caller's W3C
//! trace context so the control plane stores it on the runs it queues and the worker's spans
//! join the caller's trace.

use std::fmt;
use std::sync::Arc;

use opentelemetry::propagation::Injector;
use opentelemetry::Context;
use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Where the trace context of an outgoing call comes from.
pub(crate) type ContextSource = Arc<dyn Fn() -> Context + Send + Sync>;

/// Adds `authorization: Bearer …` and the propagator's headers (`traceparent`, `tracestate`,
/// `baggage`, whatever the global text-map propagator writes) to every request.
///
/// The interceptor runs inside the caller's future, so `Context::current()` is the caller's
/// context. Public only because it names the client's stub types ([`crate::Service`]).
#[derive(Clone)]
pub struct RequestMetadata {
    authorization: Option<MetadataValue<Ascii>>,
    context: ContextSource,
}

impl fmt::Debug for RequestMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of debug output.
        f.debug_struct("RequestMetadata")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "Bearer ***"),
            )
            .finish_non_exhaustive()
    }
}

impl RequestMetadata {
    pub(crate) fn new(authorization: Option<MetadataValue<Ascii>>, context: ContextSource) -> Self {
        Self {
            authorization,
            context,
        }
    }
}

impl Interceptor for RequestMetadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        let context = (self.context)();
        inject(&context, request.metadata_mut());
        Ok(request)
    }
}

/// Writes `context` into `metadata` with the global text-map propagator (a no-op until the
/// application installs one, e.g. the SDK's `TraceContextPropagator`).
pub(crate) fn inject(context: &Context, metadata: &mut MetadataMap) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(context, &mut MetadataInjector(metadata));
    });
}

/// The propagator's view of gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A propagator only writes lowercase ASCII keys and header-safe values; anything else
        // is dropped rather than failing the call.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};

    use super::*;

    /// Writes one fixed header, so this test does not depend on the SDK.
    #[derive(Debug)]
    struct Fixed;

    impl TextMapPropagator for Fixed {
        fn inject_context(&self, _cx: &Context, injector: &mut dyn Injector) {
            injector.set(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            );
            injector.set("bad key", "dropped".into());
        }

        fn extract_with_context(&self, cx: &Context, _extractor: &dyn Extractor) -> Context {
            cx.clone()
        }

        fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
            opentelemetry::propagation::text_map_propagator::FieldIter::new(&[])
        }
    }

    #[test]
    fn the_token_is_sent_and_hidden_from_debug_output() {
        let value = MetadataValue::try_from("Bearer s3cret").unwrap();
        let mut metadata = RequestMetadata::new(Some(value), Arc::new(Context::current));
        let request = metadata.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        assert!(!format!("{metadata:?}").contains("s3cret"));
    }

    #[test]
    fn the_injector_writes_valid_keys_only() {
        let mut metadata = MetadataMap::new();
        Fixed.inject_context(&Context::new(), &mut MetadataInjector(&mut metadata));
        assert_eq!(
            metadata.get("traceparent").unwrap(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(metadata.len(), 1);
    }
}
