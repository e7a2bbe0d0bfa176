//! Connection config: strict parsing and validation without I/O.
//!
//! `credentials` is stored as the secret reference the user wrote (`${file:/path/key.json}`)
//! and resolved only when a run connects, so the key never reaches the state store or a log.

use std::fmt;

use backflow_connector_core::{config, quoted, secret, ConnectorError};
use schemars::JsonSchema;
use serde::Deserialize;

/// The environment variable Google's client libraries read to talk to an emulator.
pub(crate) const EMULATOR_ENV: &str = "FIRESTORE_EMULATOR_HOST";

/// Where requests go and how they authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An emulator at `host:port`: plaintext, no credentials.
    Emulator(String),
    /// Google's service with the service-account key behind this reference.
    Service {
        /// The secret reference to the service-account JSON key.
        credentials: String,
    },
}

/// The raw, user-written config of a Firestore connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FirestoreConfig {
    /// The Google Cloud project id.
    pub(crate) project: String,
    /// The Firestore database id; `(default)` unless the project has named databases.
    #[serde(default = "default_database")]
    pub(crate) database: String,
    /// A reference to the service-account JSON key: `${file:/path/key.json}` or `${env:NAME}`.
    #[serde(default)]
    #[schemars(extend("writeOnly" = true))]
    pub(crate) credentials: Option<String>,
    /// `host:port` of a Firestore emulator; overrides `FIRESTORE_EMULATOR_HOST`.
    #[serde(default)]
    pub(crate) emulator_host: Option<String>,
}

fn default_database() -> String {
    "(default)".to_string()
}

impl fmt::Debug for FirestoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirestoreConfig")
            .field("project", &self.project)
            .field("database", &self.database)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<reference>"),
            )
            .field("emulator_host", &self.emulator_host)
            .finish()
    }
}

impl FirestoreConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub(crate) fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: FirestoreConfig = config::parse(raw)?;
        check_project(&cfg.project)?;
        check_database(&cfg.database)?;
        if let Some(credentials) = &cfg.credentials {
            if !credentials.trim_start().starts_with("${") || !credentials.trim_end().ends_with('}')
            {
                return Err(ConnectorError::config(
                    "credentials",
                    "must be a secret reference to a service-account JSON key, such as \
                     ${file:/etc/backflow/firestore-key.json} or ${env:FIRESTORE_KEY_JSON}; \
                     the key itself does not belong in a definition",
                ));
            }
            secret::check_references("credentials", credentials)?;
        }
        if let Some(host) = &cfg.emulator_host {
            check_host("emulator_host", host)?;
        }
        Ok(cfg)
    }

    /// `projects/{project}/databases/{database}`.
    pub(crate) fn database_path(&self) -> String {
        format!("projects/{}/databases/{}", self.project, self.database)
    }

    /// Decides where requests go: the config's emulator, then `FIRESTORE_EMULATOR_HOST`, then
    /// Google's service with `credentials` (required in that case).
    pub(crate) fn target(&self) -> Result<Target, ConnectorError> {
        if let Some(host) = &self.emulator_host {
            return Ok(Target::Emulator(host.clone()));
        }
        if let Ok(host) = std::env::var(EMULATOR_ENV) {
            if !host.trim().is_empty() {
                check_host(EMULATOR_ENV, host.trim())?;
                return Ok(Target::Emulator(host.trim().to_string()));
            }
        }
        match &self.credentials {
            Some(credentials) => Ok(Target::Service {
                credentials: credentials.clone(),
            }),
            None => Err(ConnectorError::config(
                "credentials",
                format!(
                    "required to reach Google's Firestore service (no `emulator_host` in the \
                     config and {EMULATOR_ENV} is not set)"
                ),
            )),
        }
    }
}

/// Project ids are lowercase letters, digits and hyphens; legacy domain-scoped ids add `.`
/// and `:` (`example.com:project`).
fn check_project(project: &str) -> Result<(), ConnectorError> {
    if project.is_empty() {
        return Err(ConnectorError::config("project", "is required"));
    }
    let ok = !project.is_empty()
        && project.len() <= 100
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::config(
            "project",
            format!(
                "{} is not a Google Cloud project id (lowercase letters, digits and hyphens)",
                quoted(project)
            ),
        ))
    }
}

/// Database ids are `(default)` or lowercase letters, digits and hyphens.
fn check_database(database: &str) -> Result<(), ConnectorError> {
    let ok = database == "(default)"
        || (!database.is_empty()
            && database.len() <= 63
            && database
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::config(
            "database",
            format!(
                "{} is not a Firestore database id: `(default)` or lowercase letters, digits \
                 and hyphens",
                quoted(database)
            ),
        ))
    }
}

fn check_host(field: &str, host: &str) -> Result<(), ConnectorError> {
    let port = host.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
    match port {
        Some(Ok(_)) if !host.contains('/') => Ok(()),
        _ => Err(ConnectorError::config(
            field,
            format!("{} is not a host:port address", quoted(host)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_the_database_and_accepts_references() {
        let cfg = FirestoreConfig::validate(
            &json!({"project": "demo-1", "credentials": "${file:/etc/key.json}"}),
        )
        .unwrap();
        assert_eq!(cfg.database_path(), "projects/demo-1/databases/(default)");
        assert!(!format!("{cfg:?}").contains("/etc/key.json"));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (json!({}), "project"),
            (json!({"project": "Demo"}), "project"),
            (json!({"project": "p", "database": "Bad_DB"}), "database"),
            (
                json!({"project": "p", "credentials": "{\"type\": \"service_account\"}"}),
                "credentials",
            ),
            (
                json!({"project": "p", "credentials": "${vault:x}"}),
                "credentials",
            ),
            (
                json!({"project": "p", "emulator_host": "localhost"}),
                "emulator_host",
            ),
            (json!({"project": "p", "collection": "x"}), "collection"),
        ];
        for (raw, field) in cases {
            let e = FirestoreConfig::validate(&raw).unwrap_err();
            assert_eq!(e.field(), Some(field), "{raw}: {e}");
        }
        let e = FirestoreConfig::validate(&json!({"project": "p", "colection": "x"})).unwrap_err();
        assert!(e.message().contains("unknown field `colection`"), "{e}");
    }

    #[test]
    fn config_emulator_wins_over_credentials() {
        let cfg = FirestoreConfig::validate(&json!({
            "project": "p", "emulator_host": "127.0.0.1:1", "credentials": "${env:X}"
        }))
        .unwrap();
        assert_eq!(
            cfg.target().unwrap(),
            Target::Emulator("127.0.0.1:1".into())
        );
    }
}
