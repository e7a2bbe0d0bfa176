//! JSON log lines: one object per event with the event's fields and its spans' fields at the
//! top level, so a log query for `run_id` or `trace_id` finds every line of a run. Span
//! attributes in the `backflow.` namespace lose the prefix (`backflow.run_id` → `run_id`);
//! `trace_id` comes from the span's trace when it has one.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OtelData;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `--log-format json`.
pub(crate) struct JsonLines;

/// Collects an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
}

impl Fields<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        self.0.insert(log_key(field.name()).to_owned(), value);
    }
}

/// The key a span or event field gets in a log line.
fn log_key(name: &str) -> &str {
    name.strip_prefix("backflow.").unwrap_or(name)
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_owned()));
        let mut trace_id = None;
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() {
                    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields) {
                        for (key, value) in map {
                            line.insert(log_key(&key).to_owned(), value);
                        }
                    }
                }
                if let Some(id) = extensions.get::<OtelData>().and_then(OtelData::trace_id) {
                    trace_id = Some(id.to_string());
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), Value::String(name.to_owned()));
            }
        }
        event.record(&mut Fields(&mut line));
        let has_trace_id = line
            .get("trace_id")
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        if let (false, Some(id)) = (has_trace_id, trace_id) {
            line.insert("trace_id".into(), Value::String(id));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}
