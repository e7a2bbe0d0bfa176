//! Pure validation of a `sqlite` connection config, and the connection options built from it.

use std::path::PathBuf;
use std::time::Duration;

use backflow_connector_core::{quoted, ConnectorError, ErrorKind};
use schemars::JsonSchema;
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use sqlx::ConnectOptions;

use crate::error::from_sqlx;

fn default_true() -> bool {
    true
}

fn default_busy_timeout_ms() -> u64 {
    5000
}

/// The raw, user-written config of a SQLite connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// The database file; relative paths resolve against the process's current directory.
    path: String,
    /// Whether a destination may create the file when it does not exist (sources never do).
    #[serde(default = "default_true")]
    create_if_missing: bool,
    /// Milliseconds a statement waits on another connection's lock before failing as busy.
    #[serde(default = "default_busy_timeout_ms")]
    busy_timeout_ms: u64,
}

/// A validated SQLite connection: which file, and how patient to be with other writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file (relative paths resolve against the process's current directory).
    pub path: PathBuf,
    /// Whether a destination may create the file when it does not exist (sources never do).
    pub create_if_missing: bool,
    /// How long a statement waits on another connection's lock before failing as busy.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// Parses and checks a raw config without any I/O.
    pub(crate) fn parse(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let raw: RawConfig = backflow_connector_core::config::parse(raw)?;
        if raw.path.trim().is_empty() {
            return Err(ConnectorError::config("path", "must not be empty"));
        }
        if raw.path == ":memory:" || raw.path.starts_with("file::memory:") {
            return Err(ConnectorError::config(
                "path",
                "in-memory databases vanish with their connection; use a file path",
            ));
        }
        Ok(Self {
            path: PathBuf::from(raw.path),
            create_if_missing: raw.create_if_missing,
            busy_timeout: Duration::from_millis(raw.busy_timeout_ms),
        })
    }

    fn base_options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .busy_timeout(self.busy_timeout)
            .foreign_keys(true)
            // Statements carry no row values (they are bound), but one log line per row would
            // drown everything else.
            .disable_statement_logging()
    }

    /// Whether the database file exists, so a missing file is reported as `not_found` naming the
    /// path rather than SQLite's bare "unable to open database file".
    pub(crate) async fn file_exists(&self) -> Result<bool, ConnectorError> {
        match tokio::fs::metadata(&self.path).await {
            Ok(m) if m.is_dir() => Err(ConnectorError::new(
                ErrorKind::Config,
                format!(
                    "{} is a directory, not a database file",
                    quoted(&self.path.display().to_string())
                ),
            )
            .with_field("path")),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ConnectorError::connectivity(format!(
                "cannot stat {}: {e}",
                quoted(&self.path.display().to_string())
            ))),
        }
    }

    fn missing(&self) -> ConnectorError {
        ConnectorError::new(
            ErrorKind::NotFound,
            format!(
                "database file {} does not exist",
                quoted(&self.path.display().to_string())
            ),
        )
        .with_field("path")
    }

    /// Opens the writer's connection: WAL, so readers of the application are not blocked while
    /// a batch commits; the file is created when missing only if the config allows it.
    pub(crate) async fn connect_writer(&self) -> Result<SqliteConnection, ConnectorError> {
        if !self.create_if_missing && !self.file_exists().await? {
            return Err(self.missing());
        }
        self.base_options()
            .create_if_missing(self.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .map_err(|e| self.open_error(&e))
    }

    /// Opens an existing file without creating it, and without changing its journal mode.
    /// `query_only` makes a source unable to modify the database whatever query it is given.
    pub(crate) async fn connect_existing(
        &self,
        query_only: bool,
    ) -> Result<SqliteConnection, ConnectorError> {
        if !self.file_exists().await? {
            return Err(self.missing());
        }
        let mut options = self.base_options().create_if_missing(false);
        if query_only {
            options = options.pragma("query_only", "ON");
        }
        options.connect().await.map_err(|e| self.open_error(&e))
    }

    fn open_error(&self, e: &sqlx::Error) -> ConnectorError {
        from_sqlx(e).context(format!(
            "cannot open {}",
            quoted(&self.path.display().to_string())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_errors() {
        let c = SqliteConfig::parse(&json!({"path": "app.db"})).unwrap();
        assert!(c.create_if_missing);
        assert_eq!(c.busy_timeout, Duration::from_millis(5000));
        let c = SqliteConfig::parse(
            &json!({"path": "app.db", "create_if_missing": false, "busy_timeout_ms": 10}),
        )
        .unwrap();
        assert!(!c.create_if_missing);
        assert_eq!(c.busy_timeout, Duration::from_millis(10));

        let e = SqliteConfig::parse(&json!({})).unwrap_err();
        assert!(e.message().contains("missing field `path`"), "{e}");
        let e = SqliteConfig::parse(&json!({"path": "a", "busy_timeout_ms": "x"})).unwrap_err();
        assert_eq!(e.field(), Some("busy_timeout_ms"));
        let e = SqliteConfig::parse(&json!({"path": "a", "pth": 1})).unwrap_err();
        assert!(e.message().contains("unknown field `pth`"), "{e}");
        let e = SqliteConfig::parse(&json!({"path": " "})).unwrap_err();
        assert_eq!(e.field(), Some("path"));
        let e = SqliteConfig::parse(&json!({"path": ":memory:"})).unwrap_err();
        assert_eq!(e.field(), Some("path"));
    }
}
