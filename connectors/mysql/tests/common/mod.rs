//! Helpers shared by the integration tests; they talk to a real MariaDB and fail (never skip)
//! when it cannot be reached.
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use backflow_connector_core::{ReadOptions, Source, WriteMode, WriteTarget};
use backflow_mysql::{validate_destination, validate_source, MysqlDestination, MysqlSource};
use futures::StreamExt;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor, Row};

/// The test server's URL from `BACKFLOW_TEST_MYSQL_URL`; a missing variable fails the test.
pub fn url() -> String {
    std::env::var("BACKFLOW_TEST_MYSQL_URL").unwrap_or_else(|_| {
        panic!(
            "BACKFLOW_TEST_MYSQL_URL is not set; run `scripts/services.sh start` and \
             `eval \"$(scripts/services.sh env)\"`"
        )
    })
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

/// A table name unique to this test run, so tests can run in parallel.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

pub fn source() -> MysqlSource {
    validate_source(&serde_json::json!({ "url": url() })).unwrap()
}

pub fn destination() -> MysqlDestination {
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
