//! How the client verbs print: aligned tables and key/value blocks for people, JSON documents
//! (`--output json`) for scripts. The JSON uses the proto field names (snake_case), full
//! resource names, lowercase enum values (`succeeded`, `upsert`), RFC 3339 timestamps and
//! durations in seconds.

use backflow_proto::json::struct_to_json;
use backflow_proto::v1;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

/// How a read verb prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// The `--output` option of every read verb.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Print a table (default) or one JSON document.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

impl OutputArgs {
    /// Prints `value` as pretty JSON, or `table()` as text.
    pub fn print(&self, value: impl FnOnce() -> Value, table: impl FnOnce() -> String) {
        match self.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&value()).unwrap_or_default()
            ),
            Format::Table => {
                let text = table();
                if text.ends_with('\n') {
                    print!("{text}");
                } else {
                    println!("{text}");
                }
            }
        }
    }
}

/// A table with a header row, columns separated by two spaces, no trailing blanks.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, cells: I) {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - width(cell)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Aligned `key: value` lines; multi-line values are indented under their key.
pub fn details(pairs: &[(&str, String)]) -> String {
    let key_width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in pairs {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        let line = format!("{:<key_width$} {first}", format!("{key}:"));
        out.push_str(line.trim_end());
        out.push('\n');
        for more in lines {
            out.push_str(&" ".repeat(key_width + 1));
            out.push_str(more);
            out.push('\n');
        }
    }
    out
}

/// The id part of a resource name: `customer_scores` for `syncs/customer_scores`.
pub fn id(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(_, id)| id)
}

/// `2025-11-25 19:40:01` (UTC), or `-` when unset.
pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// RFC 3339 with a `Z`, or null when unset.
fn time_json(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
}

/// Seconds as a float.
pub fn seconds(d: &prost_types::Duration) -> f64 {
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

/// `850ms`, `3.2s`, `4m05s`, `2h10m`.
pub fn duration(d: &prost_types::Duration) -> String {
    let s = seconds(d);
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round())
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let total = s.round() as u64;
        if total < 3600 {
            format!("{}m{:02}s", total / 60, total % 60)
        } else {
            format!("{}h{:02}m", total / 3600, (total % 3600) / 60)
        }
    }
}

/// An interval as the definition file writes it: `15m`, `2h`, `1d`, `90s`.
pub fn interval(d: &prost_types::Duration) -> String {
    if d.nanos != 0 || d.seconds <= 0 {
        return format!("{}s", seconds(d));
    }
    let s = d.seconds;
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
pub fn run_state(state: v1::RunState) -> &'static str {
    match state {
        v1::RunState::Unspecified => "unspecified",
        v1::RunState::Queued => "queued",
        v1::RunState::Running => "running",
        v1::RunState::Succeeded => "succeeded",
        v1::RunState::Failed => "failed",
        v1::RunState::Cancelled => "cancelled",
    }
}

/// `manual`, `schedule`, `after_sync`.
pub fn run_trigger(trigger: v1::RunTrigger) -> &'static str {
    match trigger {
        v1::RunTrigger::Unspecified => "unspecified",
        v1::RunTrigger::Manual => "manual",
        v1::RunTrigger::Schedule => "schedule",
        v1::RunTrigger::AfterSync => "after_sync",
    }
}

/// `upsert`, `insert`, `update`, `mirror`, as in the definition file.
pub fn sync_mode(mode: v1::SyncMode) -> &'static str {
    match mode {
        v1::SyncMode::Unspecified => "unspecified",
        v1::SyncMode::Upsert => "upsert",
        v1::SyncMode::Insert => "insert",
        v1::SyncMode::Update => "update",
        v1::SyncMode::Mirror => "mirror",
    }
}

/// `every 15m`, `cron 0 * * * *`, `after scores`, or `manual` when unset.
pub fn schedule(schedule: Option<&v1::Schedule>) -> String {
    match schedule.and_then(|s| s.kind.as_ref()) {
        None => "manual".to_owned(),
        Some(v1::schedule::Kind::Every(d)) => format!("every {}", interval(d)),
        Some(v1::schedule::Kind::Cron(c)) => format!("cron {c}"),
        Some(v1::schedule::Kind::AfterSync(s)) => format!("after {}", id(s)),
    }
}

fn schedule_json(schedule: Option<&v1::Schedule>) -> Value {
    match schedule.and_then(|s| s.kind.as_ref()) {
        None => Value::Null,
        Some(v1::schedule::Kind::Every(d)) => json!({ "every": interval(d) }),
        Some(v1::schedule::Kind::Cron(c)) => json!({ "cron": c }),
        Some(v1::schedule::Kind::AfterSync(s)) => json!({ "after_sync": s }),
    }
}

fn options_json(o: Option<&v1::SyncOptions>) -> Value {
    let o = o.cloned().unwrap_or_default();
    json!({
        "allow_empty_source": o.allow_empty_source,
        "max_delete_fraction": o.max_delete_fraction,
        "max_rejected_rows": o.max_rejected_rows,
        "batch_size": o.batch_size,
        "max_attempts": o.max_attempts,
    })
}

/// A sync as JSON.
pub fn sync_json(s: &v1::Sync) -> Value {
    let source = s.source.clone().unwrap_or_default();
    let destination = s.destination.clone().unwrap_or_default();
    json!({
        "name": s.name,
        "source": { "connection": source.connection, "query": source.query },
        "primary_key": s.primary_key,
        "destination": {
            "connection": destination.connection,
            "object": destination.object,
            "mode": sync_mode(destination.mode()),
            "create_table": destination.create_table,
            "shared": destination.shared,
        },
        "mappings": s.mappings.iter().map(|m| json!({ "from": m.from, "to": m.to })).collect::<Vec<_>>(),
        "schedule": schedule_json(s.schedule.as_ref()),
        "options": options_json(s.options.as_ref()),
        "paused": s.paused,
        "create_time": time_json(s.create_time.as_ref()),
        "update_time": time_json(s.update_time.as_ref()),
        "last_run": if s.last_run.is_empty() { Value::Null } else { Value::String(s.last_run.clone()) },
    })
}

/// The table of `syncs list`.
pub fn syncs_table(syncs: &[v1::Sync]) -> String {
    let mut table = Table::new([
        "NAME",
        "SOURCE",
        "DESTINATION",
        "OBJECT",
        "MODE",
        "SCHEDULE",
        "STATE",
        "LAST RUN",
    ]);
    for s in syncs {
        let source = s.source.clone().unwrap_or_default();
        let destination = s.destination.clone().unwrap_or_default();
        table.row([
            id(&s.name).to_owned(),
            id(&source.connection).to_owned(),
            id(&destination.connection).to_owned(),
            destination.object.clone(),
            sync_mode(destination.mode()).to_owned(),
            schedule(s.schedule.as_ref()),
            if s.paused { "paused" } else { "active" }.to_owned(),
            if s.last_run.is_empty() {
                "-".to_owned()
            } else {
                id(&s.last_run).to_owned()
            },
        ]);
    }
    table.render()
}

/// The block of `syncs get`.
pub fn sync_details(s: &v1::Sync) -> String {
    let source = s.source.clone().unwrap_or_default();
    let destination = s.destination.clone().unwrap_or_default();
    let options = s.options.unwrap_or_default();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "default".to_owned());
    let mappings = if s.mappings.is_empty() {
        "-".to_owned()
    } else {
        s.mappings
            .iter()
            .map(|m| format!("{} -> {}", m.from, m.to))
            .collect::<Vec<_>>()
            .join("\n")
    };
    details(&[
        ("name", s.name.clone()),
        (
            "state",
            if s.paused { "paused" } else { "active" }.to_owned(),
        ),
        ("source", id(&source.connection).to_owned()),
        ("query", source.query.clone()),
        ("primary key", s.primary_key.join(", ")),
        ("destination", id(&destination.connection).to_owned()),
        ("object", destination.object.clone()),
        ("mode", sync_mode(destination.mode()).to_owned()),
        ("create table", destination.create_table.to_string()),
        ("shared", destination.shared.to_string()),
        ("mappings", mappings),
        ("schedule", schedule(s.schedule.as_ref())),
        (
            "allow empty source",
            opt(options.allow_empty_source.map(|v| v.to_string())),
        ),
        (
            "max delete fraction",
            opt(options.max_delete_fraction.map(|v| v.to_string())),
        ),
        (
            "max rejected rows",
            opt(options.max_rejected_rows.map(|v| v.to_string())),
        ),
        ("batch size", opt(options.batch_size.map(|v| v.to_string()))),
        (
            "max attempts",
            opt(options.max_attempts.map(|v| v.to_string())),
        ),
        (
            "last run",
            if s.last_run.is_empty() {
                "-".to_owned()
            } else {
                s.last_run.clone()
            },
        ),
        ("created", time(s.create_time.as_ref())),
        ("updated", time(s.update_time.as_ref())),
    ])
}

fn counts_json(c: Option<&v1::RunCounts>) -> Value {
    let c = c.copied().unwrap_or_default();
    json!({
        "read": c.read, "added": c.added, "changed": c.changed, "unchanged": c.unchanged,
        "removed": c.removed, "written": c.written, "deleted": c.deleted, "failed": c.failed,
        "skipped": c.skipped,
    })
}

/// A run as JSON.
pub fn run_json(r: &v1::Run) -> Value {
    let timings = r.timings.as_ref().map_or(Value::Null, |t| {
        let s = |d: Option<&prost_types::Duration>| d.map_or(Value::Null, |d| json!(seconds(d)));
        json!({
            "source_read": s(t.source_read.as_ref()),
            "diff": s(t.diff.as_ref()),
            "destination_write": s(t.destination_write.as_ref()),
            "snapshot_write": s(t.snapshot_write.as_ref()),
            "total": s(t.total.as_ref()),
        })
    });
    let error = r.error.as_ref().map_or(
        Value::Null,
        |e| json!({ "code": e.code, "message": e.message, "retryable": e.retryable }),
    );
    json!({
        "name": r.name,
        "sync": r.sync,
        "state": run_state(r.state()),
        "trigger": run_trigger(r.trigger()),
        "attempt": r.attempt,
        "max_attempts": r.max_attempts,
        "full_resync": r.full_resync,
        "counts": counts_json(r.counts.as_ref()),
        "timings": timings,
        "error": error,
        "cancel_requested": r.cancel_requested,
        "rejected_rows": r.rejected_rows,
        "create_time": time_json(r.create_time.as_ref()),
        "start_time": time_json(r.start_time.as_ref()),
        "end_time": time_json(r.end_time.as_ref()),
        "not_before": time_json(r.not_before.as_ref()),
        "trace_id": if r.trace_id.is_empty() { Value::Null } else { Value::String(r.trace_id.clone()) },
    })
}

/// How long a finished run took: its total timing, else end − start; `-` when unknown.
pub fn run_elapsed(r: &v1::Run) -> String {
    if let Some(total) = r.timings.as_ref().and_then(|t| t.total.as_ref()) {
        return duration(total);
    }
    match (&r.start_time, &r.end_time) {
        (Some(start), Some(end)) => {
            let mut seconds = end.seconds - start.seconds;
            let mut nanos = end.nanos - start.nanos;
            if nanos < 0 {
                seconds -= 1;
                nanos += 1_000_000_000;
            }
            duration(&prost_types::Duration { seconds, nanos })
        }
        _ => "-".to_owned(),
    }
}

/// The table of `runs list`.
pub fn runs_table(runs: &[v1::Run]) -> String {
    let mut table = Table::new([
        "RUN", "SYNC", "STATE", "TRIGGER", "ATTEMPT", "READ", "WRITTEN", "DELETED", "FAILED",
        "CREATED", "TOOK",
    ]);
    for r in runs {
        let c = r.counts.unwrap_or_default();
        table.row([
            id(&r.name).to_owned(),
            id(&r.sync).to_owned(),
            run_state(r.state()).to_owned(),
            run_trigger(r.trigger()).to_owned(),
            format!("{}/{}", r.attempt, r.max_attempts),
            c.read.to_string(),
            c.written.to_string(),
            c.deleted.to_string(),
            c.failed.to_string(),
            time(r.create_time.as_ref()),
            run_elapsed(r),
        ]);
    }
    table.render()
}

/// One line of counts: `read 10, added 3, …`.
pub fn counts_line(c: &v1::RunCounts) -> String {
    format!(
        "read {}, added {}, changed {}, unchanged {}, removed {}, written {}, deleted {}, failed {}, skipped {}",
        c.read, c.added, c.changed, c.unchanged, c.removed, c.written, c.deleted, c.failed, c.skipped
    )
}

/// The block of `runs get`.
pub fn run_details(r: &v1::Run) -> String {
    let c = r.counts.unwrap_or_default();
    let mut pairs = vec![
        ("name", r.name.clone()),
        ("sync", id(&r.sync).to_owned()),
        ("state", run_state(r.state()).to_owned()),
        ("trigger", run_trigger(r.trigger()).to_owned()),
        ("attempt", format!("{} of {}", r.attempt, r.max_attempts)),
        ("full resync", r.full_resync.to_string()),
        ("counts", counts_line(&c)),
        ("rejected rows", r.rejected_rows.to_string()),
    ];
    if let Some(t) = &r.timings {
        let d = |d: Option<&prost_types::Duration>| d.map_or_else(|| "-".to_owned(), duration);
        pairs.push((
            "timings",
            format!(
                "total {}, source read {}, diff {}, destination write {}, snapshot write {}",
                d(t.total.as_ref()),
                d(t.source_read.as_ref()),
                d(t.diff.as_ref()),
                d(t.destination_write.as_ref()),
                d(t.snapshot_write.as_ref()),
            ),
        ));
    }
    if let Some(e) = &r.error {
        let retry = if e.retryable { " (retryable)" } else { "" };
        pairs.push(("error", format!("{}: {}{retry}", e.code, e.message)));
    }
    if r.cancel_requested {
        pairs.push(("cancel requested", "true".to_owned()));
    }
    pairs.extend([
        ("created", time(r.create_time.as_ref())),
        ("started", time(r.start_time.as_ref())),
        ("ended", time(r.end_time.as_ref())),
    ]);
    if r.state() == v1::RunState::Queued && r.not_before.is_some() {
        pairs.push(("not before", time(r.not_before.as_ref())));
    }
    if !r.trace_id.is_empty() {
        pairs.push(("trace id", r.trace_id.clone()));
    }
    details(&pairs)
}

/// A rejected row as JSON.
pub fn rejected_json(row: &v1::RejectedRow) -> Value {
    json!({ "key": row.key, "column": row.column, "message": row.message, "operation": row.operation })
}

/// The table of `rejected`.
pub fn rejected_table(rows: &[v1::RejectedRow]) -> String {
    let mut table = Table::new(["KEY", "OPERATION", "COLUMN", "MESSAGE"]);
    for row in rows {
        table.row([
            row.key.clone(),
            row.operation.clone(),
            if row.column.is_empty() {
                "-".to_owned()
            } else {
                row.column.clone()
            },
            row.message.clone(),
        ]);
    }
    table.render()
}

/// A connection's config as it may be printed: secret references as written, literal secrets
/// (a password inside a URL, a literal `password`) as `***`. The server masks them already;
/// masking again here keeps them off the terminal even with a server that does not.
fn shown_config(c: &v1::Connection) -> Value {
    c.config.as_ref().map_or_else(
        || json!({}),
        |config| backflow_connector_core::secret::redact_config(&struct_to_json(config)),
    )
}

/// A connection as JSON; the config holds secret references, never values.
pub fn connection_json(c: &v1::Connection) -> Value {
    json!({
        "name": c.name,
        "type": c.r#type,
        "config": shown_config(c),
        "create_time": time_json(c.create_time.as_ref()),
        "update_time": time_json(c.update_time.as_ref()),
    })
}

/// The table of `connections list`.
pub fn connections_table(connections: &[v1::Connection]) -> String {
    let mut table = Table::new(["NAME", "TYPE", "CREATED", "UPDATED"]);
    for c in connections {
        table.row([
            id(&c.name).to_owned(),
            c.r#type.clone(),
            time(c.create_time.as_ref()),
            time(c.update_time.as_ref()),
        ]);
    }
    table.render()
}

/// The block of `connections get`.
pub fn connection_details(c: &v1::Connection) -> String {
    let config = shown_config(c);
    details(&[
        ("name", c.name.clone()),
        ("type", c.r#type.clone()),
        (
            "config",
            serde_json::to_string_pretty(&config).unwrap_or_default(),
        ),
        ("created", time(c.create_time.as_ref())),
        ("updated", time(c.update_time.as_ref())),
    ])
}

/// A plan as JSON.
pub fn plan_json(sync: &str, p: &v1::PlanSyncResponse) -> Value {
    json!({
        "sync": sync,
        "read": p.read, "added": p.added, "changed": p.changed, "unchanged": p.unchanged,
        "removed": p.removed,
        "sample_added": p.sample_added,
        "sample_changed": p.sample_changed,
        "sample_removed": p.sample_removed,
    })
}

/// The text of `plan`: counts, then the sampled keys of each kind of change.
pub fn plan_text(p: &v1::PlanSyncResponse) -> String {
    let mut table = Table::new(["READ", "ADDED", "CHANGED", "UNCHANGED", "REMOVED"]);
    table.row([p.read, p.added, p.changed, p.unchanged, p.removed].map(|n| n.to_string()));
    let mut out = table.render();
    for (kind, total, sample) in [
        ("added", p.added, &p.sample_added),
        ("changed", p.changed, &p.sample_changed),
        ("removed", p.removed, &p.sample_removed),
    ] {
        if sample.is_empty() {
            continue;
        }
        let shown = sample.len() as u64;
        let more = if total > shown {
            format!(" (first {shown} of {total})")
        } else {
            String::new()
        };
        out.push_str(&format!("\n{kind}{more}:\n"));
        for key in sample {
            out.push_str(&format!("  {key}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_blanks() {
        let mut t = Table::new(["NAME", "STATE", "LAST RUN"]);
        t.row(["customer_scores", "active", ""]);
        t.row(["a", "paused", "0193"]);
        assert_eq!(
            t.render(),
            "NAME             STATE   LAST RUN\n\
             customer_scores  active\n\
             a                paused  0193\n"
        );
        let empty = Table::new(["NAME", "TYPE"]);
        assert_eq!(empty.render(), "NAME  TYPE\n");
    }

    #[test]
    fn details_align_keys_and_indent_continuations() {
        let text = details(&[
            ("name", "syncs/a".to_owned()),
            ("mappings", "x -> y\nz -> w".to_owned()),
            ("empty", String::new()),
        ]);
        assert_eq!(
            text,
            "name:     syncs/a\nmappings: x -> y\n          z -> w\nempty:\n"
        );
    }

    #[test]
    fn intervals_and_durations_read_like_the_definition_file() {
        let d = |seconds| prost_types::Duration { seconds, nanos: 0 };
        assert_eq!(interval(&d(900)), "15m");
        assert_eq!(interval(&d(7200)), "2h");
        assert_eq!(interval(&d(86_400)), "1d");
        assert_eq!(interval(&d(90)), "90s");
        assert_eq!(
            duration(&prost_types::Duration {
                seconds: 3,
                nanos: 250_000_000
            }),
            "3.2s"
        );
        assert_eq!(duration(&d(245)), "4m05s");
        assert_eq!(
            duration(&prost_types::Duration {
                seconds: 0,
                nanos: 5_000_000
            }),
            "5ms"
        );
    }

    fn sample_run() -> v1::Run {
        v1::Run {
            name: "runs/0193a0b2-0000-7000-8000-000000000001".into(),
            sync: "syncs/customer_scores".into(),
            state: v1::RunState::Failed as i32,
            trigger: v1::RunTrigger::Manual as i32,
            attempt: 3,
            max_attempts: 3,
            counts: Some(v1::RunCounts {
                read: 10,
                written: 4,
                failed: 1,
                ..Default::default()
            }),
            error: Some(v1::RunError {
                code: "source_error".into(),
                message: "table scores does not exist".into(),
                retryable: false,
            }),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_764_099_601,
                nanos: 0,
            }),
            start_time: Some(prost_types::Timestamp {
                seconds: 1_764_099_602,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: 1_764_099_604,
                nanos: 500_000_000,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn runs_render_as_a_table_and_as_json() {
        let run = sample_run();
        assert_eq!(
            runs_table(std::slice::from_ref(&run)),
            "RUN                                   SYNC             STATE   TRIGGER  ATTEMPT  READ  WRITTEN  DELETED  FAILED  CREATED              TOOK\n\
             0193a0b2-0000-7000-8000-000000000001  customer_scores  failed  manual   3/3      10    4        0        1       2025-11-25 19:40:01  2.5s\n"
        );
        let json = run_json(&run);
        assert_eq!(json["state"], "failed");
        assert_eq!(json["counts"]["read"], 10);
        assert_eq!(json["error"]["code"], "source_error");
        assert_eq!(json["create_time"], "2025-11-25T19:40:01Z");
        assert_eq!(json["timings"], Value::Null);
        let text = run_details(&run);
        assert!(
            text.contains("error:         source_error: table scores does not exist\n"),
            "{text}"
        );
    }

    #[test]
    fn syncs_render_ids_not_resource_names() {
        let sync = v1::Sync {
            name: "syncs/totals".into(),
            source: Some(v1::SyncSource {
                connection: "connections/warehouse".into(),
                query: "SELECT 1".into(),
            }),
            destination: Some(v1::SyncDestination {
                connection: "connections/app_db".into(),
                object: "public.totals".into(),
                mode: v1::SyncMode::Mirror as i32,
                create_table: false,
                shared: false,
            }),
            schedule: Some(v1::Schedule {
                kind: Some(v1::schedule::Kind::AfterSync("syncs/scores".into())),
            }),
            paused: true,
            ..Default::default()
        };
        assert_eq!(
            syncs_table(std::slice::from_ref(&sync)),
            "NAME    SOURCE     DESTINATION  OBJECT         MODE    SCHEDULE      STATE   LAST RUN\n\
             totals  warehouse  app_db       public.totals  mirror  after scores  paused  -\n"
        );
        let json = sync_json(&sync);
        assert_eq!(json["schedule"]["after_sync"], "syncs/scores");
        assert_eq!(json["destination"]["mode"], "mirror");
        assert_eq!(json["last_run"], Value::Null);
    }

    #[test]
    fn connections_print_without_literal_secrets() {
        // As an older server would send it: the password in the URL, unmasked.
        let c = v1::Connection {
            name: "connections/app_db".into(),
            r#type: "postgres".into(),
            config: Some(backflow_proto::json::struct_from_json(&json!({
                "url": "postgres://app:hunter2@db:5432/app",
                "password": "${env:APP_DB_PASSWORD}",
            }))),
            ..Default::default()
        };
        let json = connection_json(&c);
        assert_eq!(json["config"]["url"], "postgres://app:***@db:5432/app");
        assert_eq!(json["config"]["password"], "${env:APP_DB_PASSWORD}");
        let text = connection_details(&c);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("postgres://app:***@db:5432/app"), "{text}");
    }

    #[test]
    fn plans_show_counts_and_samples() {
        let plan = v1::PlanSyncResponse {
            read: 3,
            added: 2,
            unchanged: 1,
            sample_added: vec!["id=1".into()],
            ..Default::default()
        };
        assert_eq!(
            plan_text(&plan),
            "READ  ADDED  CHANGED  UNCHANGED  REMOVED\n\
             3     2      0        1          0\n\
             \nadded (first 1 of 2):\n  id=1\n"
        );
    }
}
