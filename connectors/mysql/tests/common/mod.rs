//! Helpers shared by the integration tests; they talk to a real MariaDB and fail (never skip)
//! when it cannot be reached.
// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use backflow_connector_contract::{fixtures, server_url};
use backflow_mysql::{validate_destination, validate_source, MysqlDestination, MysqlSource};
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor, Row};

pub use backflow_connector_contract::fixtures::{schema, target};
pub use backflow_connector_contract::unique_name as unique;

/// The test server's URL from `BACKFLOW_TEST_MYSQL_URL`; a missing variable fails the test.
pub fn url() -> String {
    server_url("BACKFLOW_TEST_MYSQL_URL")
}

/// A plain connection for setting up and inspecting tables, in UTC.
pub async fn admin() -> MySqlConnection {
    let mut conn = MySqlConnection::connect(&url()).await.unwrap_or_else(|e| {
        panic!(
            "MariaDB at {} is unreachable ({e}); start it with scripts/services.sh start",
            backflow_connector_core::secret::redact_url(&url())
        )
    });
    conn.execute("SET time_zone = '+00:00'").await.unwrap();
    conn
}

pub async fn exec(conn: &mut MySqlConnection, sql: &str) {
    conn.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"));
}

pub fn source() -> MysqlSource {
    validate_source(&serde_json::json!({ "url": url() })).unwrap()
}

pub fn destination() -> MysqlDestination {
    validate_destination(&serde_json::json!({ "url": url() })).unwrap()
}

/// Every batch of `query` read through [`source`]; any error fails the test.
pub async fn read_all(query: &str, batch_size: usize) -> (SchemaRef, Vec<RecordBatch>) {
    fixtures::read_all(&source(), query, batch_size)
        .await
        .unwrap_or_else(|e| panic!("read failed: {e}"))
}

/// Rows of `query`, each rendered as `a|b|c` text (NULL as `NULL`), sorted.
pub async fn rows(conn: &mut MySqlConnection, query: &str) -> Vec<String> {
    let sql = format!("SELECT * FROM ({query}) AS q");
    let mut out: Vec<String> = (&mut *conn)
        .fetch_all(sql.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get_unchecked::<Option<Vec<u8>>, _>(i)
                        .unwrap()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_else(|| "NULL".to_string())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    out
}
