//! The explicit registry: one list of the connection types this build supports.
//!
//! No global registration magic: each connector crate implements [`Connector`] once, and
//! adding it here is a cargo feature and one line in [`CONNECTORS`], so what a build supports
//! is visible in one place. The worker, the control plane and the CLI reach connectors only
//! through this crate.

use std::sync::Arc;

pub use backflow_connector_core::Connector;
use backflow_connector_core::{ConnectorError, Destination, NameError, Role, Source};
use serde_json::Value;

/// Every connection type of this build, in the order of listings and of the "supported" list
/// in errors.
const CONNECTORS: &[&dyn Connector] = &[
    #[cfg(feature = "postgres")]
    &backflow_postgres::PostgresConnector,
    #[cfg(feature = "files")]
    &backflow_files::FilesConnector,
    #[cfg(feature = "sqlite")]
    &backflow_sqlite::SqliteConnector,
    #[cfg(feature = "mysql")]
    &backflow_mysql::MysqlConnector,
    #[cfg(feature = "redshift")]
    &backflow_redshift::RedshiftConnector,
    #[cfg(feature = "snowflake")]
    &backflow_snowflake::SnowflakeConnector,
    #[cfg(feature = "bigquery")]
    &backflow_bigquery::BigQueryConnector,
    #[cfg(feature = "mongodb")]
    &backflow_mongodb::MongoConnector,
    #[cfg(feature = "cockroachdb")]
    &backflow_cockroachdb::CockroachConnector,
    #[cfg(feature = "firestore")]
    &backflow_firestore::FirestoreConnector,
];

/// Every connection type of this build.
pub fn connectors() -> &'static [&'static dyn Connector] {
    CONNECTORS
}

/// The connection type named `kind`, if this build has it.
pub fn connector(kind: &str) -> Option<&'static dyn Connector> {
    CONNECTORS.iter().copied().find(|c| c.type_name() == kind)
}

/// The types playing `role`, in listing order.
fn types_in(role: Role) -> Vec<&'static str> {
    CONNECTORS
        .iter()
        .filter(|c| c.roles().contains(&role))
        .map(|c| c.type_name())
        .collect()
}

/// Connection types this build can read from.
pub fn source_types() -> Vec<&'static str> {
    types_in(Role::Source)
}

/// Connection types this build can write to.
pub fn destination_types() -> Vec<&'static str> {
    types_in(Role::Destination)
}

/// The connector of `kind` when it plays `role`.
fn in_role(kind: &str, role: Role) -> Option<&'static dyn Connector> {
    connector(kind).filter(|c| c.roles().contains(&role))
}

fn unknown(kind: &str, role: Role) -> ConnectorError {
    ConnectorError::config(
        "type",
        format!(
            "`{kind}` is not a {} type in this build (supported: {})",
            role.as_str(),
            types_in(role).join(", ")
        ),
    )
}

/// Validates `config` for a source of type `kind` (pure: no I/O).
pub fn source(kind: &str, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
    match in_role(kind, Role::Source) {
        Some(c) => c.source(config),
        None => Err(unknown(kind, Role::Source)),
    }
}

/// Validates `config` for a destination of type `kind` (pure: no I/O).
pub fn destination(kind: &str, config: &Value) -> Result<Arc<dyn Destination>, ConnectorError> {
    match in_role(kind, Role::Destination) {
        Some(c) => c.destination(config),
        None => Err(unknown(kind, Role::Destination)),
    }
}

/// Checks a sync's destination names against what the destination of type `kind` holds
/// exactly (pure: no I/O), so a name the database would truncate or refuse fails when the
/// sync is defined, not at its first run. `config` is the destination connection's raw
/// config (MongoDB's namespace limit counts its database); `columns` are the destination
/// column names known from the definition (mapping targets and primary-key columns).
///
/// The same rules run again in each destination's `check` before every run, on the columns
/// the query actually returns. Types this build does not write to have no rules here;
/// [`destination`] refuses them.
pub fn validate_destination_object(
    kind: &str,
    config: &Value,
    object: &str,
    columns: &[&str],
) -> Result<(), NameError> {
    match in_role(kind, Role::Destination) {
        Some(c) => c.check_destination_names(config, object, columns),
        None => Ok(()),
    }
}

/// The destination object `object` names on a connection of type `kind`, spelled one way so
/// two syncs writing the same table or collection can be recognised: PostgreSQL and
/// CockroachDB `t` and `public.t`, MySQL `t` and `db.t` (db being the URL's database), SQLite
/// `t` and `MAIN.T` are the same. Other types compare names exactly. `None` when `object`
/// does not parse (its validation says why).
pub fn destination_object_key(kind: &str, config: &Value, object: &str) -> Option<String> {
    match in_role(kind, Role::Destination) {
        Some(c) => c.destination_object_key(config, object),
        None => Some(object.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::NamePart;
    use serde_json::json;

    #[cfg(all(
        feature = "postgres",
        feature = "mysql",
        feature = "mongodb",
        feature = "firestore",
        feature = "sqlite",
        feature = "cockroachdb"
    ))]
    #[test]
    fn each_destination_applies_its_own_name_rules() {
        let t64 = "t".repeat(64);
        let pg = json!({ "url": "postgres://h/db" });
        assert!(validate_destination_object("postgres", &pg, &"t".repeat(63), &["id"]).is_ok());
        let e = validate_destination_object("postgres", &pg, &t64, &["id"]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        assert!(validate_destination_object("cockroachdb", &pg, &t64, &[]).is_err());
        // MySQL allows 64 characters, not 65, and no trailing space.
        let my = json!({ "url": "mysql://h/app" });
        assert!(validate_destination_object("mysql", &my, &t64, &[&t64]).is_ok());
        let e = validate_destination_object("mysql", &my, "t", &["x "]).unwrap_err();
        assert_eq!(e.part, NamePart::Column("x ".into()));
        // MongoDB counts the database in the namespace: `shop.` plus 250 bytes is 255.
        let mongo = json!({ "url": "mongodb://h/shop" });
        assert!(validate_destination_object("mongodb", &mongo, &"c".repeat(250), &[]).is_ok());
        assert!(validate_destination_object("mongodb", &mongo, &"c".repeat(251), &[]).is_err());
        assert!(validate_destination_object("mongodb", &mongo, "system.x", &[]).is_err());
        let fs = json!({ "project": "p" });
        assert!(validate_destination_object("firestore", &fs, "__x__", &[]).is_err());
        assert!(validate_destination_object("firestore", &fs, &t64, &[&t64]).is_ok());
        // SQLite has no limit, but no NUL.
        let lite = json!({ "path": "app.db" });
        let huge = "t".repeat(1 << 20);
        assert!(validate_destination_object("sqlite", &lite, &huge, &[]).is_ok());
        assert!(validate_destination_object("sqlite", &lite, "t", &["a\0"]).is_err());
    }

    #[cfg(all(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    #[test]
    fn object_keys_normalise_default_schemas() {
        let pg = json!({ "url": "postgres://h/db" });
        assert_eq!(
            destination_object_key("postgres", &pg, "t"),
            destination_object_key("postgres", &pg, "public.t")
        );
        let my = json!({ "url": "mysql://h/app" });
        assert_eq!(
            destination_object_key("mysql", &my, "t"),
            destination_object_key("mysql", &my, "app.t")
        );
        assert_ne!(
            destination_object_key("mysql", &my, "t"),
            destination_object_key("mysql", &my, "other.t")
        );
        let lite = json!({ "path": "app.db" });
        assert_eq!(
            destination_object_key("sqlite", &lite, "T"),
            destination_object_key("sqlite", &lite, "main.t")
        );
        assert_eq!(destination_object_key("postgres", &pg, "a.b.c"), None);
        assert_eq!(
            destination_object_key("mongodb", &json!({}), "orders").as_deref(),
            Some("orders")
        );
    }

    #[cfg(all(
        feature = "postgres",
        feature = "files",
        feature = "sqlite",
        feature = "mysql",
        feature = "mongodb",
        feature = "cockroachdb",
        feature = "firestore",
        feature = "redshift",
        feature = "snowflake",
        feature = "bigquery"
    ))]
    #[test]
    fn the_table_lists_every_type_once_per_role_in_a_stable_order() {
        assert_eq!(
            source_types(),
            [
                "postgres",
                "files",
                "sqlite",
                "mysql",
                "redshift",
                "snowflake",
                "bigquery"
            ]
        );
        assert_eq!(
            destination_types(),
            [
                "postgres",
                "sqlite",
                "mysql",
                "mongodb",
                "cockroachdb",
                "firestore"
            ]
        );
        let e = source("mongodb", &Value::Null).unwrap_err();
        assert_eq!(
            e.message(),
            "`mongodb` is not a source type in this build (supported: postgres, files, sqlite, \
             mysql, redshift, snowflake, bigquery)"
        );
        let e = destination("files", &Value::Null).unwrap_err();
        assert_eq!(
            e.message(),
            "`files` is not a destination type in this build (supported: postgres, sqlite, \
             mysql, mongodb, cockroachdb, firestore)"
        );
        // Each role builds its own connector from the same name.
        let pg = json!({ "url": "postgres://h/db" });
        assert!(source("postgres", &pg).is_ok());
        assert!(destination("postgres", &pg).is_ok());
        // Types without destination rules pass; unknown ones keep their name as the key.
        assert!(validate_destination_object("files", &Value::Null, "x", &["$"]).is_ok());
        assert_eq!(
            destination_object_key("firestore", &Value::Null, "A").as_deref(),
            Some("A")
        );
    }

    /// A value of the wrong JSON type for a field that takes `types`.
    fn mistyped(types: &[String]) -> Value {
        if types.iter().any(|t| t == "string") {
            json!(12345)
        } else {
            json!("not-a-number-or-flag")
        }
    }

    #[test]
    fn every_connector_describes_itself_once_with_a_closed_schema() {
        let mut names: Vec<_> = connectors().iter().map(|c| c.type_name()).collect();
        let listed = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), listed, "a type is registered twice");
        for c in connectors() {
            let kind = c.type_name();
            assert!(!c.summary().is_empty(), "{kind}");
            assert!(!c.roles().is_empty(), "{kind}");
            let schema = c.config_schema();
            assert_eq!(schema["type"], "object", "{kind}");
            assert_eq!(schema["additionalProperties"], json!(false), "{kind}");
            let fields = backflow_connector_core::config_fields(&schema);
            assert!(!fields.is_empty(), "{kind}");
            for f in &fields {
                assert!(!f.types.is_empty(), "{kind}.{} has no type", f.path);
                assert!(
                    !f.description.is_empty(),
                    "{kind}.{} is undocumented",
                    f.path
                );
            }
            let destination = c.roles().contains(&Role::Destination);
            assert_eq!(c.capabilities().modes.is_empty(), !destination, "{kind}");
        }
    }

    #[test]
    fn every_connector_refuses_an_unknown_or_mistyped_field_naming_it() {
        for c in connectors() {
            let kind = c.type_name();
            let e = backflow_connector_core::validate_config(*c, &json!({ "colour": "blue" }))
                .unwrap_err();
            assert_eq!(e.field(), Some("colour"), "{kind}: {e}");
            assert!(
                e.message().contains("unknown field `colour`"),
                "{kind}: {e}"
            );
            // Every top-level field, given a value of a type its schema does not allow, is
            // refused by the parser with that field named: the schema and the parser agree.
            let fields = backflow_connector_core::config_fields(&c.config_schema());
            for f in fields.iter().filter(|f| !f.path.contains('.')) {
                let config = json!({ f.path.clone(): mistyped(&f.types) });
                let e = backflow_connector_core::validate_config(*c, &config).unwrap_err();
                assert_eq!(e.field(), Some(f.path.as_str()), "{kind}.{}: {e}", f.path);
            }
        }
    }

    #[test]
    fn secret_fields_are_the_ones_responses_mask() {
        for c in connectors() {
            for f in backflow_connector_core::config_fields(&c.config_schema()) {
                let key = f.path.rsplit('.').next().unwrap_or_default();
                if matches!(key, "password" | "passphrase") {
                    assert!(
                        f.secret,
                        "{}.{} is masked but not flagged",
                        c.type_name(),
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_type_lists_what_is_supported() {
        let e = destination("oracle", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("type"));
        assert!(e.message().contains("oracle"), "{e}");
        assert!(e.message().contains("postgres"), "{e}");
    }
}
