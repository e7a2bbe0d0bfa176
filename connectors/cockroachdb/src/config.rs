//! Connection config: the PostgreSQL connector's fields plus CockroachDB's write tuning.

use backflow_connector_core::{config, ConnectorError};
use backflow_postgres::shared::{PostgresConfig, DEFAULT_CONNECT_TIMEOUT_SECS};
use schemars::JsonSchema;
use serde::Deserialize;

/// Rows per statement when the config does not say: CockroachDB recommends batches of a few
/// hundred rows, well under its transaction size limits.
const DEFAULT_BATCH_ROWS: usize = 500;
/// Retries of a statement that failed with a serialization error (SQLSTATE 40001).
const DEFAULT_MAX_RETRIES: u32 = 8;

/// The raw, user-written config of a CockroachDB connection.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// `postgresql://user[:password]@host[:port]/database[?sslmode=…]`; may hold references.
    url: String,
    /// Overrides the URL's password; a reference (`${env:CRDB_PASSWORD}`) or a literal.
    #[serde(default)]
    password: Option<String>,
    /// Seconds to wait for the server before failing with a retryable connectivity error.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_CONNECT_TIMEOUT_SECS))]
    connect_timeout_secs: Option<u64>,
    /// Most rows one statement (one implicit transaction) carries: 1 to 10000, default 500.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_BATCH_ROWS))]
    batch_rows: Option<usize>,
    /// Retries of a statement refused with a serialization conflict (40001): at most 100,
    /// default 8.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_MAX_RETRIES))]
    max_retries: Option<u32>,
}

/// A checked CockroachDB config.
#[derive(Debug, Clone)]
pub(crate) struct CockroachConfig {
    /// Connection settings, shared with the PostgreSQL connector (secrets stay references).
    pub(crate) connection: PostgresConfig,
    /// Most rows one statement (one implicit transaction) carries.
    pub(crate) batch_rows: usize,
    /// How often a statement refused with SQLSTATE 40001 is retried before the run fails.
    pub(crate) max_retries: u32,
}

impl CockroachConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub(crate) fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: Raw = config::parse(raw)?;
        let mut connection = serde_json::json!({ "url": cfg.url });
        if let Some(p) = cfg.password {
            connection["password"] = p.into();
        }
        if let Some(t) = cfg.connect_timeout_secs {
            connection["connect_timeout_secs"] = t.into();
        }
        let connection = PostgresConfig::validate(&connection)?;
        let batch_rows = cfg.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS);
        if !(1..=10_000).contains(&batch_rows) {
            return Err(ConnectorError::config(
                "batch_rows",
                format!("must be between 1 and 10000, got {batch_rows}"),
            ));
        }
        let max_retries = cfg.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if max_retries > 100 {
            return Err(ConnectorError::config(
                "max_retries",
                format!("must be at most 100, got {max_retries}"),
            ));
        }
        Ok(Self {
            connection,
            batch_rows,
            max_retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let e = CockroachConfig::validate(&json!({"url": "postgresql://h:26257/db", "batch": 5}))
            .unwrap_err();
        assert!(e.message().contains("batch"), "{e}");
        let e = CockroachConfig::validate(&json!({"url": "mysql://h/db"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));
        let e = CockroachConfig::validate(&json!({"url": "postgresql://h/db", "batch_rows": 0}))
            .unwrap_err();
        assert_eq!(e.field(), Some("batch_rows"));
        let e =
            CockroachConfig::validate(&json!({"url": "postgresql://h/db", "max_retries": 1000}))
                .unwrap_err();
        assert_eq!(e.field(), Some("max_retries"));
        let e = CockroachConfig::validate(
            &json!({"url": "postgresql://h/db", "connect_timeout_secs": 0}),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("connect_timeout_secs"));
    }

    #[test]
    fn defaults_and_redaction() {
        let c = CockroachConfig::validate(&json!({
            "url": "postgresql://root:hunter2@localhost:26257/defaultdb?sslmode=disable"
        }))
        .unwrap();
        assert_eq!(c.batch_rows, DEFAULT_BATCH_ROWS);
        assert_eq!(c.max_retries, DEFAULT_MAX_RETRIES);
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
