//! Helpers shared by the SQLite integration tests.

// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use std::path::Path;

use backflow_sqlite::{validate_destination, SqliteDestination};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Executor};

pub use backflow_connector_contract::fixtures::target;

pub fn destination(path: &Path) -> SqliteDestination {
    validate_destination(&json!({ "path": path.to_str().unwrap() })).unwrap()
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
