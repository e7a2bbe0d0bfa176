//! Connection config: strict parsing and validation without I/O, and connecting.
//!
//! The config stores secret references as written; they are resolved only in [`connect`],
//! by the process that runs the sync, and the resolved values never reach an error, a log
//! line or a `Debug` rendering.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use backflow_connector_core::{config, quoted, secret, ConnectorError};
use schemars::JsonSchema;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::classify;

/// How long connecting may take when the config does not say.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;

/// The raw, user-written config of a PostgreSQL connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user[:password]@host[:port]/database[?sslmode=…]`; may hold references.
    pub(crate) url: String,
    /// Overrides the URL's password; a reference (`${env:PG_PASSWORD}`) or a literal.
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Seconds to wait for the server before failing with a retryable connectivity error.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_CONNECT_TIMEOUT_SECS))]
    pub(crate) connect_timeout_secs: Option<u64>,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &secret::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

/// What a connection is used for: sources get read-only sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read-only session (`default_transaction_read_only`).
    Source,
    /// Writing session in UTC.
    Destination,
    /// A session with only the startup parameters every server speaking PostgreSQL's
    /// protocol accepts (Redshift refuses the `options` parameter the other roles send); the
    /// caller sets what it needs with statements (`BEGIN READ ONLY`).
    Plain,
}

impl PostgresConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: PostgresConfig = config::parse(raw)?;
        secret::check_references("url", &cfg.url)?;
        if let Some(password) = &cfg.password {
            secret::check_references("password", password)?;
        }
        // Parse the URL with every reference replaced by a placeholder, so a malformed URL
        // fails here and not at the first run. The url crate's messages never quote the input.
        let shaped = secret::replace_references(&cfg.url, "x");
        let parsed = url::Url::parse(&shaped)
            .map_err(|e| ConnectorError::config("url", format!("not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(ConnectorError::config(
                "url",
                format!(
                    "expected a postgres:// or postgresql:// URL, got scheme {}",
                    quoted(parsed.scheme())
                ),
            ));
        }
        if cfg.connect_timeout_secs == Some(0) {
            return Err(ConnectorError::config(
                "connect_timeout_secs",
                "must be at least 1 second",
            ));
        }
        Ok(cfg)
    }

    /// The URL with any password masked, for messages.
    pub fn redacted_url(&self) -> String {
        secret::redact_url(&self.url)
    }

    /// Resolves the secrets and opens one dedicated connection.
    pub async fn connect(&self, role: Role) -> Result<PgConnection, ConnectorError> {
        let url = secret::resolve("url", &self.url)?;
        let password = self
            .password
            .as_deref()
            .map(|p| secret::resolve("password", p))
            .transpose()?;
        // Everything that may echo a secret back is scrubbed before it leaves this function.
        let scrub = |e: ConnectorError| -> ConnectorError {
            let mut message = e.message().to_string();
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
            let mut changed = false;
            for h in hidden.iter().filter(|h| !h.is_empty()) {
                if message.contains(h.as_str()) {
                    message = message.replace(h.as_str(), "***");
                    changed = true;
                }
            }
            if changed {
                e.with_message(message)
            } else {
                e
            }
        };
        let mut options = PgConnectOptions::from_str(url.expose())
            .map_err(|e| scrub(classify(e)))?
            .application_name("backflow")
            .disable_statement_logging();
        if let Some(p) = &password {
            options = options.password(p.expose());
        }
        match role {
            // A source only reads: a query such as `DELETE … RETURNING` must not change the
            // warehouse because it was pasted into a sync definition.
            Role::Source => {
                options = options.options([("default_transaction_read_only", "on")]);
            }
            // Casts between `timestamp` and `timestamptz` columns then mean UTC, whatever the
            // server's default zone.
            Role::Destination => options = options.options([("TimeZone", "UTC")]),
            Role::Plain => {}
        }
        let secs = self
            .connect_timeout_secs
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        match tokio::time::timeout(
            Duration::from_secs(secs),
            PgConnection::connect_with(&options),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(scrub(classify(e))
                .context(format!("connecting to {}", secret::redact_url(&self.url)))),
            Err(_) => Err(ConnectorError::connectivity(format!(
                "connecting to {} timed out after {secs}s",
                secret::redact_url(&self.url)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn accepts_references_and_redacts_debug() {
        let cfg = PostgresConfig::validate(&json!({
            "url": "postgres://app:hunter2@${env:PG_HOST}:5432/app",
            "password": "${env:PG_PASSWORD}",
            "connect_timeout_secs": 5
        }))
        .unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("app:***@"), "{debug}");

        let literal = PostgresConfig::validate(&json!({
            "url": "postgres://app@h/app", "password": "letmein"
        }))
        .unwrap();
        assert!(!format!("{literal:?}").contains("letmein"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = PostgresConfig::validate(&json!({"url": "postgres://h/db", "pasword": "x"}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("pasword"), "{e}");

        let e = PostgresConfig::validate(&json!({})).unwrap_err();
        assert!(e.message().contains("url"), "{e}");

        let e = PostgresConfig::validate(&json!({"url": "mysql://h/db"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));

        let e =
            PostgresConfig::validate(&json!({"url": "postgres://h/db", "password": "${vault:x}"}))
                .unwrap_err();
        assert_eq!(e.field(), Some("password"));

        let e = PostgresConfig::validate(
            &json!({"url": "postgres://h/db", "connect_timeout_secs": "x"}),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("connect_timeout_secs"));

        let e =
            PostgresConfig::validate(&json!({"url": "postgres://h/db", "connect_timeout_secs": 0}))
                .unwrap_err();
        assert_eq!(e.field(), Some("connect_timeout_secs"));
    }

    #[test]
    fn replaces_references() {
        assert_eq!(
            secret::replace_references("postgres://u:${env:P}@${env:H}/d", "x"),
            "postgres://u:x@x/d"
        );
    }
}
