//! Connection config: strict parsing and validation without I/O, and connecting.
//!
//! The config stores secret references as written; they are resolved only in
//! [`MongoConfig::connect`], by the process that runs the sync, and the resolved values never
//! reach an error, a log line or a `Debug` rendering.

use std::fmt;
use std::time::Duration;

use backflow_connector_core::{config, quoted, secret, ConnectorError};
use mongodb::options::{ClientOptions, ConnectionString};
use mongodb::{Client, Database};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::classify;

/// How long finding a usable server may take when the config does not say.
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;

/// How decimal columns are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DecimalsAs {
    /// BSON Decimal128: exact, up to 34 significant digits (MongoDB 3.4+).
    #[default]
    Decimal128,
    /// The decimal's text (`"123.45"`): exact, for servers without Decimal128 (FerretDB 1.x).
    String,
    /// A BSON double: approximate.
    Double,
}

/// The raw, user-written config of a MongoDB connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MongoConfig {
    /// `mongodb://user[:password]@host[:port][,host…]/[database][?options]` or
    /// `mongodb+srv://…`; may hold references.
    pub(crate) url: String,
    /// The database holding the collections; defaults to the URL's path.
    #[serde(default)]
    pub(crate) database: Option<String>,
    /// Overrides the URL's password; a reference (`${env:MONGO_PASSWORD}`) or a literal.
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Seconds to wait for a usable server before failing with a retryable error.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_CONNECT_TIMEOUT_SECS))]
    pub(crate) connect_timeout_secs: Option<u64>,
    /// `true` (default): the primary key is the document's `_id` (a sub-document for a
    /// composite key). `false`: the key columns stay ordinary fields, backed by a unique
    /// index, and the server generates `_id`.
    #[serde(default = "default_true")]
    pub(crate) primary_key_as_id: bool,
    /// How decimal columns are stored (`decimal128`, `string` or `double`).
    #[serde(default)]
    #[schemars(extend("default" = "decimal128"))]
    pub(crate) decimals: DecimalsAs,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &secret::redact_url(&self.url))
            .field("database", &self.database)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("primary_key_as_id", &self.primary_key_as_id)
            .field("decimals", &self.decimals)
            .finish()
    }
}

impl MongoConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub(crate) fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let mut cfg: MongoConfig = config::parse(raw)?;
        secret::check_references("url", &cfg.url)?;
        if let Some(password) = &cfg.password {
            secret::check_references("password", password)?;
        }
        if !(cfg.url.starts_with("mongodb://") || cfg.url.starts_with("mongodb+srv://")) {
            return Err(ConnectorError::config(
                "url",
                "expected a mongodb:// or mongodb+srv:// connection string",
            ));
        }
        // Parse the connection string with every reference replaced by a placeholder, so a
        // malformed URL fails here and not at the first run. The driver's parser does no I/O.
        let shaped = secret::replace_references(&cfg.url, "x");
        let parsed = ConnectionString::parse(&shaped).map_err(|e| {
            ConnectorError::config(
                "url",
                format!(
                    "not a valid MongoDB connection string: {}",
                    scrub(&error_message(&e), &[&shaped, &cfg.url])
                ),
            )
        })?;
        if cfg.database.is_none() {
            cfg.database = parsed.default_database.clone();
        }
        match cfg.database.as_deref() {
            None | Some("") => {
                return Err(ConnectorError::config(
                    "database",
                    "no database: set `database` or name one in the URL path \
                     (mongodb://host/app)",
                ))
            }
            Some(db) => check_database_name(db)?,
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
    pub(crate) fn redacted_url(&self) -> String {
        secret::redact_url(&self.url)
    }

    /// The database name (present after `validate`).
    pub(crate) fn database(&self) -> &str {
        self.database.as_deref().unwrap_or_default()
    }

    /// Resolves the secrets, builds a client (owned by the returned database handle) and
    /// proves a server answers (`ping`), so a bad
    /// host or credential fails here with a classified error rather than mid-write.
    pub(crate) async fn connect(&self) -> Result<Database, ConnectorError> {
        let url = secret::resolve("url", &self.url)?;
        let password = self
            .password
            .as_deref()
            .map(|p| secret::resolve("password", p))
            .transpose()?;
        let mut hidden: Vec<String> = vec![url.expose().to_string()];
        if let Some(p) = &password {
            hidden.push(p.expose().to_string());
        }
        if let Some(p) = url_password(url.expose()) {
            hidden.push(p);
        }
        let hide = |e: ConnectorError| -> ConnectorError {
            let refs: Vec<&str> = hidden.iter().map(String::as_str).collect();
            let message = scrub(e.message(), &refs);
            if message == e.message() {
                e
            } else {
                e.with_message(message)
            }
        };
        let secs = self
            .connect_timeout_secs
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        let timeout = Duration::from_secs(secs);
        let context = format!("connecting to {}", self.redacted_url());
        let mut options = tokio::time::timeout(timeout, ClientOptions::parse(url.expose()))
            .await
            .map_err(|_| {
                ConnectorError::connectivity(format!("{context} timed out after {secs}s"))
            })?
            .map_err(|e| hide(classify(e)).context(&context))?;
        options.app_name = Some("backflow".to_string());
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        if let Some(p) = password {
            let credential = options.credential.get_or_insert_with(Default::default);
            credential.password = Some(p.expose().to_string());
        }
        let client =
            Client::with_options(options).map_err(|e| hide(classify(e)).context(&context))?;
        let db = client.database(self.database());
        db.run_command(mongodb::bson::doc! { "ping": 1 })
            .await
            .map_err(|e| hide(classify(e)).context(&context))?;
        Ok(db)
    }
}

/// Database names MongoDB refuses, caught before any I/O.
fn check_database_name(db: &str) -> Result<(), ConnectorError> {
    if let Some(c) = db
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'))
    {
        return Err(ConnectorError::config(
            "database",
            format!(
                "database name {} contains `{c}`, which MongoDB does not allow",
                quoted(db)
            ),
        ));
    }
    if db.len() >= 64 {
        return Err(ConnectorError::config(
            "database",
            "database names must be shorter than 64 bytes",
        ));
    }
    Ok(())
}

/// The password in a connection string's user info, if any.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p.to_string())
        .filter(|p| !p.is_empty())
}

/// The driver's error message without the debug wrapping of its `Display`.
fn error_message(e: &mongodb::error::Error) -> String {
    e.kind.to_string()
}

/// `message` with every occurrence of a non-empty `hidden` value replaced by `***`.
fn scrub(message: &str, hidden: &[&str]) -> String {
    let mut out = message.to_string();
    for h in hidden.iter().filter(|h| !h.is_empty()) {
        out = out.replace(h, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn accepts_references_and_redacts_debug() {
        let cfg = MongoConfig::validate(&json!({
            "url": "mongodb://app:hunter2@${env:MONGO_HOST}:27017/app?authSource=admin",
            "password": "${env:MONGO_PASSWORD}",
            "connect_timeout_secs": 5
        }))
        .unwrap();
        assert_eq!(cfg.database(), "app");
        assert!(cfg.primary_key_as_id);
        assert_eq!(cfg.decimals, DecimalsAs::Decimal128);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("app:***@"), "{debug}");

        let cfg = MongoConfig::validate(&json!({
            "url": "mongodb+srv://cluster0.example.net/?retryWrites=true",
            "database": "shop",
            "primary_key_as_id": false,
            "decimals": "string"
        }))
        .unwrap();
        assert_eq!(cfg.database(), "shop");
        assert!(!cfg.primary_key_as_id);
        assert_eq!(cfg.decimals, DecimalsAs::String);
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            MongoConfig::validate(&json!({"url": "mongodb://h/db", "pasword": "x"})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("pasword"), "{e}");

        let e = MongoConfig::validate(&json!({"database": "x"})).unwrap_err();
        assert!(e.message().contains("url"), "{e}");

        let e = MongoConfig::validate(&json!({"url": "postgres://h/db"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));

        let e =
            MongoConfig::validate(&json!({"url": "mongodb://u:s3cret@h:notaport/db"})).unwrap_err();
        assert_eq!(e.field(), Some("url"));
        assert!(!e.to_string().contains("s3cret"), "{e}");

        let e = MongoConfig::validate(&json!({"url": "mongodb://h:27017"})).unwrap_err();
        assert_eq!(e.field(), Some("database"));

        let e =
            MongoConfig::validate(&json!({"url": "mongodb://h/", "database": "a.b"})).unwrap_err();
        assert_eq!(e.field(), Some("database"));

        let e = MongoConfig::validate(&json!({"url": "mongodb://h/db", "password": "${vault:x}"}))
            .unwrap_err();
        assert_eq!(e.field(), Some("password"));

        let e = MongoConfig::validate(&json!({"url": "mongodb://h/db", "decimals": "float"}))
            .unwrap_err();
        assert_eq!(e.field(), Some("decimals"));

        let e = MongoConfig::validate(&json!({"url": "mongodb://h/db", "connect_timeout_secs": 0}))
            .unwrap_err();
        assert_eq!(e.field(), Some("connect_timeout_secs"));
    }

    #[test]
    fn finds_the_url_password() {
        assert_eq!(
            url_password("mongodb://u:p%40ss@h1,h2/db").as_deref(),
            Some("p%40ss")
        );
        assert_eq!(url_password("mongodb://u@h/db"), None);
        assert_eq!(url_password("mongodb://h/db"), None);
    }
}
