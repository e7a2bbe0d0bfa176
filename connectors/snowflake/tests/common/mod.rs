//! Shared helpers: the fakesnow server from `scripts/services.sh`, unique names, reading.

// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use backflow_connector_contract::server_url;
use backflow_snowflake::SnowflakeSource;
use serde_json::json;

pub use backflow_connector_contract::fixtures::read_all;

/// The database and schema every test table lives in (fakesnow creates them at login).
pub const DATABASE: &str = "BACKFLOW";
pub const SCHEMA: &str = "TEST";

/// `http://host:port` of fakesnow; tests fail (never skip) without it.
pub fn fakesnow_url() -> String {
    server_url("BACKFLOW_TEST_SNOWFLAKE_URL")
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
