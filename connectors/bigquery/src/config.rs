//! Connection config: strict parsing and validation without I/O.
//!
//! `credentials` is stored as the secret reference the user wrote (`${file:/path/key.json}`)
//! and resolved only when a run connects, so the key never reaches the state store or a log.

use std::fmt;

use backflow_connector_core::{config, quoted, secret, ConnectorError};
use schemars::JsonSchema;
use serde::Deserialize;

/// Google's BigQuery REST endpoint.
pub(crate) const DEFAULT_API_ENDPOINT: &str = "https://bigquery.googleapis.com";
/// Google's BigQuery Storage (gRPC) endpoint.
pub(crate) const DEFAULT_STORAGE_ENDPOINT: &str = "https://bigquerystorage.googleapis.com";
/// How many Storage Read streams are read at once when the config does not say.
const DEFAULT_READ_STREAMS: usize = 4;
/// The most streams one read may read at once.
const MAX_READ_STREAMS: usize = 64;

/// The raw, user-written config of a BigQuery connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BigQueryConfig {
    /// The project jobs run (and are billed) in.
    project: String,
    /// Where jobs run (`US`, `EU`, `europe-west1`, …); BigQuery infers it from the tables a
    /// query reads when absent.
    #[serde(default)]
    location: Option<String>,
    /// The dataset unqualified table names in queries resolve against.
    #[serde(default)]
    dataset: Option<String>,
    /// A reference to the service-account JSON key: `${file:/path/key.json}` or `${env:NAME}`.
    #[serde(default)]
    #[schemars(extend("writeOnly" = true))]
    credentials: Option<String>,
    /// Base URL of the REST API (an emulator, or a private endpoint).
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_API_ENDPOINT))]
    api_endpoint: Option<String>,
    /// Base URL of the Storage Read API (gRPC).
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_STORAGE_ENDPOINT))]
    storage_endpoint: Option<String>,
    /// How many Storage Read streams one read reads at once (1..=64, default 4).
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_READ_STREAMS))]
    max_read_streams: Option<usize>,
}

impl fmt::Debug for BigQueryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BigQueryConfig")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("dataset", &self.dataset)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<reference>"),
            )
            .field("api_endpoint", &self.api_endpoint)
            .field("storage_endpoint", &self.storage_endpoint)
            .field("max_read_streams", &self.max_read_streams)
            .finish()
    }
}

impl BigQueryConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub(crate) fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: BigQueryConfig = config::parse(raw)?;
        check_project(&cfg.project)?;
        if let Some(location) = &cfg.location {
            if location.is_empty()
                || !location
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(ConnectorError::config(
                    "location",
                    format!(
                        "{} is not a BigQuery location (such as US, EU or europe-west1)",
                        quoted(location)
                    ),
                ));
            }
        }
        if let Some(dataset) = &cfg.dataset {
            if dataset.is_empty()
                || dataset.len() > 1024
                || !dataset
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(ConnectorError::config(
                    "dataset",
                    format!(
                        "{} is not a dataset id (letters, digits and underscores only)",
                        quoted(dataset)
                    ),
                ));
            }
        }
        if let Some(credentials) = &cfg.credentials {
            if !credentials.trim_start().starts_with("${") || !credentials.trim_end().ends_with('}')
            {
                return Err(ConnectorError::config(
                    "credentials",
                    "must be a secret reference to a service-account JSON key, such as \
                     ${file:/etc/backflow/bigquery-key.json} or ${env:BIGQUERY_KEY_JSON}; the \
                     key itself does not belong in a definition",
                ));
            }
            secret::check_references("credentials", credentials)?;
        }
        for (field, endpoint) in [
            ("api_endpoint", &cfg.api_endpoint),
            ("storage_endpoint", &cfg.storage_endpoint),
        ] {
            if let Some(endpoint) = endpoint {
                check_endpoint(field, endpoint)?;
            }
        }
        if cfg.credentials.is_none()
            && (cfg.api_endpoint.is_none() || cfg.storage_endpoint.is_none())
        {
            return Err(ConnectorError::config(
                "credentials",
                "required to reach Google's BigQuery service; only an emulator (both \
                 `api_endpoint` and `storage_endpoint` set) may be used without credentials",
            ));
        }
        if let Some(n) = cfg.max_read_streams {
            if !(1..=MAX_READ_STREAMS).contains(&n) {
                return Err(ConnectorError::config(
                    "max_read_streams",
                    format!("must be between 1 and {MAX_READ_STREAMS}, got {n}"),
                ));
            }
        }
        Ok(cfg)
    }

    /// The project jobs run in.
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// The configured job location, if any.
    pub(crate) fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The default dataset for unqualified table names, if any.
    pub(crate) fn dataset(&self) -> Option<&str> {
        self.dataset.as_deref()
    }

    /// The credentials reference, if any.
    pub(crate) fn credentials(&self) -> Option<&str> {
        self.credentials.as_deref()
    }

    /// The REST base URL, without a trailing slash.
    pub(crate) fn api_endpoint(&self) -> String {
        self.api_endpoint
            .as_deref()
            .unwrap_or(DEFAULT_API_ENDPOINT)
            .trim_end_matches('/')
            .to_string()
    }

    /// The Storage Read API URL, without a trailing slash.
    pub(crate) fn storage_endpoint(&self) -> String {
        self.storage_endpoint
            .as_deref()
            .unwrap_or(DEFAULT_STORAGE_ENDPOINT)
            .trim_end_matches('/')
            .to_string()
    }

    /// How many Storage Read streams are read at once.
    pub(crate) fn max_read_streams(&self) -> usize {
        self.max_read_streams.unwrap_or(DEFAULT_READ_STREAMS)
    }
}

/// Project ids are lowercase letters, digits and hyphens; legacy domain-scoped ids add `.`
/// and `:` (`example.com:project`).
fn check_project(project: &str) -> Result<(), ConnectorError> {
    if project.is_empty() {
        return Err(ConnectorError::config(
            "project",
            "missing: the Google Cloud project id jobs run in",
        ));
    }
    let ok = project.len() <= 128
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
    if !ok {
        return Err(ConnectorError::config(
            "project",
            format!(
                "{} is not a project id (lowercase letters, digits and hyphens)",
                quoted(project)
            ),
        ));
    }
    Ok(())
}

/// An endpoint override is an `http://` or `https://` URL with a host and nothing after it
/// but an optional path prefix.
fn check_endpoint(field: &str, endpoint: &str) -> Result<(), ConnectorError> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| ConnectorError::config(field, format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConnectorError::config(
            field,
            format!(
                "expected an http:// or https:// URL, got scheme {}",
                quoted(url.scheme())
            ),
        ));
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err(ConnectorError::config(field, "the URL names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConnectorError::config(
            field,
            "the URL may not carry credentials, a query or a fragment",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    fn emulator() -> serde_json::Value {
        json!({
            "project": "test",
            "api_endpoint": "http://127.0.0.1:9050",
            "storage_endpoint": "http://127.0.0.1:9060",
        })
    }

    #[test]
    fn accepts_service_and_emulator_configs() {
        let cfg = BigQueryConfig::validate(&json!({
            "project": "acme-analytics",
            "location": "EU",
            "dataset": "marts",
            "credentials": "${file:/etc/backflow/bq.json}",
        }))
        .unwrap();
        assert_eq!(cfg.api_endpoint(), DEFAULT_API_ENDPOINT);
        assert_eq!(cfg.storage_endpoint(), DEFAULT_STORAGE_ENDPOINT);
        assert_eq!(cfg.max_read_streams(), 4);
        assert!(!format!("{cfg:?}").contains("/etc/backflow"));
        let cfg = BigQueryConfig::validate(&emulator()).unwrap();
        assert_eq!(cfg.api_endpoint(), "http://127.0.0.1:9050");
    }

    #[test]
    fn errors_name_the_field() {
        let field = |raw: serde_json::Value| BigQueryConfig::validate(&raw).unwrap_err();
        let mut raw = emulator();
        raw["projet"] = json!("x");
        let e = field(raw);
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("projet"), "{e}");
        let mut raw = emulator();
        raw["project"] = json!("");
        assert_eq!(field(raw).field(), Some("project"));
        let mut raw = emulator();
        raw["project"] = json!("Bad_Project");
        assert_eq!(field(raw).field(), Some("project"));
        let mut raw = emulator();
        raw["location"] = json!("us central");
        assert_eq!(field(raw).field(), Some("location"));
        let mut raw = emulator();
        raw["dataset"] = json!("a.b");
        assert_eq!(field(raw).field(), Some("dataset"));
        let mut raw = emulator();
        raw["credentials"] = json!("{\"private_key\": \"...\"}");
        let e = field(raw);
        assert_eq!(e.field(), Some("credentials"));
        assert!(!e.message().contains("private_key"), "{e}");
        let mut raw = emulator();
        raw["api_endpoint"] = json!("ftp://h");
        assert_eq!(field(raw).field(), Some("api_endpoint"));
        let mut raw = emulator();
        raw["storage_endpoint"] = json!("not a url");
        assert_eq!(field(raw).field(), Some("storage_endpoint"));
        let mut raw = emulator();
        raw["max_read_streams"] = json!(0);
        assert_eq!(field(raw).field(), Some("max_read_streams"));
        let e = field(json!({"project": "p"}));
        assert_eq!(e.field(), Some("credentials"));
        let e = field(json!({"project": "p", "api_endpoint": "http://127.0.0.1:1"}));
        assert_eq!(e.field(), Some("credentials"));
    }
}
