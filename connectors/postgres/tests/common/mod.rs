//! Helpers shared by the integration tests; they talk to a real PostgreSQL and fail (never
//! skip) when it cannot be reached.
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use backflow_connector_core::{ReadOptions, Source, WriteMode, WriteTarget};
use backflow_postgres::{
    validate_destination, validate_source, PostgresDestination, PostgresSource,
};
use futures::StreamExt;
use sqlx::{Connection, Executor, PgConnection};

pub const DEFAULT_URL: &str = "postgres://backflow:backflow@127.0.0.1:55432/backflow";

pub fn url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// A plain connection for setting up and inspecting tables, in UTC.
pub async fn admin() -> PgConnection {
    let mut conn = PgConnection::connect(&url()).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is unreachable ({e}); start it with scripts/services.sh start",
            backflow_connector_core::secret::redact_url(&url())
        )
    });
    conn.execute("SET TIME ZONE 'UTC'").await.unwrap();
    conn
}

pub async fn exec(conn: &mut PgConnection, sql: &str) {
    conn.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"));
}

/// A table name unique to this test run, so tests can run in parallel.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

pub fn source() -> PostgresSource {
    validate_source(&serde_json::json!({ "url": url() })).unwrap()
}

pub fn destination() -> PostgresDestination {
    validate_destination(&serde_json::json!({ "url": url() })).unwrap()
}

pub async fn read_all(query: &str, batch_size: usize) -> (SchemaRef, Vec<RecordBatch>) {
    let mut stream = source()
        .read(query, ReadOptions { batch_size })
        .await
        .unwrap_or_else(|e| panic!("read failed: {e}"));
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.unwrap_or_else(|e| panic!("stream failed: {e}")));
    }
    (schema, batches)
}

pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
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

/// Rows of `query`, each rendered as text, sorted: for comparing table contents.
pub async fn rows(conn: &mut PgConnection, query: &str) -> Vec<String> {
    let sql = format!("SELECT t::text FROM ({query}) t ORDER BY 1");
    sqlx::query_scalar::<_, String>(&sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"))
}
