//! Helpers shared by the SQLite integration tests.

#![allow(dead_code)]

use std::path::Path;

use arrow::datatypes::SchemaRef;
use backflow_connector_core::{WriteMode, WriteTarget};
use backflow_sqlite::{validate_destination, SqliteDestination};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Executor};

pub fn destination(path: &Path) -> SqliteDestination {
    validate_destination(&json!({ "path": path.to_str().unwrap() })).unwrap()
}

pub fn target(
    object: &str,
    schema: SchemaRef,
    primary_key: &[&str],
    mode: WriteMode,
    create_table: bool,
) -> WriteTarget {
    WriteTarget {
        object: object.to_string(),
        schema,
        primary_key: primary_key.iter().map(|s| s.to_string()).collect(),
        mode,
        create_table,
        initial_load: false,
        deletes: false,
    }
}

/// A plain connection for arranging and inspecting the database around the connector.
pub async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap()
}

pub async fn exec(path: &Path, sql: &str) {
    let mut conn = raw(path).await;
    conn.execute(sql).await.unwrap();
}
