//! The explicit registry: one function maps a connection's `type` to its connector.
//!
//! No global registration magic: adding a connector means adding a cargo feature and a match
//! arm here, so what a build supports is visible in one place (and in `types`).

use std::sync::Arc;

use backflow_connector_core::{ConnectorError, Destination, Source};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_lists_what_is_supported() {
        let e = destination("oracle", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("type"));
        assert!(e.message().contains("oracle"), "{e}");
        assert!(e.message().contains("postgres"), "{e}");
    }
}
