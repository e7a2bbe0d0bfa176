//! Wire (`backflow.v1`) ↔ record conversions, and the validation of what clients send, which
//! collects every wrong field so a client fixes its definition in one round trip.
//! Conversions of engine types the worker also needs (counts, timings, rejected rows, modes,
//! options, durations) are shared from [`backflow_common::convert`].

use std::collections::HashSet;
use std::time::Duration;

use backflow_common::convert::run::{counts_to_proto, timings_to_proto};
use backflow_common::convert::sync::{
    mapping_from_proto, mapping_to_proto, sync_mode_from_proto, sync_mode_to_proto,
    sync_options_from_proto, sync_options_to_proto,
};
use backflow_common::convert::time::{duration_from_proto, duration_to_proto};
use backflow_common::trace_context::trace_id_of;
use backflow_connector_core::secret::{holds_mask, redact_config, MASK};
use backflow_connector_core::{quoted, validate_config};
use backflow_engine::SyncMode;

use backflow_proto::json::{struct_from_json, struct_to_json};
use backflow_proto::v1;

use crate::error::{ApiError, FieldViolation};
use crate::model::{
    ConnectionRecord, Millis, RunError, RunRecord, RunState, RunTrigger, Schedule, SnapshotPointer,
    SyncDefinition, SyncRecord, DEFAULT_MAX_ATTEMPTS,
};

/// Resource collection prefixes.
pub const CONNECTIONS: &str = "connections";
/// Resource collection prefix of syncs.
pub const SYNCS: &str = "syncs";
/// Resource collection prefix of runs.
pub const RUNS: &str = "runs";

/// Whether `id` is a valid resource id: 1–63 letters, digits, `_` or `-`, starting with a
/// letter or digit, so it is safe in URLs, file names and log lines.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The id of `collection/{id}`, also accepting a bare id.
pub fn parse_name(collection: &str, field: &str, name: &str) -> Result<String, ApiError> {
    let id = match name.split_once('/') {
        Some((prefix, id)) if prefix == collection => id,
        Some(_) => {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{} is not a `{collection}/{{id}}` resource name",
                    quoted(name)
                ),
            ))
        }
        None => name,
    };
    if id.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if collection != RUNS && !valid_id(id) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} is not a valid id (1–63 letters, digits, `_` or `-`)",
                quoted(id)
            ),
        ));
    }
    Ok(id.to_owned())
}

/// `collection/{id}`.
pub fn name(collection: &str, id: &str) -> String {
    format!("{collection}/{id}")
}

/// Milliseconds → protobuf timestamp.
pub fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// Validates a connection from a client: the type must be a connector of this build and the
/// config must pass that connector's pure validation (no I/O, secrets stay references).
pub fn connection_from_proto(
    id: String,
    c: &v1::Connection,
    now: Millis,
) -> Result<ConnectionRecord, ApiError> {
    let config = c
        .config
        .as_ref()
        .map(struct_to_json)
        .unwrap_or_else(|| serde_json::json!({}));
    let kind = c.r#type.trim().to_owned();
    if kind.is_empty() {
        return Err(ApiError::invalid("connection.type", "is required"));
    }
    let Some(connector) = backflow_connectors::connector(&kind) else {
        let mut known: Vec<_> = backflow_connectors::connectors()
            .iter()
            .map(|c| c.type_name())
            .collect();
        known.sort_unstable();
        return Err(ApiError::invalid(
            "connection.type",
            format!(
                "{} is not a connector type of this build (supported: {})",
                quoted(&kind),
                known.join(", ")
            ),
        ));
    };
    // Pure: an unknown or mistyped field is refused here, before any network call.
    if let Err(e) = validate_config(connector, &config) {
        let field = match e.field() {
            Some("type") => "connection.type".to_owned(),
            Some(f) => format!("connection.config.{f}"),
            None => "connection.config".to_owned(),
        };
        return Err(ApiError::invalid(field, e.message().to_owned()));
    }
    if holds_mask(&config) {
        return Err(ApiError::invalid(
            "connection.config",
            format!(
                "holds the mask `{MASK}` where a password goes, as `connections get` shows \
                 stored secrets; write the password itself or a `${{env:NAME}}` / \
                 `${{file:PATH}}` reference (a masked config is taken back only unchanged, by \
                 UpdateConnection on the same connection)"
            ),
        ));
    }
    Ok(ConnectionRecord {
        id,
        kind,
        config,
        created_at: now,
        updated_at: now,
    })
}

/// A stored connection as API clients see it: literal secrets in the config (a password
/// written inside a URL, a literal `password` or `passphrase`) masked as `***`, references
/// kept as written.
pub fn connection_to_proto(c: &ConnectionRecord) -> v1::Connection {
    v1::Connection {
        config: Some(struct_from_json(&redact_config(&c.config))),
        ..connection_with_secrets_to_proto(c)
    }
}

/// A stored connection with its config exactly as stored, literal secrets included: only for
/// the worker that runs a sync (its lease), which must connect with them.
pub fn connection_with_secrets_to_proto(c: &ConnectionRecord) -> v1::Connection {
    v1::Connection {
        name: name(CONNECTIONS, &c.id),
        r#type: c.kind.clone(),
        config: Some(struct_from_json(&c.config)),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}

// ---------------------------------------------------------------------------------------
// Syncs

/// Parses a cron expression the way the scheduler evaluates it (5 fields, or 6 with
/// seconds; UTC).
pub fn parse_cron(expression: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

/// Validates a sync from a client, collecting every wrong field. Connection existence is
/// checked by the caller, which has the store.
pub fn sync_definition_from_proto(self_id: &str, s: &v1::Sync) -> Result<SyncDefinition, ApiError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, description: String| {
        errors.push(FieldViolation::new(field, description));
    };

    let source = s.source.clone().unwrap_or_default();
    let source_connection = parse_name(CONNECTIONS, "sync.source.connection", &source.connection)
        .unwrap_or_else(|e| {
            bad("sync.source.connection", field_message(&e));
            String::new()
        });
    if source.query.trim().is_empty() {
        bad("sync.source.query", "is required".into());
    } else if let Err(e) = backflow_connector_core::support::check_read_only(&source.query) {
        bad("sync.source.query", e.message().to_owned());
    }

    let destination = s.destination.clone().unwrap_or_default();
    let destination_connection = parse_name(
        CONNECTIONS,
        "sync.destination.connection",
        &destination.connection,
    )
    .unwrap_or_else(|e| {
        bad("sync.destination.connection", field_message(&e));
        String::new()
    });
    if destination.object.trim().is_empty() {
        bad("sync.destination.object", "is required".into());
    }
    let mode = sync_mode_from_proto(destination.mode).ok();
    if mode.is_none() {
        bad(
            "sync.destination.mode",
            "must be one of SYNC_MODE_UPSERT, SYNC_MODE_INSERT, SYNC_MODE_UPDATE, SYNC_MODE_MIRROR"
                .into(),
        );
    }

    if s.primary_key.is_empty() {
        bad("sync.primary_key", "must name at least one column".into());
    }
    let mut seen = HashSet::new();
    for (i, column) in s.primary_key.iter().enumerate() {
        if column.trim().is_empty() {
            bad(&format!("sync.primary_key[{i}]"), "is empty".into());
        } else if !seen.insert(column) {
            bad(
                &format!("sync.primary_key[{i}]"),
                format!("{} is listed twice", quoted(column)),
            );
        }
    }

    let mut froms = HashSet::new();
    let mut tos = HashSet::new();
    for (i, m) in s.mappings.iter().enumerate() {
        if m.from.trim().is_empty() {
            bad(&format!("sync.mappings[{i}].from"), "is required".into());
        } else if !froms.insert(&m.from) {
            bad(
                &format!("sync.mappings[{i}].from"),
                format!("{} is mapped twice", quoted(&m.from)),
            );
        }
        if m.to.trim().is_empty() {
            bad(&format!("sync.mappings[{i}].to"), "is required".into());
        } else if !tos.insert(&m.to) {
            bad(
                &format!("sync.mappings[{i}].to"),
                format!("{} is the target of two mappings", quoted(&m.to)),
            );
        }
    }

    let schedule = match s.schedule.as_ref().and_then(|s| s.kind.as_ref()) {
        None => None,
        Some(v1::schedule::Kind::Every(d)) => match duration_from_proto(d) {
            Some(d) if d >= Duration::from_secs(1) => Some(Schedule::Every {
                seconds: d.as_secs(),
            }),
            _ => {
                bad("sync.schedule.every", "must be at least one second".into());
                None
            }
        },
        Some(v1::schedule::Kind::Cron(expression)) => match parse_cron(expression) {
            Ok(_) => Some(Schedule::Cron {
                expression: expression.clone(),
            }),
            Err(e) => {
                bad(
                    "sync.schedule.cron",
                    format!("{} is not a cron expression: {e}", quoted(expression)),
                );
                None
            }
        },
        Some(v1::schedule::Kind::AfterSync(other)) => {
            match parse_name(SYNCS, "sync.schedule.after_sync", other) {
                Ok(id) if id == self_id => {
                    bad(
                        "sync.schedule.after_sync",
                        "a sync cannot run after itself".into(),
                    );
                    None
                }
                Ok(id) => Some(Schedule::AfterSync { sync: id }),
                Err(e) => {
                    bad("sync.schedule.after_sync", field_message(&e));
                    None
                }
            }
        }
    };

    let o = s.options.unwrap_or_default();
    let options = sync_options_from_proto(&o);
    let max_delete_fraction = options.max_delete_fraction;
    if !(0.0..=1.0).contains(&max_delete_fraction) {
        bad(
            "sync.options.max_delete_fraction",
            format!("{max_delete_fraction} is not between 0 and 1"),
        );
    }
    let batch_size = options.batch_size;
    if !(1..=1_000_000).contains(&batch_size) {
        bad(
            "sync.options.batch_size",
            format!("{batch_size} is not between 1 and 1000000"),
        );
    }
    let max_attempts = o.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=100).contains(&max_attempts) {
        bad(
            "sync.options.max_attempts",
            format!("{max_attempts} is not between 1 and 100"),
        );
    }

    if !errors.is_empty() {
        return Err(ApiError::InvalidArgument(errors));
    }
    Ok(SyncDefinition {
        source_connection,
        query: source.query,
        primary_key: s.primary_key.clone(),
        destination_connection,
        object: destination.object,
        mode: mode.unwrap_or(SyncMode::Upsert),
        create_table: destination.create_table,
        shared: destination.shared,
        mappings: s.mappings.iter().map(mapping_from_proto).collect(),
        schedule,
        options,
        max_attempts,
    })
}

fn field_message(e: &ApiError) -> String {
    match e {
        ApiError::InvalidArgument(v) => {
            v.first().map(|v| v.description.clone()).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

/// The wire form of a definition (no resource name or server fields).
pub fn sync_definition_to_proto(d: &SyncDefinition) -> v1::Sync {
    v1::Sync {
        source: Some(v1::SyncSource {
            connection: name(CONNECTIONS, &d.source_connection),
            query: d.query.clone(),
        }),
        primary_key: d.primary_key.clone(),
        destination: Some(v1::SyncDestination {
            connection: name(CONNECTIONS, &d.destination_connection),
            object: d.object.clone(),
            mode: sync_mode_to_proto(d.mode).into(),
            create_table: d.create_table,
            shared: d.shared,
        }),
        mappings: d.mappings.iter().map(mapping_to_proto).collect(),
        schedule: d.schedule.as_ref().map(|s| v1::Schedule {
            kind: Some(match s {
                Schedule::Every { seconds } => {
                    v1::schedule::Kind::Every(duration_to_proto(Duration::from_secs(*seconds)))
                }
                Schedule::Cron { expression } => v1::schedule::Kind::Cron(expression.clone()),
                Schedule::AfterSync { sync } => v1::schedule::Kind::AfterSync(name(SYNCS, sync)),
            }),
        }),
        options: Some(v1::SyncOptions {
            max_attempts: Some(d.max_attempts),
            ..sync_options_to_proto(&d.options)
        }),
        ..Default::default()
    }
}

/// A stored sync on the wire.
pub fn sync_to_proto(s: &SyncRecord) -> v1::Sync {
    v1::Sync {
        name: name(SYNCS, &s.id),
        paused: s.paused,
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
        last_run: s
            .last_run_id
            .as_ref()
            .map(|r| name(RUNS, r))
            .unwrap_or_default(),
        ..sync_definition_to_proto(&s.definition)
    }
}

// ---------------------------------------------------------------------------------------
// Runs

/// A run state on the wire.
pub fn state_to_proto(s: RunState) -> v1::RunState {
    match s {
        RunState::Queued => v1::RunState::Queued,
        RunState::Running => v1::RunState::Running,
        RunState::Succeeded => v1::RunState::Succeeded,
        RunState::Failed => v1::RunState::Failed,
        RunState::Cancelled => v1::RunState::Cancelled,
    }
}

/// A run-state filter from the wire; unspecified means any.
pub fn state_from_proto(s: i32) -> Result<Option<RunState>, ApiError> {
    Ok(match v1::RunState::try_from(s) {
        Ok(v1::RunState::Unspecified) => None,
        Ok(v1::RunState::Queued) => Some(RunState::Queued),
        Ok(v1::RunState::Running) => Some(RunState::Running),
        Ok(v1::RunState::Succeeded) => Some(RunState::Succeeded),
        Ok(v1::RunState::Failed) => Some(RunState::Failed),
        Ok(v1::RunState::Cancelled) => Some(RunState::Cancelled),
        Err(_) => return Err(ApiError::invalid("state", format!("{s} is not a RunState"))),
    })
}

fn trigger_to_proto(t: RunTrigger) -> v1::RunTrigger {
    match t {
        RunTrigger::Manual => v1::RunTrigger::Manual,
        RunTrigger::Schedule => v1::RunTrigger::Schedule,
        RunTrigger::AfterSync => v1::RunTrigger::AfterSync,
    }
}

/// A run on the wire.
pub fn run_to_proto(r: &RunRecord) -> v1::Run {
    v1::Run {
        name: name(RUNS, &r.id),
        sync: name(SYNCS, &r.sync_id),
        state: state_to_proto(r.state).into(),
        trigger: trigger_to_proto(r.trigger).into(),
        attempt: r.attempt,
        max_attempts: r.max_attempts,
        full_resync: r.full_resync,
        counts: Some(counts_to_proto(&r.counts)),
        timings: r.timings.as_ref().map(timings_to_proto),
        error: r.error.as_ref().map(|e| v1::RunError {
            code: e.code.clone(),
            message: e.message.clone(),
            retryable: e.retryable,
        }),
        cancel_requested: r.cancel_requested,
        rejected_rows: r.rejected_count,
        create_time: Some(timestamp(r.created_at)),
        start_time: r.started_at.map(timestamp),
        end_time: r.ended_at.map(timestamp),
        not_before: Some(timestamp(r.not_before)),
        trace_id: r
            .traceparent
            .as_deref()
            .and_then(trace_id_of)
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A run error from the wire; an empty code becomes `unknown`.
pub fn run_error_from_proto(e: Option<&v1::RunError>) -> RunError {
    let e = e.cloned().unwrap_or_default();
    RunError {
        code: if e.code.is_empty() {
            "unknown".into()
        } else {
            e.code
        },
        message: e.message,
        retryable: e.retryable,
    }
}

/// A snapshot pointer on the wire.
pub fn snapshot_to_proto(s: &SnapshotPointer) -> v1::SnapshotPointer {
    v1::SnapshotPointer {
        path: s.path.clone(),
        rows: s.rows,
    }
}

/// A page size from the wire: default 100, at most 1000.
pub fn page_size(requested: i32) -> Result<u32, ApiError> {
    match requested {
        0 => Ok(100),
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        n => Ok(u32::try_from(n.min(1000)).unwrap_or(1000)),
    }
}

/// The position a `page_token` names in a list of `collection`: the id of the last item of
/// the previous page, or `None` for the first page. A token no page of this list could have
/// returned is refused rather than answered with a silently empty page.
pub fn page_token<'a>(collection: &str, token: &'a str) -> Result<Option<&'a str>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let valid = if collection == RUNS {
        uuid::Uuid::try_parse(token).is_ok()
    } else {
        valid_id(token)
    };
    if valid {
        Ok(Some(token))
    } else {
        Err(ApiError::invalid(
            "page_token",
            format!(
                "{} is not a page token of this list; pass a `next_page_token` as returned",
                quoted(token)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_engine::SyncOptions;

    #[test]
    fn page_tokens_are_ids_of_their_list() {
        assert_eq!(page_token(SYNCS, "").unwrap(), None);
        assert_eq!(page_token(SYNCS, "scores").unwrap(), Some("scores"));
        let run = "0193e3c4-5a6b-7c8d-9e0f-102132435465";
        assert_eq!(page_token(RUNS, run).unwrap(), Some(run));
        for (collection, garbage) in [(SYNCS, "!!garbage=="), (CONNECTIONS, "a/b"), (RUNS, "x")] {
            let e = page_token(collection, garbage).unwrap_err();
            assert!(format!("{e:?}").contains("page_token"), "{e:?}");
        }
    }

    fn valid_sync() -> v1::Sync {
        v1::Sync {
            source: Some(v1::SyncSource {
                connection: "connections/warehouse".into(),
                query: "SELECT id, score FROM scores".into(),
            }),
            primary_key: vec!["id".into()],
            destination: Some(v1::SyncDestination {
                connection: "app_db".into(),
                object: "public.scores".into(),
                mode: v1::SyncMode::Mirror.into(),
                create_table: true,
                shared: true,
            }),
            mappings: vec![v1::Mapping {
                from: "score".into(),
                to: "churn_score".into(),
            }],
            schedule: Some(v1::Schedule {
                kind: Some(v1::schedule::Kind::Cron("*/5 * * * *".into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_sync_round_trips_with_defaults_filled_in() {
        let d = sync_definition_from_proto("s", &valid_sync()).unwrap();
        assert_eq!(d.source_connection, "warehouse");
        assert_eq!(d.destination_connection, "app_db");
        assert_eq!(d.mode, SyncMode::Mirror);
        assert_eq!(d.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(d.options, SyncOptions::default());
        assert!(d.shared);
        let back = sync_definition_from_proto("s", &sync_definition_to_proto(&d)).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn connections_go_out_masked_except_in_leases() {
        let record = ConnectionRecord {
            id: "app_db".into(),
            kind: "postgres".into(),
            config: serde_json::json!({
                "url": "postgres://app:hunter2@db:5432/app",
                "password": "${env:PW}",
            }),
            created_at: 1,
            updated_at: 2,
        };
        let shown = struct_to_json(&connection_to_proto(&record).config.unwrap());
        assert_eq!(shown["url"], "postgres://app:***@db:5432/app");
        assert_eq!(shown["password"], "${env:PW}");
        let leased = struct_to_json(&connection_with_secrets_to_proto(&record).config.unwrap());
        assert_eq!(leased, record.config);
    }

    #[test]
    fn a_masked_password_is_not_taken_as_a_password() {
        let masked = v1::Connection {
            r#type: "postgres".into(),
            config: Some(struct_from_json(
                &serde_json::json!({ "url": "postgres://app:***@db/app" }),
            )),
            ..Default::default()
        };
        let Err(ApiError::InvalidArgument(v)) = connection_from_proto("c".into(), &masked, 0)
        else {
            panic!("a masked config was accepted");
        };
        assert_eq!(v[0].field, "connection.config");
    }

    #[test]
    fn quoted_values_in_errors_are_cut_short() {
        let huge = "x".repeat(1 << 20);
        let Err(ApiError::InvalidArgument(v)) = parse_name(SYNCS, "name", &huge) else {
            panic!("a 1 MB id was accepted");
        };
        assert!(v[0].description.len() < 400, "{}", v[0].description.len());
        assert!(
            v[0].description.contains("1048576 bytes"),
            "{}",
            v[0].description
        );
        let mut s = valid_sync();
        s.mappings.push(v1::Mapping {
            from: huge.clone(),
            to: "a".into(),
        });
        s.mappings.push(v1::Mapping {
            from: huge,
            to: "b".into(),
        });
        let Err(ApiError::InvalidArgument(v)) = sync_definition_from_proto("s", &s) else {
            panic!("expected invalid argument");
        };
        assert!(v.iter().all(|v| v.description.len() < 400), "{v:?}");
    }

    #[test]
    fn every_wrong_field_is_reported_at_once() {
        let mut s = valid_sync();
        s.primary_key.clear();
        s.source.as_mut().unwrap().query = " ".into();
        s.destination.as_mut().unwrap().mode = 0;
        s.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::Cron("every tuesday".into())),
        });
        s.options = Some(v1::SyncOptions {
            max_delete_fraction: Some(1.5),
            ..Default::default()
        });
        let Err(ApiError::InvalidArgument(v)) = sync_definition_from_proto("s", &s) else {
            panic!("expected invalid argument");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "sync.source.query",
                "sync.destination.mode",
                "sync.primary_key",
                "sync.schedule.cron",
                "sync.options.max_delete_fraction"
            ]
        );
    }

    #[test]
    fn a_sync_cannot_follow_itself() {
        let mut s = valid_sync();
        s.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::AfterSync("syncs/s".into())),
        });
        let Err(ApiError::InvalidArgument(v)) = sync_definition_from_proto("s", &s) else {
            panic!("expected invalid argument");
        };
        assert_eq!(v[0].field, "sync.schedule.after_sync");
    }

    #[test]
    fn names_accept_bare_ids_and_reject_other_collections() {
        assert_eq!(parse_name(SYNCS, "name", "syncs/a_b-1").unwrap(), "a_b-1");
        assert_eq!(parse_name(SYNCS, "name", "a").unwrap(), "a");
        assert!(parse_name(SYNCS, "name", "runs/a").is_err());
        assert!(parse_name(SYNCS, "name", "syncs/").is_err());
        assert!(parse_name(SYNCS, "name", "bad id").is_err());
    }

    #[test]
    fn cron_accepts_five_and_six_fields_and_finds_the_next_time_in_utc() {
        use chrono::TimeZone;
        let cron = parse_cron("0 * * * *").unwrap();
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 15, 0)
            .unwrap();
        let next = cron.find_next_occurrence(&at, false).unwrap();
        assert_eq!(
            next,
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 25, 11, 0, 0)
                .unwrap()
        );
        let every_10s = parse_cron("*/10 * * * * *").unwrap();
        let next = every_10s.find_next_occurrence(&at, false).unwrap();
        assert_eq!(next, at + chrono::Duration::seconds(10));
        assert!(parse_cron("61 * * * *").is_err());
    }
}
