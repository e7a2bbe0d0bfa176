//! The declarative definition file (`backflow.yaml`): connections and syncs,
//! version-controlled by users and applied as a whole.
//!
//! Parsing is strict: an unknown key is an error naming the key, its line and column, because a
//! typo such as `primary_keys` silently ignored would make a sync do something else entirely.

use std::collections::HashSet;
use std::time::Duration;

use backflow_connector_core::quoted;
use backflow_engine::{Mapping, SyncMode, SyncOptions, SyncSpec};
use serde::{Deserialize, Serialize};

/// Why a definition file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The YAML is malformed or has an unknown or mistyped key.
    #[error("{message}")]
    Parse {
        /// serde's message, which names the key and, where known, the line and column.
        message: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
    },
    /// The file parses but is inconsistent.
    #[error("`{path}`: {message}")]
    Invalid {
        /// Where in the file (`syncs[0].destination.connection`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// A whole definition file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    /// Named connections to sources and destinations.
    #[serde(default)]
    pub connections: Vec<ConnectionDef>,
    /// Syncs between those connections.
    #[serde(default)]
    pub syncs: Vec<SyncDef>,
}

/// A connection: a type from the connector registry and its raw config (secrets as
/// `${env:…}` / `${file:…}` references, never values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionDef {
    /// Unique name that syncs refer to.
    pub name: String,
    /// Connector type (`postgres`, `files`, `sqlite`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The connector's own config, validated by the connector.
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Where a sync reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    /// Name of a connection.
    pub connection: String,
    /// The query whose result is synced.
    pub query: String,
}

/// Where a sync writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationDef {
    /// Name of a connection.
    pub connection: String,
    /// Table (or collection) to write.
    #[serde(alias = "collection")]
    pub table: String,
    /// How rows are applied.
    pub mode: SyncMode,
    /// Create the table when missing.
    #[serde(default)]
    pub create_table: bool,
    /// Other syncs may write this table too (each of them must say so as well); without it,
    /// a second sync writing the same table is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// When a sync runs by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    /// A fixed interval such as `30s`, `15m`, `2h`, `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// A cron expression, in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Run after each successful run of the sync of this name (defined in the same file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDef {
    /// Unique name.
    pub name: String,
    /// What to read.
    pub source: SourceDef,
    /// Columns of the query result that identify a row.
    pub primary_key: Vec<String>,
    /// Where to write.
    pub destination: DestinationDef,
    /// Renames from query columns to destination columns.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// When to run; none means only when triggered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleDef>,
    /// Safety and tuning knobs.
    #[serde(default)]
    pub options: SyncOptions,
}

impl SyncDef {
    /// The engine's view of this sync.
    pub fn to_spec(&self) -> SyncSpec {
        SyncSpec {
            name: self.name.clone(),
            query: self.source.query.clone(),
            primary_key: self.primary_key.clone(),
            object: self.destination.table.clone(),
            destination_connection: self.destination.connection.clone(),
            mode: self.destination.mode,
            create_table: self.destination.create_table,
            mappings: self.mappings.clone(),
            options: self.options.clone(),
        }
    }
}

/// Parses `1d`, `2h`, `15m`, `30s` (one unit, whole numbers).
pub fn parse_interval(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Definitions {
    /// Parses and validates a YAML definition file.
    pub fn from_yaml(text: &str) -> Result<Self, DefinitionError> {
        let definitions: Definitions =
            serde_yaml_ng::from_str(text).map_err(|e| DefinitionError::Parse {
                line: e.location().map(|l| l.line()),
                message: e.to_string(),
            })?;
        definitions.validate()?;
        Ok(definitions)
    }

    /// Checks names, references and knobs; connector configs are checked by their connectors.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let mut connections = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            if !valid_name(&c.name) {
                return Err(invalid(
                    format!("connections[{i}].name"),
                    format!(
                        "{} is not a valid name (lowercase letters, digits, `_`, `-`; at most 63)",
                        quoted(&c.name)
                    ),
                ));
            }
            if !connections.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("connections[{i}].name"),
                    format!("connection `{}` is defined twice", c.name),
                ));
            }
        }
        let mut syncs = HashSet::new();
        for (i, s) in self.syncs.iter().enumerate() {
            let at = |field: &str| format!("syncs[{i}].{field}");
            if !valid_name(&s.name) {
                return Err(invalid(
                    at("name"),
                    format!(
                        "{} is not a valid name (lowercase letters, digits, `_`, `-`; at most 63)",
                        quoted(&s.name)
                    ),
                ));
            }
            if !syncs.insert(s.name.as_str()) {
                return Err(invalid(
                    at("name"),
                    format!("sync `{}` is defined twice", s.name),
                ));
            }
            for (field, name) in [
                ("source.connection", &s.source.connection),
                ("destination.connection", &s.destination.connection),
            ] {
                if !connections.contains(name.as_str()) {
                    return Err(invalid(
                        at(field),
                        format!("no connection named {}", quoted(name)),
                    ));
                }
            }
            if s.source.query.trim().is_empty() {
                return Err(invalid(at("source.query"), "the query is empty"));
            }
            if s.primary_key.is_empty() {
                return Err(invalid(
                    at("primary_key"),
                    "at least one column is required",
                ));
            }
            if s.destination.table.trim().is_empty() {
                return Err(invalid(at("destination.table"), "the table is empty"));
            }
            if !(0.0..=1.0).contains(&s.options.max_delete_fraction) {
                return Err(invalid(
                    at("options.max_delete_fraction"),
                    "must be between 0.0 and 1.0",
                ));
            }
            if s.options.batch_size == 0 {
                return Err(invalid(at("options.batch_size"), "must be at least 1"));
            }
            if let Some(schedule) = &s.schedule {
                match (&schedule.every, &schedule.cron, &schedule.after) {
                    (Some(every), None, None) => {
                        if parse_interval(every).is_none() {
                            return Err(invalid(
                                at("schedule.every"),
                                format!(
                                    "{} is not an interval like 30s, 15m, 2h or 1d",
                                    quoted(every)
                                ),
                            ));
                        }
                    }
                    (None, Some(cron), None) => {
                        if cron.trim().is_empty() {
                            return Err(invalid(at("schedule.cron"), "the expression is empty"));
                        }
                    }
                    (None, None, Some(after)) => {
                        if after == &s.name {
                            return Err(invalid(
                                at("schedule.after"),
                                "a sync cannot run after itself",
                            ));
                        }
                        if !self.syncs.iter().any(|other| &other.name == after) {
                            return Err(invalid(
                                at("schedule.after"),
                                format!("no sync named {}", quoted(after)),
                            ));
                        }
                    }
                    _ => {
                        return Err(invalid(
                            at("schedule"),
                            "give exactly one of `every`, `cron` or `after`",
                        ))
                    }
                }
            }
        }
        self.check_after_cycles()
    }

    /// Refuses `after` chains that loop (`a` after `b` after `a`): each run would start the
    /// next one forever.
    fn check_after_cycles(&self) -> Result<(), DefinitionError> {
        let after = |name: &str| {
            self.syncs
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.schedule.as_ref())
                .and_then(|schedule| schedule.after.as_deref())
        };
        for (i, s) in self.syncs.iter().enumerate() {
            let mut seen = vec![s.name.as_str()];
            let mut next = after(&s.name);
            while let Some(name) = next {
                if name == s.name {
                    seen.push(name);
                    return Err(invalid(
                        format!("syncs[{i}].schedule.after"),
                        format!("`after` loops: {}", seen.join(" -> ")),
                    ));
                }
                if seen.contains(&name) {
                    // A loop that does not pass through `s`; reported from one of its members.
                    break;
                }
                seen.push(name);
                next = after(name);
            }
        }
        Ok(())
    }

    /// The connection named `name`.
    pub fn connection(&self, name: &str) -> Option<&ConnectionDef> {
        self.connections.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
connections:
  - name: warehouse
    type: files
    config: { tables: { scores: ./data/scores.parquet } }
  - name: app_db
    type: postgres
    config:
      url: postgres://app@127.0.0.1:5432/app
      password: ${env:APP_DB_PASSWORD}
syncs:
  - name: customer_scores
    source: { connection: warehouse, query: "SELECT customer_id, churn_risk, ltv FROM scores WHERE ltv > 0" }
    primary_key: [customer_id]
    destination: { connection: app_db, table: public.customer_scores, mode: upsert, create_table: true }
    mappings: [ { from: churn_risk, to: churn_risk_score } ]
    schedule: { every: 15m }
"#;

    #[test]
    fn parses_the_design_example() {
        let d = Definitions::from_yaml(EXAMPLE).unwrap();
        assert_eq!(d.connections.len(), 2);
        let spec = d.syncs[0].to_spec();
        assert_eq!(spec.mode, SyncMode::Upsert);
        assert_eq!(spec.destination_column("churn_risk"), "churn_risk_score");
        assert_eq!(spec.options.max_delete_fraction, 0.5);
        assert_eq!(
            d.connection("app_db").unwrap().config["password"],
            "${env:APP_DB_PASSWORD}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let text = EXAMPLE.replace("primary_key:", "primary_keys:");
        let e = Definitions::from_yaml(&text).unwrap_err();
        let DefinitionError::Parse { message, line } = &e else {
            panic!("{e}")
        };
        assert!(message.contains("primary_keys"), "{message}");
        assert_eq!(*line, Some(14), "{message}");
    }

    #[test]
    fn dangling_connection_names_the_field() {
        let text = EXAMPLE.replace("connection: app_db", "connection: app");
        let e = Definitions::from_yaml(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`syncs[0].destination.connection`: no connection named `app`"
        );
    }

    #[test]
    fn destinations_may_say_they_share_their_table() {
        let d = Definitions::from_yaml(EXAMPLE).unwrap();
        assert!(!d.syncs[0].destination.shared);
        let text = EXAMPLE.replace("create_table: true }", "create_table: true, shared: true }");
        let d = Definitions::from_yaml(&text).unwrap();
        assert!(d.syncs[0].destination.shared);
    }

    #[test]
    fn errors_quote_at_most_a_few_hundred_bytes_of_a_value() {
        let huge = "x".repeat(1 << 20);
        let text = EXAMPLE.replace("connection: app_db,", &format!("connection: {huge},"));
        let e = Definitions::from_yaml(&text).unwrap_err().to_string();
        assert!(e.len() < 500, "{} bytes", e.len());
        assert!(e.contains("1048576 bytes"), "{e}");
    }

    #[test]
    fn bad_mode_and_interval_are_refused() {
        let e =
            Definitions::from_yaml(&EXAMPLE.replace("mode: upsert", "mode: merge")).unwrap_err();
        assert!(e.to_string().contains("merge"), "{e}");
        let e = Definitions::from_yaml(&EXAMPLE.replace("every: 15m", "every: soon")).unwrap_err();
        assert!(e.to_string().contains("schedule.every"), "{e}");
        assert_eq!(parse_interval("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_interval("0s"), None);
    }

    /// Two syncs: `scores` (every 15m) and `totals`, whose schedule is the given YAML.
    fn with_second_schedule(schedule: &str) -> String {
        format!(
            r#"
connections:
  - {{ name: wh, type: files }}
  - {{ name: db, type: sqlite }}
syncs:
  - name: scores
    source: {{ connection: wh, query: "SELECT 1 AS id" }}
    primary_key: [id]
    destination: {{ connection: db, table: scores, mode: upsert }}
    schedule: {{ every: 15m }}
  - name: totals
    source: {{ connection: wh, query: "SELECT 1 AS id" }}
    primary_key: [id]
    destination: {{ connection: db, table: totals, mode: upsert }}
    schedule: {schedule}
"#
        )
    }

    #[test]
    fn schedule_after_names_another_sync_of_the_file() {
        let d = Definitions::from_yaml(&with_second_schedule("{ after: scores }")).unwrap();
        let schedule = d.syncs[1].schedule.as_ref().unwrap();
        assert_eq!(schedule.after.as_deref(), Some("scores"));
        assert_eq!((&schedule.every, &schedule.cron), (&None, &None));

        let e = Definitions::from_yaml(&with_second_schedule("{ after: nope }")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`syncs[1].schedule.after`: no sync named `nope`"
        );
        let e = Definitions::from_yaml(&with_second_schedule("{ after: totals }")).unwrap_err();
        assert!(e.to_string().contains("cannot run after itself"), "{e}");
    }

    #[test]
    fn schedule_takes_exactly_one_kind() {
        for schedule in [
            "{ every: 15m, after: scores }",
            "{ cron: \"0 * * * *\", after: scores }",
            "{ every: 15m, cron: \"0 * * * *\" }",
            "{ }",
        ] {
            let e = Definitions::from_yaml(&with_second_schedule(schedule)).unwrap_err();
            assert_eq!(
                e.to_string(),
                "`syncs[1].schedule`: give exactly one of `every`, `cron` or `after`",
                "{schedule}"
            );
        }
        Definitions::from_yaml(&with_second_schedule("{ cron: \"0 * * * *\" }")).unwrap();
    }

    #[test]
    fn after_loops_are_refused() {
        let text = with_second_schedule("{ after: scores }")
            .replace("schedule: { every: 15m }", "schedule: { after: totals }");
        let e = Definitions::from_yaml(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`syncs[0].schedule.after`: `after` loops: scores -> totals -> scores"
        );
    }
}
