//! Connection config: strict parsing and validation without I/O.
//!
//! The config keeps secret references (`${env:NAME}`, `${file:/path}`) as written; they are
//! resolved only when logging in, and the resolved values never reach an error, a log line or
//! a `Debug` rendering.

use std::fmt;

use backflow_connector_core::{config, secret, ConnectorError};
use schemars::JsonSchema;
use serde::Deserialize;

/// Result chunks downloaded at once when the config does not say.
const DEFAULT_CHUNK_CONCURRENCY: usize = 4;
/// The most chunks a config may ask to download at once (each may hold ~100 MB decoded).
const MAX_CHUNK_CONCURRENCY: usize = 16;

/// The raw, user-written config of a Snowflake connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnowflakeConfig {
    /// Account identifier (`myorg-myaccount` or a locator such as `xy12345.us-east-1`).
    pub(crate) account: String,
    /// Login name.
    pub(crate) user: String,
    /// Virtual warehouse the query runs on; the user's default when absent.
    #[serde(default)]
    pub(crate) warehouse: Option<String>,
    /// Database for unqualified names; the user's default when absent.
    #[serde(default)]
    pub(crate) database: Option<String>,
    /// Schema for unqualified names; the user's default when absent.
    #[serde(default)]
    pub(crate) schema: Option<String>,
    /// Role the session uses; the user's default when absent.
    #[serde(default)]
    pub(crate) role: Option<String>,
    /// How the user authenticates.
    pub(crate) credential: Credential,
    /// Overrides `ACCOUNT.snowflakecomputing.com` (private link, a local emulator).
    #[serde(default)]
    pub(crate) host: Option<String>,
    /// Overrides the port (443 for https, 80 for http).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// `https` (default) or `http` (only sensible for a local emulator).
    #[serde(default)]
    #[schemars(extend("default" = "https"))]
    pub(crate) protocol: Option<Protocol>,
    /// Result chunks fetched in parallel (1..=16, default 4); memory grows with it.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_CHUNK_CONCURRENCY))]
    pub(crate) chunk_concurrency: Option<usize>,
}

/// The scheme spoken to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Protocol {
    /// TLS (Snowflake's service).
    Https,
    /// Plain HTTP (local emulators).
    Http,
}

/// A credential, as secret references.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Credential {
    /// `credential: { password: ${env:SNOWFLAKE_PASSWORD} }`.
    Password(String),
    /// `credential: { key_pair: { private_key_file: …, passphrase: … } }`.
    KeyPair(KeyPairConfig),
}

/// Key-pair authentication: a PKCS#8 PEM private key, encrypted or not.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyPairConfig {
    /// Path of the PEM file (`-----BEGIN [ENCRYPTED] PRIVATE KEY-----`); may be a reference.
    pub(crate) private_key_file: String,
    /// Passphrase of an encrypted key; a reference (`${env:SNOWFLAKE_KEY_PASSPHRASE}`).
    #[serde(default)]
    pub(crate) passphrase: Option<String>,
}

impl fmt::Debug for SnowflakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = match &self.credential {
            Credential::Password(_) => "password(***)",
            Credential::KeyPair(_) => "key_pair(***)",
        };
        f.debug_struct("SnowflakeConfig")
            .field("account", &self.account)
            .field("user", &self.user)
            .field("warehouse", &self.warehouse)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("role", &self.role)
            .field("credential", &credential)
            .field("base_url", &self.base_url())
            .finish()
    }
}

impl SnowflakeConfig {
    /// Parses and checks `raw` without any I/O; errors name the field.
    pub(crate) fn validate(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let cfg: SnowflakeConfig = config::parse(raw)?;
        let account = cfg.account.trim();
        if account.is_empty() {
            return Err(ConnectorError::config("account", "must not be empty"));
        }
        if account.contains("://") || account.contains('/') || account.ends_with(".com") {
            return Err(ConnectorError::config(
                "account",
                "expected an account identifier such as `myorg-myaccount`, not a URL or host \
                 name (set `host` to override the host)",
            ));
        }
        if cfg.user.trim().is_empty() {
            return Err(ConnectorError::config("user", "must not be empty"));
        }
        for (field, value) in [
            ("warehouse", &cfg.warehouse),
            ("database", &cfg.database),
            ("schema", &cfg.schema),
            ("role", &cfg.role),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ConnectorError::config(
                    field,
                    "must not be empty when given",
                ));
            }
        }
        match &cfg.credential {
            Credential::Password(p) => secret::check_references("credential.password", p)?,
            Credential::KeyPair(k) => {
                if k.private_key_file.trim().is_empty() {
                    return Err(ConnectorError::config(
                        "credential.key_pair.private_key_file",
                        "must name the PKCS#8 PEM file",
                    ));
                }
                secret::check_references(
                    "credential.key_pair.private_key_file",
                    &k.private_key_file,
                )?;
                if let Some(p) = &k.passphrase {
                    secret::check_references("credential.key_pair.passphrase", p)?;
                }
            }
        }
        if let Some(host) = &cfg.host {
            if host.is_empty() || host.contains("://") || host.contains(['/', ' ']) {
                return Err(ConnectorError::config(
                    "host",
                    "expected a bare host name such as `myaccount.privatelink.snowflakecomputing.com` \
                     (set `protocol` and `port` separately)",
                ));
            }
        }
        if cfg.port == Some(0) {
            return Err(ConnectorError::config(
                "port",
                "must be between 1 and 65535",
            ));
        }
        if let Some(n) = cfg.chunk_concurrency {
            if !(1..=MAX_CHUNK_CONCURRENCY).contains(&n) {
                return Err(ConnectorError::config(
                    "chunk_concurrency",
                    format!("must be between 1 and {MAX_CHUNK_CONCURRENCY}"),
                ));
            }
        }
        Ok(cfg)
    }

    /// `protocol://host:port`, with Snowflake's defaults for what the config leaves out.
    pub(crate) fn base_url(&self) -> String {
        let protocol = self.protocol.unwrap_or(Protocol::Https);
        let (scheme, default_port) = match protocol {
            Protocol::Https => ("https", 443),
            Protocol::Http => ("http", 80),
        };
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| format!("{}.snowflakecomputing.com", self.account.trim()));
        format!("{scheme}://{host}:{}", self.port.unwrap_or(default_port))
    }

    /// How many result chunks are downloaded at once.
    pub(crate) fn chunk_concurrency(&self) -> usize {
        self.chunk_concurrency.unwrap_or(DEFAULT_CHUNK_CONCURRENCY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "account": "myorg-acct",
            "user": "loader",
            "warehouse": "WH",
            "credential": {"password": "${env:SF_PASSWORD}"}
        })
    }

    #[test]
    fn defaults_to_the_account_host_over_https() {
        let cfg = SnowflakeConfig::validate(&base()).unwrap();
        assert_eq!(
            cfg.base_url(),
            "https://myorg-acct.snowflakecomputing.com:443"
        );
        let mut raw = base();
        raw["host"] = json!("127.0.0.1");
        raw["port"] = json!(58443);
        raw["protocol"] = json!("http");
        let cfg = SnowflakeConfig::validate(&raw).unwrap();
        assert_eq!(cfg.base_url(), "http://127.0.0.1:58443");
    }

    #[test]
    fn debug_hides_the_credential() {
        let mut raw = base();
        raw["credential"] = json!({"password": "hunter2"});
        let cfg = SnowflakeConfig::validate(&raw).unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn errors_name_the_field() {
        let mut raw = base();
        raw["acount"] = json!("x");
        let e = SnowflakeConfig::validate(&raw).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("acount"), "{e}");

        let mut raw = base();
        raw["account"] = json!("https://x.snowflakecomputing.com");
        assert_eq!(
            SnowflakeConfig::validate(&raw).unwrap_err().field(),
            Some("account")
        );

        let mut raw = base();
        raw["credential"] = json!({"password": "${vault:x}"});
        assert_eq!(
            SnowflakeConfig::validate(&raw).unwrap_err().field(),
            Some("credential.password")
        );

        let mut raw = base();
        raw["credential"] = json!({"key_pair": {"private_key_file": ""}});
        assert_eq!(
            SnowflakeConfig::validate(&raw).unwrap_err().field(),
            Some("credential.key_pair.private_key_file")
        );

        let mut raw = base();
        raw["credential"] = json!({"token": "x"});
        let e = SnowflakeConfig::validate(&raw).unwrap_err();
        assert!(e.field().unwrap_or("").starts_with("credential"), "{e}");

        let mut raw = base();
        raw["protocol"] = json!("ftp");
        assert_eq!(
            SnowflakeConfig::validate(&raw).unwrap_err().field(),
            Some("protocol")
        );

        let mut raw = base();
        raw["chunk_concurrency"] = json!(0);
        assert_eq!(
            SnowflakeConfig::validate(&raw).unwrap_err().field(),
            Some("chunk_concurrency")
        );

        let mut raw = base();
        raw["host"] = json!("https://h");
        assert_eq!(
            SnowflakeConfig::validate(&raw).unwrap_err().field(),
            Some("host")
        );
        let e = SnowflakeConfig::validate(&json!({"account": "a"})).unwrap_err();
        assert!(e.message().contains("user"), "{e}");
    }
}
