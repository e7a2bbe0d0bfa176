//! Connection config: strict parsing and validation without I/O, and connecting.
//!
//! The config stores secret references as written; they are resolved only in
//! [`MysqlConfig::connect`], by the process that runs the sync, and the resolved values never
//! reach an error, a log line or a `Debug` rendering.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use backflow_connector_core::{config, quoted, secret, ConnectorError};
use schemars::JsonSchema;
use serde::Deserialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Executor};

use crate::error::{classify, classify_during};

/// How long connecting may take when the config does not say.
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;

/// The session's SQL mode: strict, so a value the column cannot hold is an error (a rejected
/// row) instead of a silently truncated warning; `NO_BACKSLASH_ESCAPES`, so string literals
/// only need their quotes doubled; `NO_AUTO_VALUE_ON_ZERO`, so a key 0 is stored as 0.
const SQL_MODE: &str = "STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO";

/// The raw, user-written config of a MySQL or MariaDB connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MysqlConfig {
    /// `mysql://user[:password]@host[:port]/database[?ssl-mode=…]`; may hold references.
    pub(crate) url: String,
    /// Overrides the URL's password; a reference (`${env:DB_PASSWORD}`) or a literal.
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Seconds to wait for the server before failing with a retryable connectivity error.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_CONNECT_TIMEOUT_SECS))]
    pub(crate) connect_timeout_secs: Option<u64>,
}

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &secret::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

/// What a connection is used for: source sessions run the query read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Source,
    Destination,
}

impl MysqlConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub(crate) fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: MysqlConfig = config::parse(raw)?;
        secret::check_references("url", &cfg.url)?;
        if let Some(password) = &cfg.password {
            secret::check_references("password", password)?;
        }
        // Parse the URL with every reference replaced by a placeholder, so a malformed URL
        // fails here and not at the first run. The url crate's messages never quote the input.
        let shaped = secret::replace_references(&cfg.url, "x");
        let parsed = url::Url::parse(&shaped)
            .map_err(|e| ConnectorError::config("url", format!("not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "mysql" | "mariadb") {
            return Err(ConnectorError::config(
                "url",
                format!(
                    "expected a mysql:// or mariadb:// URL, got scheme {}",
                    quoted(parsed.scheme())
                ),
            ));
        }
        if parsed.host_str().unwrap_or("").is_empty() {
            return Err(ConnectorError::config("url", "the URL names no host"));
        }
        if cfg.connect_timeout_secs == Some(0) {
            return Err(ConnectorError::config(
                "connect_timeout_secs",
                "must be at least 1 second",
            ));
        }
        Ok(cfg)
    }

    /// The database the URL's path selects (`mysql://h/app` → `app`), percent-decoded; the
    /// database of an unqualified table.
    pub(crate) fn default_database(&self) -> Option<String> {
        let shaped = secret::replace_references(&self.url, "x");
        let parsed = url::Url::parse(&shaped).ok()?;
        let path = parsed.path().trim_start_matches('/');
        if path.is_empty() {
            return None;
        }
        let bytes = path.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
            match (
                bytes[i],
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (b'%', Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    }

    /// The URL with any password masked, for messages.
    pub(crate) fn redacted_url(&self) -> String {
        secret::redact_url(&self.url)
    }

    /// Resolves the secrets, opens one dedicated connection and sets the session up: UTC,
    /// utf8mb4, strict SQL mode.
    pub(crate) async fn connect(&self, role: Role) -> Result<MySqlConnection, ConnectorError> {
        let url = secret::resolve("url", &self.url)?;
        let password = self
            .password
            .as_deref()
            .map(|p| secret::resolve("password", p))
            .transpose()?;
        // Everything that may echo a secret back is scrubbed before it leaves this function.
        let scrub = |e: ConnectorError| -> ConnectorError {
            let mut hidden = vec![url.expose().to_string()];
            if let Some(p) = &password {
                hidden.push(p.expose().to_string());
            }
            if let Some(p) = url::Url::parse(url.expose())
                .ok()
                .and_then(|u| u.password().map(str::to_string))
            {
                hidden.push(p);
            }
            let mut message = e.message().to_string();
            let before = message.clone();
            for h in hidden.iter().filter(|h| !h.is_empty()) {
                message = message.replace(h.as_str(), "***");
            }
            if message == before {
                e
            } else {
                e.with_message(message)
            }
        };
        // sqlx knows the `mysql` scheme only; `mariadb://` is the same protocol.
        let normalized = match url.expose().strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.expose().to_string(),
        };
        let mut options = MySqlConnectOptions::from_str(&normalized)
            .map_err(|e| scrub(classify(e)))?
            .charset("utf8mb4")
            .pipes_as_concat(false)
            .timezone(Some("+00:00".to_string()))
            .disable_statement_logging();
        if let Some(p) = &password {
            options = options.password(p.expose());
        }
        let secs = self
            .connect_timeout_secs
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        let mut conn =
            match tokio::time::timeout(Duration::from_secs(secs), options.connect()).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(scrub(classify(e))
                        .context(format!("connecting to {}", self.redacted_url())))
                }
                Err(_) => {
                    return Err(ConnectorError::connectivity(format!(
                        "connecting to {} timed out after {secs}s",
                        self.redacted_url()
                    )))
                }
            };
        let setup = format!("SET SESSION sql_mode = '{SQL_MODE}', time_zone = '+00:00'");
        conn.execute(setup.as_str())
            .await
            .map_err(classify_during("setting up the session"))?;
        if role == Role::Destination {
            // Batches are applied in explicit transactions; READ COMMITTED keeps InnoDB from
            // taking gap locks on the keys a batch looks up.
            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .await
                .map_err(classify_during("setting up the session"))?;
        }
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn accepts_references_and_redacts_debug() {
        let cfg = MysqlConfig::validate(&json!({
            "url": "mysql://app:hunter2@${env:DB_HOST}:3306/app",
            "password": "${env:DB_PASSWORD}",
            "connect_timeout_secs": 5
        }))
        .unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("app:***@"), "{debug}");
        assert!(MysqlConfig::validate(&json!({"url": "mariadb://h/db"})).is_ok());
    }

    #[test]
    fn the_default_database_is_the_decoded_url_path() {
        let db = |url: &str| {
            MysqlConfig::validate(&json!({ "url": url }))
                .unwrap()
                .default_database()
        };
        assert_eq!(
            db("mysql://u:p@h:3306/app?ssl-mode=DISABLED").as_deref(),
            Some("app")
        );
        assert_eq!(db("mysql://h/my%20db").as_deref(), Some("my db"));
        assert_eq!(db("mysql://h"), None);
        assert_eq!(db("mysql://h/"), None);
    }

    #[test]
    fn errors_name_the_field() {
        let e = MysqlConfig::validate(&json!({"url": "mysql://h/db", "pasword": "x"})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("pasword"), "{e}");
        let e = MysqlConfig::validate(&json!({})).unwrap_err();
        assert!(e.message().contains("url"), "{e}");
        let e = MysqlConfig::validate(&json!({"url": "postgres://h/db"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));
        let e = MysqlConfig::validate(&json!({"url": "not a url"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));
        let e = MysqlConfig::validate(&json!({"url": "mysql://h/db", "password": "${vault:x}"}))
            .unwrap_err();
        assert_eq!(e.field(), Some("password"));
        let e = MysqlConfig::validate(&json!({"url": "mysql://h/db", "connect_timeout_secs": 0}))
            .unwrap_err();
        assert_eq!(e.field(), Some("connect_timeout_secs"));
        let e = MysqlConfig::validate(&json!({"url": "mysql://h/db", "connect_timeout_secs": "x"}))
            .unwrap_err();
        assert_eq!(e.field(), Some("connect_timeout_secs"));
    }
}
