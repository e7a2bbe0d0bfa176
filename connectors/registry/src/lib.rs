//! The explicit registry: one function maps a connection's `type` to its connector.
//!
//! No global registration magic: adding a connector means adding a cargo feature and a match
//! arm here, so what a build supports is visible in one place (and in `types`).

use std::sync::Arc;

use backflow_connector_core::{ConnectorError, Destination, NameError, Source};
use serde_json::Value;

/// Connection types this build can read from.
pub fn source_types() -> Vec<&'static str> {
    let mut types = Vec::new();
    if cfg!(feature = "postgres") {
        types.push("postgres");
    }
    if cfg!(feature = "files") {
        types.push("files");
    }
    if cfg!(feature = "sqlite") {
        types.push("sqlite");
    }
    if cfg!(feature = "mysql") {
        types.push("mysql");
    }
    if cfg!(feature = "redshift") {
        types.push("redshift");
    }
    if cfg!(feature = "snowflake") {
        types.push("snowflake");
    }
    if cfg!(feature = "bigquery") {
        types.push("bigquery");
    }
    types
}

/// Connection types this build can write to.
pub fn destination_types() -> Vec<&'static str> {
    let mut types = Vec::new();
    if cfg!(feature = "postgres") {
        types.push("postgres");
    }
    if cfg!(feature = "sqlite") {
        types.push("sqlite");
    }
    if cfg!(feature = "mysql") {
        types.push("mysql");
    }
    if cfg!(feature = "mongodb") {
        types.push("mongodb");
    }
    if cfg!(feature = "cockroachdb") {
        types.push("cockroachdb");
    }
    if cfg!(feature = "firestore") {
        types.push("firestore");
    }
    types
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
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Arc::new(backflow_postgres::validate_source(config)?)),
        #[cfg(feature = "files")]
        "files" => Ok(Arc::new(backflow_files::validate_source(config)?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(backflow_sqlite::validate_source(config)?)),
        #[cfg(feature = "mysql")]
        "mysql" => Ok(Arc::new(backflow_mysql::validate_source(config)?)),
        #[cfg(feature = "redshift")]
        "redshift" => Ok(Arc::new(backflow_redshift::validate_source(config)?)),
        #[cfg(feature = "snowflake")]
        "snowflake" => Ok(Arc::new(backflow_snowflake::validate_source(config)?)),
        #[cfg(feature = "bigquery")]
        "bigquery" => Ok(Arc::new(backflow_bigquery::validate_source(config)?)),
        _ => Err(unknown(kind, "source", source_types())),
    }
}

/// Validates `config` for a destination of type `kind` (pure: no I/O).
pub fn destination(kind: &str, config: &Value) -> Result<Arc<dyn Destination>, ConnectorError> {
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Arc::new(backflow_postgres::validate_destination(config)?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(backflow_sqlite::validate_destination(config)?)),
        #[cfg(feature = "mysql")]
        "mysql" => Ok(Arc::new(backflow_mysql::validate_destination(config)?)),
        #[cfg(feature = "mongodb")]
        "mongodb" => Ok(Arc::new(backflow_mongodb::validate_destination(config)?)),
        #[cfg(feature = "cockroachdb")]
        "cockroachdb" => Ok(Arc::new(backflow_cockroachdb::validate_destination(
            config,
        )?)),
        #[cfg(feature = "firestore")]
        "firestore" => Ok(Arc::new(backflow_firestore::validate_destination(config)?)),
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
    let _ = (config, object, columns);
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => backflow_postgres::check_destination_names(object, columns),
        #[cfg(feature = "sqlite")]
        "sqlite" => backflow_sqlite::check_destination_names(object, columns),
        #[cfg(feature = "mysql")]
        "mysql" => backflow_mysql::check_destination_names(object, columns),
        #[cfg(feature = "mongodb")]
        "mongodb" => backflow_mongodb::check_destination_names(
            backflow_mongodb::database_of(config).as_deref(),
            object,
            columns,
        ),
        #[cfg(feature = "cockroachdb")]
        "cockroachdb" => backflow_cockroachdb::check_destination_names(object, columns),
        #[cfg(feature = "firestore")]
        "firestore" => backflow_firestore::check_destination_names(object, columns),
        _ => Ok(()),
    }
}

/// The destination object `object` names on a connection of type `kind`, spelled one way so
/// two syncs writing the same table or collection can be recognised: PostgreSQL and
/// CockroachDB `t` and `public.t`, MySQL `t` and `db.t` (db being the URL's database), SQLite
/// `t` and `MAIN.T` are the same. Other types compare names exactly. `None` when `object`
/// does not parse (its validation says why).
pub fn destination_object_key(kind: &str, config: &Value, object: &str) -> Option<String> {
    let _ = config;
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => backflow_postgres::object_key(object),
        #[cfg(feature = "cockroachdb")]
        "cockroachdb" => backflow_cockroachdb::object_key(object),
        #[cfg(feature = "mysql")]
        "mysql" => backflow_mysql::object_key(config, object),
        #[cfg(feature = "sqlite")]
        "sqlite" => backflow_sqlite::object_key(object),
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

    #[test]
    fn unknown_type_lists_what_is_supported() {
        let e = destination("oracle", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("type"));
        assert!(e.message().contains("oracle"), "{e}");
        assert!(e.message().contains("postgres"), "{e}");
    }
}
