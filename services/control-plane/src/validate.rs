//! The checks of a sync definition against what it refers to, shared by the API (against the
//! store) and by `backflow apply` (against the server's state with the definition file laid
//! over it, before anything is written), so both refuse the same definitions with the same
//! field violations.
//!
//! Pure: whoever calls supplies the connections and syncs through [`Catalog`].

use backflow_connector_core::{quoted, NamePart};
use backflow_proto::v1;

use crate::convert::sync_definition_from_proto;
use crate::error::{ApiError, FieldViolation};
use crate::model::{Schedule, SyncDefinition};

/// A connection as the checks need it: its connector type and raw config.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionRef<'a> {
    /// Connector type (`postgres`, …).
    pub kind: &'a str,
    /// The connector's config (secrets may be masked: the checks read only its shape).
    pub config: &'a serde_json::Value,
}

/// What a sync may refer to: connections and other syncs, by id.
pub trait Catalog {
    /// The connection `id`, if it exists.
    fn connection(&self, id: &str) -> Option<ConnectionRef<'_>>;
    /// Whether the sync `id` exists.
    fn has_sync(&self, id: &str) -> bool;
}

/// Validates `sync` (to be stored as `id`) field by field, then against `catalog`: both
/// connections exist and fit their role, the sync it runs after exists, and every
/// destination name (the object, mapped columns, unmapped primary-key columns) is one the
/// destination holds exactly. Every violation is reported at once, named by its field.
pub fn validate_sync(
    id: &str,
    sync: &v1::Sync,
    catalog: &dyn Catalog,
) -> Result<SyncDefinition, ApiError> {
    let definition = sync_definition_from_proto(id, sync)?;
    let mut violations = Vec::new();
    let roles = [
        (
            "sync.source.connection",
            &definition.source_connection,
            backflow_connectors::source_types(),
            "source",
        ),
        (
            "sync.destination.connection",
            &definition.destination_connection,
            backflow_connectors::destination_types(),
            "destination",
        ),
    ];
    for (field, connection, types, role) in roles {
        match catalog.connection(connection) {
            Some(c) if !types.contains(&c.kind) => violations.push(FieldViolation::new(
                field,
                format!(
                    "connection `{connection}` is of type {}, which cannot be a {role} \
                     (supported: {})",
                    quoted(c.kind),
                    types.join(", ")
                ),
            )),
            Some(_) => {}
            None => violations.push(FieldViolation::new(
                field,
                format!("connection `{connection}` does not exist"),
            )),
        }
    }
    if let Some(Schedule::AfterSync { sync: after }) = &definition.schedule {
        if !catalog.has_sync(after) {
            violations.push(FieldViolation::new(
                "sync.schedule.after_sync",
                format!("sync `{after}` does not exist"),
            ));
        }
    }
    if let Some(destination) = catalog.connection(&definition.destination_connection) {
        if backflow_connectors::destination_types().contains(&destination.kind) {
            violations.extend(name_violations(&definition, destination));
        }
    }
    if violations.is_empty() {
        Ok(definition)
    } else {
        Err(ApiError::InvalidArgument(violations))
    }
}

/// The destination names of `definition` that `destination` would truncate or refuse, each
/// named by the field that holds it: `sync.destination.object`, `sync.mappings[i].to`, or
/// `sync.primary_key[i]` for a key column that no mapping renames.
pub fn name_violations(
    definition: &SyncDefinition,
    destination: ConnectionRef<'_>,
) -> Vec<FieldViolation> {
    let check = |columns: &[&str]| {
        backflow_connectors::validate_destination_object(
            destination.kind,
            destination.config,
            &definition.object,
            columns,
        )
    };
    if let Err(e) = check(&[]) {
        // The columns are checked with the object, which is wrong already: report it alone.
        return vec![FieldViolation::new("sync.destination.object", e.message)];
    }
    let mut columns: Vec<(String, &str)> = definition
        .mappings
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("sync.mappings[{i}].to"), m.to.as_str()))
        .collect();
    for (i, key) in definition.primary_key.iter().enumerate() {
        if !definition.mappings.iter().any(|m| &m.from == key) {
            columns.push((format!("sync.primary_key[{i}]"), key.as_str()));
        }
    }
    columns
        .into_iter()
        .filter_map(|(field, column)| match check(&[column]) {
            Err(e) if matches!(e.part, NamePart::Column(_)) => {
                Some(FieldViolation::new(field, e.message))
            }
            Err(e) => Some(FieldViolation::new("sync.destination.object", e.message)),
            Ok(()) => None,
        })
        .collect()
}

/// Refuses `definition` (stored as `id`) when one of `others` already writes the same object
/// through the same destination connection, unless both set `shared`: two writers of one
/// table overwrite each other's rows, and a mirror sync deletes the rows of the other.
/// Objects compare as the destination spells them ([`backflow_connectors::destination_object_key`]:
/// `t` and `public.t` are one PostgreSQL table). The refusal names the other sync.
pub fn target_conflict<'a>(
    id: &str,
    definition: &SyncDefinition,
    destination: ConnectionRef<'_>,
    others: impl IntoIterator<Item = (&'a str, &'a SyncDefinition)>,
) -> Result<(), String> {
    let key = |object: &str| {
        backflow_connectors::destination_object_key(destination.kind, destination.config, object)
            .unwrap_or_else(|| object.to_owned())
    };
    let mine = key(&definition.object);
    for (other_id, other) in others {
        if other_id == id
            || other.destination_connection != definition.destination_connection
            || key(&other.object) != mine
            || (definition.shared && other.shared)
        {
            continue;
        }
        let spelled = if other.object == definition.object {
            String::new()
        } else {
            format!(" (as {})", quoted(&other.object))
        };
        return Err(format!(
            "sync `{other_id}` already writes {}{spelled} through connection `{}`; two syncs \
             may write one object only when both set `destination.shared` (they would \
             otherwise overwrite, or in mirror mode delete, each other's rows)",
            quoted(&definition.object),
            definition.destination_connection,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Fixture {
        connections: HashMap<String, (String, serde_json::Value)>,
        syncs: Vec<String>,
    }

    impl Catalog for Fixture {
        fn connection(&self, id: &str) -> Option<ConnectionRef<'_>> {
            self.connections
                .get(id)
                .map(|(kind, config)| ConnectionRef { kind, config })
        }
        fn has_sync(&self, id: &str) -> bool {
            self.syncs.iter().any(|s| s == id)
        }
    }

    fn fixture() -> Fixture {
        let mut connections = HashMap::new();
        connections.insert(
            "warehouse".to_owned(),
            ("files".to_owned(), serde_json::json!({ "tables": {} })),
        );
        connections.insert(
            "app_db".to_owned(),
            (
                "postgres".to_owned(),
                serde_json::json!({ "url": "postgres://app:***@db/app" }),
            ),
        );
        Fixture {
            connections,
            syncs: vec!["other".into()],
        }
    }

    fn sync(object: &str) -> v1::Sync {
        v1::Sync {
            source: Some(v1::SyncSource {
                connection: "connections/warehouse".into(),
                query: "SELECT id, score FROM scores".into(),
            }),
            primary_key: vec!["id".into(), "region".into()],
            destination: Some(v1::SyncDestination {
                connection: "connections/app_db".into(),
                object: object.into(),
                mode: v1::SyncMode::Upsert.into(),
                ..Default::default()
            }),
            mappings: vec![
                v1::Mapping {
                    from: "score".into(),
                    to: "churn_score".into(),
                },
                v1::Mapping {
                    from: "region".into(),
                    to: "r".repeat(64),
                },
            ],
            ..Default::default()
        }
    }

    fn fields(result: Result<SyncDefinition, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn names_the_destination_would_truncate_are_named_by_field() {
        let catalog = fixture();
        // The mapped `region` is 64 bytes: `mappings[1].to`; `id` is fine.
        let mut s = sync("public.scores");
        assert_eq!(
            fields(validate_sync("s", &s, &catalog)),
            ["sync.mappings[1].to"]
        );
        // An unmapped key column over the limit is named by its `primary_key` entry.
        s.mappings.pop();
        s.primary_key[1] = "k".repeat(64);
        assert_eq!(
            fields(validate_sync("s", &s, &catalog)),
            ["sync.primary_key[1]"]
        );
        s.primary_key.pop();
        assert!(validate_sync("s", &s, &catalog).is_ok());
        // A 64-byte table, and a 1 MB one, named by `destination.object` and not echoed.
        for object in ["t".repeat(64), "t".repeat(1 << 20)] {
            let Err(ApiError::InvalidArgument(v)) = validate_sync("s", &sync(&object), &catalog)
            else {
                panic!("accepted a {}-byte table name", object.len());
            };
            assert_eq!(v[0].field, "sync.destination.object");
            assert!(v[0].description.len() < 500, "{}", v[0].description.len());
        }
    }

    #[test]
    fn references_are_checked_against_the_catalog() {
        let catalog = fixture();
        let mut s = sync("t");
        s.mappings.pop();
        s.primary_key.pop();
        s.source.as_mut().unwrap().connection = "connections/app_db".into();
        s.destination.as_mut().unwrap().connection = "connections/nope".into();
        s.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::AfterSync("syncs/missing".into())),
        });
        assert_eq!(
            fields(validate_sync("s", &s, &catalog)),
            ["sync.destination.connection", "sync.schedule.after_sync"]
        );
        s.destination.as_mut().unwrap().connection = "connections/warehouse".into();
        assert_eq!(
            fields(validate_sync("s", &s, &catalog)),
            ["sync.destination.connection", "sync.schedule.after_sync"]
        );
    }

    fn definition(object: &str, shared: bool) -> SyncDefinition {
        let mut s = sync(object);
        s.mappings.pop();
        s.primary_key.pop();
        s.destination.as_mut().unwrap().shared = shared;
        sync_definition_from_proto("x", &s).unwrap()
    }

    #[test]
    fn one_object_has_one_writer_unless_both_share_it() {
        let catalog = fixture();
        let app_db = catalog.connection("app_db").unwrap();
        let first = definition("public.t", false);
        let others = [("first", &first)];

        let e = target_conflict("second", &definition("t", false), app_db, others).unwrap_err();
        assert!(
            e.contains("sync `first` already writes `t` (as `public.t`)"),
            "{e}"
        );
        assert!(target_conflict("second", &definition("t2", false), app_db, others).is_ok());
        // Its own earlier definition is no conflict (an update).
        assert!(target_conflict("first", &definition("t", false), app_db, others).is_ok());
        // Only when both say so.
        assert!(target_conflict("second", &definition("t", true), app_db, others).is_err());
        let shared = definition("public.t", true);
        let both = [("first", &shared)];
        assert!(target_conflict("second", &definition("t", true), app_db, both).is_ok());
        // Another destination connection is another object.
        let mut elsewhere = definition("t", false);
        elsewhere.destination_connection = "other_db".into();
        assert!(target_conflict("second", &elsewhere, app_db, others).is_ok());
    }
}
