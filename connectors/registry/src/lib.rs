//! The explicit registry: one table maps a connection's `type` to its connector.
//!
//! No global registration magic: adding a connector means adding a cargo feature and a line
//! to [`CONNECTORS`], so what a build supports is visible in one place. The type lists,
//! construction, name rules and object keys are all read from that table.

use std::sync::Arc;

use backflow_connector_core::{ConnectorError, Destination, NameError, Source};
use serde_json::Value;

/// One connection type a build supports, in one role.
#[derive(Clone, Copy)]
struct Entry {
    /// The connection's `type` as users write it.
    name: &'static str,
    role: Role,
}

/// What a connection type can be used as, with what the registry needs for that role.
#[derive(Clone, Copy)]
#[allow(
    dead_code,
    reason = "a build without any source (or destination) feature never builds that role"
)]
enum Role {
    Source {
        /// Validates a raw config (pure: no I/O).
        validate: fn(&Value) -> Result<Arc<dyn Source>, ConnectorError>,
    },
    Destination {
        /// Validates a raw config (pure: no I/O).
        validate: fn(&Value) -> Result<Arc<dyn Destination>, ConnectorError>,
        /// Checks a sync's object and column names (config, object, columns).
        names: fn(&Value, &str, &[&str]) -> Result<(), NameError>,
        /// The one spelling of an object (config, object); `None` when it does not parse.
        object_key: fn(&Value, &str) -> Option<String>,
    },
}

/// Every connection type of this build. The order is the order of the type lists (and of
/// the "supported" list in errors).
const CONNECTORS: &[Entry] = &[
    #[cfg(feature = "postgres")]
    Entry {
        name: "postgres",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_postgres::validate_source(c)?)),
        },
    },
    #[cfg(feature = "postgres")]
    Entry {
        name: "postgres",
        role: Role::Destination {
            validate: |c| Ok(Arc::new(backflow_postgres::validate_destination(c)?)),
            names: |_, object, columns| backflow_postgres::check_destination_names(object, columns),
            object_key: |_, object| backflow_postgres::object_key(object),
        },
    },
    #[cfg(feature = "files")]
    Entry {
        name: "files",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_files::validate_source(c)?)),
        },
    },
    #[cfg(feature = "sqlite")]
    Entry {
        name: "sqlite",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_sqlite::validate_source(c)?)),
        },
    },
    #[cfg(feature = "sqlite")]
    Entry {
        name: "sqlite",
        role: Role::Destination {
            validate: |c| Ok(Arc::new(backflow_sqlite::validate_destination(c)?)),
            names: |_, object, columns| backflow_sqlite::check_destination_names(object, columns),
            object_key: |_, object| backflow_sqlite::object_key(object),
        },
    },
    #[cfg(feature = "mysql")]
    Entry {
        name: "mysql",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_mysql::validate_source(c)?)),
        },
    },
    #[cfg(feature = "mysql")]
    Entry {
        name: "mysql",
        role: Role::Destination {
            validate: |c| Ok(Arc::new(backflow_mysql::validate_destination(c)?)),
            names: |_, object, columns| backflow_mysql::check_destination_names(object, columns),
            object_key: backflow_mysql::object_key,
        },
    },
    #[cfg(feature = "redshift")]
    Entry {
        name: "redshift",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_redshift::validate_source(c)?)),
        },
    },
    #[cfg(feature = "snowflake")]
    Entry {
        name: "snowflake",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_snowflake::validate_source(c)?)),
        },
    },
    #[cfg(feature = "bigquery")]
    Entry {
        name: "bigquery",
        role: Role::Source {
            validate: |c| Ok(Arc::new(backflow_bigquery::validate_source(c)?)),
        },
    },
    #[cfg(feature = "mongodb")]
    Entry {
        name: "mongodb",
        role: Role::Destination {
            validate: |c| Ok(Arc::new(backflow_mongodb::validate_destination(c)?)),
            // MongoDB's namespace limit counts the database the connection writes into.
            names: |config, object, columns| {
                backflow_mongodb::check_destination_names(
                    backflow_mongodb::database_of(config).as_deref(),
                    object,
                    columns,
                )
            },
            // Collection names have no default schema to leave out or case to fold.
            object_key: |_, object| Some(object.to_owned()),
        },
    },
    #[cfg(feature = "cockroachdb")]
    Entry {
        name: "cockroachdb",
        role: Role::Destination {
            validate: |c| Ok(Arc::new(backflow_cockroachdb::validate_destination(c)?)),
            names: |_, object, columns| {
                backflow_cockroachdb::check_destination_names(object, columns)
            },
            object_key: |_, object| backflow_cockroachdb::object_key(object),
        },
    },
    #[cfg(feature = "firestore")]
    Entry {
        name: "firestore",
        role: Role::Destination {
            validate: |c| Ok(Arc::new(backflow_firestore::validate_destination(c)?)),
            names: |_, object, columns| {
                backflow_firestore::check_destination_names(object, columns)
            },
            // Collection names have no default schema to leave out or case to fold.
            object_key: |_, object| Some(object.to_owned()),
        },
    },
];

/// Connection types this build can read from.
pub fn source_types() -> Vec<&'static str> {
    CONNECTORS
        .iter()
        .filter(|e| matches!(e.role, Role::Source { .. }))
        .map(|e| e.name)
        .collect()
}

/// Connection types this build can write to.
pub fn destination_types() -> Vec<&'static str> {
    CONNECTORS
        .iter()
        .filter(|e| matches!(e.role, Role::Destination { .. }))
        .map(|e| e.name)
        .collect()
}

/// The destination role of type `kind`: its validate, names and object-key functions.
fn destination_role(kind: &str) -> Option<Role> {
    CONNECTORS
        .iter()
        .find(|e| e.name == kind && matches!(e.role, Role::Destination { .. }))
        .map(|e| e.role)
}

fn unknown(kind: &str, role: &str, supported: Vec<&str>) -> ConnectorError {
    ConnectorError::config(
        "type",
        format!(
            "`{kind}` is not a {role} type in this build (supported: {})",
            supported.join(", ")
        ),
    )
}

/// Validates `config` for a source of type `kind` (pure: no I/O).
pub fn source(kind: &str, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
    let validate = CONNECTORS.iter().find_map(|e| match e.role {
        Role::Source { validate } if e.name == kind => Some(validate),
        _ => None,
    });
    match validate {
        Some(validate) => validate(config),
        None => Err(unknown(kind, "source", source_types())),
    }
}

/// Validates `config` for a destination of type `kind` (pure: no I/O).
pub fn destination(kind: &str, config: &Value) -> Result<Arc<dyn Destination>, ConnectorError> {
    match destination_role(kind) {
        Some(Role::Destination { validate, .. }) => validate(config),
        _ => Err(unknown(kind, "destination", destination_types())),
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
    match destination_role(kind) {
        Some(Role::Destination { names, .. }) => names(config, object, columns),
        _ => Ok(()),
    }
}

/// The destination object `object` names on a connection of type `kind`, spelled one way so
/// two syncs writing the same table or collection can be recognised: PostgreSQL and
/// CockroachDB `t` and `public.t`, MySQL `t` and `db.t` (db being the URL's database), SQLite
/// `t` and `MAIN.T` are the same. Other types compare names exactly. `None` when `object`
/// does not parse (its validation says why).
pub fn destination_object_key(kind: &str, config: &Value, object: &str) -> Option<String> {
    match destination_role(kind) {
        Some(Role::Destination { object_key, .. }) => object_key(config, object),
        _ => Some(object.to_owned()),
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

    #[test]
    fn unknown_type_lists_what_is_supported() {
        let e = destination("oracle", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("type"));
        assert!(e.message().contains("oracle"), "{e}");
        assert!(e.message().contains("postgres"), "{e}");
    }
}
