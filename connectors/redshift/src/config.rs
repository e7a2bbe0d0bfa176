//! Redshift connection config: strict parsing and validation without I/O.
//!
//! The connection fields are PostgreSQL's (`url`, `password`, `connect_timeout_secs`) and are
//! validated and resolved by the PostgreSQL connector's own config, so secret references,
//! redaction and error wording are the same; Redshift adds the authentication method and the
//! cursor's fetch size.

use std::fmt;

use backflow_connector_core::{config, ConnectorError};
use backflow_postgres::shared::{PostgresConfig, DEFAULT_CONNECT_TIMEOUT_SECS};
use schemars::JsonSchema;
use serde::Deserialize;

/// Rows per `FETCH` when the config does not say.
pub(crate) const DEFAULT_FETCH_SIZE: usize = 10_000;

/// The largest accepted `fetch_size`: a FETCH's rows travel as one reply, and Redshift keeps
/// cursor results on the leader node.
const MAX_FETCH_SIZE: usize = 1_000_000;

/// How the connection authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// A database user's password, from `password` or the URL (references allowed).
    #[default]
    Password,
    /// IAM (temporary credentials from `GetClusterCredentials`): not supported yet, refused at
    /// validation so a definition never pretends to use it.
    Iam,
}

/// The raw, user-written config of a Redshift connection.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// `postgres://user[:password]@cluster:5439/database`; may hold references.
    url: String,
    /// Overrides the URL's password; a reference (`${env:REDSHIFT_PASSWORD}`) or a literal.
    #[serde(default)]
    password: Option<String>,
    /// Seconds to wait for the cluster before failing with a retryable connectivity error.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_CONNECT_TIMEOUT_SECS))]
    connect_timeout_secs: Option<u64>,
    /// How the connection authenticates (`password`; `iam` is refused until supported).
    #[serde(default)]
    #[schemars(extend("default" = "password"))]
    auth: Auth,
    /// Rows per cursor `FETCH` (default 10000, at most 1000000).
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_FETCH_SIZE))]
    fetch_size: Option<usize>,
}

/// A validated Redshift connection.
#[derive(Clone)]
pub struct RedshiftConfig {
    pub(crate) connection: PostgresConfig,
    pub(crate) fetch_size: usize,
}

impl fmt::Debug for RedshiftConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedshiftConfig")
            .field("connection", &self.connection)
            .field("fetch_size", &self.fetch_size)
            .finish()
    }
}

impl RedshiftConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: RawConfig = config::parse(raw)?;
        if cfg.auth == Auth::Iam {
            return Err(ConnectorError::config(
                "auth",
                "IAM authentication is not supported yet; use `auth: password` with the \
                 password as a secret reference (`password: ${env:REDSHIFT_PASSWORD}`)",
            ));
        }
        let fetch_size = cfg.fetch_size.unwrap_or(DEFAULT_FETCH_SIZE);
        if !(1..=MAX_FETCH_SIZE).contains(&fetch_size) {
            return Err(ConnectorError::config(
                "fetch_size",
                format!("must be between 1 and {MAX_FETCH_SIZE} rows"),
            ));
        }
        // Redshift's own URL scheme is accepted and spoken as PostgreSQL's.
        let url = match cfg.url.strip_prefix("redshift://") {
            Some(rest) => format!("postgres://{rest}"),
            None => cfg.url,
        };
        let mut connection = serde_json::json!({ "url": url });
        if let Some(password) = cfg.password {
            connection["password"] = password.into();
        }
        if let Some(secs) = cfg.connect_timeout_secs {
            connection["connect_timeout_secs"] = secs.into();
        }
        let connection = PostgresConfig::validate(&connection).map_err(|e| {
            if e.field() == Some("url") {
                let message = format!(
                    "{} (expected redshift://, postgres:// or postgresql://)",
                    e.message()
                );
                e.with_message(message)
            } else {
                e
            }
        })?;
        Ok(Self {
            connection,
            fetch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn accepts_redshift_urls_and_references() {
        let cfg = RedshiftConfig::validate(&json!({
            "url": "redshift://analyst@cluster.example.com:5439/dev",
            "password": "${env:REDSHIFT_PASSWORD}",
            "fetch_size": 5000
        }))
        .unwrap();
        assert_eq!(cfg.fetch_size, 5000);
        assert!(format!("{cfg:?}").contains("postgres://analyst@cluster"));
    }

    #[test]
    fn never_shows_a_literal_password() {
        let cfg = RedshiftConfig::validate(&json!({
            "url": "postgres://analyst:hunter2@h:5439/dev"
        }))
        .unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = RedshiftConfig::validate(&json!({"url": "postgres://h/db", "auth": "iam"}))
            .unwrap_err();
        assert_eq!((e.kind(), e.field()), (ErrorKind::Config, Some("auth")));
        assert!(e.message().contains("not supported"), "{e}");

        let e = RedshiftConfig::validate(&json!({"url": "postgres://h/db", "auth": "kerberos"}))
            .unwrap_err();
        assert_eq!(e.field(), Some("auth"));

        let e = RedshiftConfig::validate(&json!({"url": "postgres://h/db", "fetch_size": 0}))
            .unwrap_err();
        assert_eq!(e.field(), Some("fetch_size"));

        let e = RedshiftConfig::validate(&json!({"url": "mysql://h/db"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));

        let e = RedshiftConfig::validate(&json!({"url": "postgres://h/db", "region": "x"}))
            .unwrap_err();
        assert!(e.message().contains("region"), "{e}");
    }
}
