//! Helpers shared by the integration tests; they talk to a real PostgreSQL and fail (never
//! skip) when it cannot be reached.
// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use backflow_connector_contract::fixtures;
use backflow_postgres::{
    validate_destination, validate_source, PostgresDestination, PostgresSource,
};
use sqlx::{Connection, Executor, PgConnection};

pub use backflow_connector_contract::fixtures::{schema, target};
pub use backflow_connector_contract::unique_name as unique;

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

pub fn source() -> PostgresSource {
    validate_source(&serde_json::json!({ "url": url() })).unwrap()
}

pub fn destination() -> PostgresDestination {
    validate_destination(&serde_json::json!({ "url": url() })).unwrap()
}

/// Every batch of `query` read through [`source`]; any error fails the test.
pub async fn read_all(query: &str, batch_size: usize) -> (SchemaRef, Vec<RecordBatch>) {
    fixtures::read_all(&source(), query, batch_size)
        .await
        .unwrap_or_else(|e| panic!("read failed: {e}"))
}

/// Rows of `query`, each rendered as text, sorted: for comparing table contents.
pub async fn rows(conn: &mut PgConnection, query: &str) -> Vec<String> {
    let sql = format!("SELECT t::text FROM ({query}) t ORDER BY 1");
    sqlx::query_scalar::<_, String>(&sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"))
}
