//! Shared helpers: the fakesnow server from `scripts/services.sh`, unique names, reading.

#![allow(dead_code)]

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use backflow_connector_core::{ConnectorError, ReadOptions, Source};
use backflow_snowflake::SnowflakeSource;
use futures::TryStreamExt;
use serde_json::json;

/// The database and schema every test table lives in (fakesnow creates them at login).
pub const DATABASE: &str = "BACKFLOW";
pub const SCHEMA: &str = "TEST";

/// `http://host:port` of fakesnow; tests fail (never skip) without it.
pub fn fakesnow_url() -> String {
    std::env::var("BACKFLOW_TEST_SNOWFLAKE_URL").unwrap_or_else(|_| {
        panic!(
            "BACKFLOW_TEST_SNOWFLAKE_URL is not set: run `scripts/services.sh start` and \
             `eval \"$(scripts/services.sh env)\"` (fakesnow's HTTP server)"
        )
    })
}

/// A connection config for a server at `url` (`http://host:port`).
pub fn config_for(url: &str) -> serde_json::Value {
    let rest = url
        .strip_prefix("http://")
        .expect("the test URL is http://host:port");
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .expect("host:port");
    json!({
        "account": "backflow",
        "user": "backflow",
        "database": DATABASE,
        "schema": SCHEMA,
        "warehouse": "TEST_WH",
        "credential": {"password": "fakesnow-ignores-it"},
        "host": host,
        "port": port.parse::<u16>().expect("a port"),
        "protocol": "http",
    })
}

/// A source against fakesnow.
pub fn source() -> SnowflakeSource {
    backflow_snowflake::validate_source(&config_for(&fakesnow_url())).expect("valid config")
}

/// A table name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{}_{}",
        prefix.to_uppercase(),
        uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase()
    )
}

/// Reads a whole query result.
pub async fn read_all(
    source: &SnowflakeSource,
    sql: &str,
    batch_size: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>), ConnectorError> {
    let stream = source.read(sql, ReadOptions { batch_size }).await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok((schema, batches))
}
