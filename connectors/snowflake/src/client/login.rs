//! Logging in: the request body and query Snowflake's login endpoint expects, and what the
//! answer grants (tokens, heartbeat interval). Building and reading them is pure, so the
//! exact fields are unit-tested; [`Session::login`] only resolves the credential and sends.

use std::sync::Mutex;
use std::time::Duration;

use backflow_connector_core::{secret, ConnectorError, ErrorKind, Secret};
use serde_json::{json, Value};

use super::{
    base_headers, remote_error, request_id, send, Envelope, Session, CLIENT_APP_ID,
    CLIENT_APP_VERSION, SMALL_REQUEST_TIMEOUT,
};
use crate::auth::KeyPair;
use crate::config::{Credential, SnowflakeConfig};

/// The heartbeat interval when the login answer does not set one, and the longest allowed.
const MAX_HEARTBEAT_SECS: u64 = 3600;
/// The shortest heartbeat interval, so a tiny session validity does not flood Snowflake.
const MIN_HEARTBEAT_SECS: u64 = 60;

impl Session {
    /// Logs in with the config's credential; a refused credential is an `Auth` error.
    pub(crate) async fn login(
        http: &reqwest::Client,
        cfg: &SnowflakeConfig,
    ) -> Result<Self, ConnectorError> {
        let base = cfg.base_url();
        let proof = Proof::resolve(cfg)?;
        let mut query: Vec<(&str, String)> =
            vec![("requestId", request_id()), ("request_guid", request_id())];
        query.extend(session_query(cfg));
        let request = http
            .post(format!("{base}/session/v1/login-request"))
            .headers(base_headers())
            .query(&query)
            .timeout(SMALL_REQUEST_TIMEOUT)
            .json(&login_body(cfg, &proof));
        let during = format!("logging in to {base} as {}", cfg.user);
        let envelope = send(request, &during).await?;
        if !envelope.success {
            return Err(login_refused(&envelope, &during, &proof));
        }
        let grant = Grant::read(&envelope.data, &during)?;
        tracing::debug!(base = %base, "snowflake session opened");
        Ok(Self {
            http: http.clone(),
            base,
            token: Mutex::new(grant.token),
            master: Mutex::new(grant.master),
            heartbeat: grant.heartbeat,
            sequence: Mutex::new(0),
        })
    }
}

/// What proves the user's identity at login, resolved from the config's credential.
enum Proof {
    /// The resolved password.
    Password(Secret),
    /// A JWT signed with the user's private key.
    Jwt(Secret),
}

impl Proof {
    /// Resolves the password reference, or loads the private key and signs a JWT with it.
    fn resolve(cfg: &SnowflakeConfig) -> Result<Self, ConnectorError> {
        match &cfg.credential {
            Credential::Password(reference) => {
                secret::resolve("credential.password", reference).map(Proof::Password)
            }
            Credential::KeyPair(key_cfg) => {
                let pair = KeyPair::load(key_cfg)?;
                tracing::debug!(fingerprint = pair.fingerprint(), "snowflake key-pair login");
                pair.jwt(cfg.account.trim(), &cfg.user).map(Proof::Jwt)
            }
        }
    }

    /// The secret text, which must never reach an error message.
    fn secret(&self) -> &str {
        match self {
            Proof::Password(s) | Proof::Jwt(s) => s.expose(),
        }
    }
}

/// The JSON body of the login request.
fn login_body(cfg: &SnowflakeConfig, proof: &Proof) -> Value {
    let account = cfg.account.trim();
    let mut data = json!({
        "CLIENT_APP_ID": CLIENT_APP_ID,
        "CLIENT_APP_VERSION": CLIENT_APP_VERSION,
        "ACCOUNT_NAME": account.split('.').next().unwrap_or(account).to_uppercase(),
        "LOGIN_NAME": cfg.user,
        "CLIENT_ENVIRONMENT": {
            "APPLICATION": "Backflow",
            "OS": std::env::consts::OS,
        },
        // A session whose client vanished (a killed worker) has its query aborted by
        // Snowflake instead of running on and billing the warehouse.
        "SESSION_PARAMETERS": { "ABORT_DETACHED_QUERY": true },
    });
    match proof {
        Proof::Password(password) => {
            data["PASSWORD"] = Value::String(password.expose().to_string());
        }
        Proof::Jwt(token) => {
            data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
            data["TOKEN"] = Value::String(token.expose().to_string());
        }
    }
    json!({ "data": data })
}

/// The query parameters choosing the session's warehouse, database, schema and role; those
/// the config leaves out are the user's defaults.
fn session_query(cfg: &SnowflakeConfig) -> Vec<(&'static str, String)> {
    [
        ("warehouse", &cfg.warehouse),
        ("databaseName", &cfg.database),
        ("schemaName", &cfg.schema),
        ("roleName", &cfg.role),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
    .collect()
}

/// The error for a refused login: `Auth` unless the connection failed, with the secret
/// scrubbed should Snowflake echo it.
fn login_refused(envelope: &Envelope, during: &str, proof: &Proof) -> ConnectorError {
    let mut e = remote_error(envelope, during);
    if e.kind() != ErrorKind::Connectivity {
        e = ConnectorError::new(ErrorKind::Auth, e.message().to_string())
            .with_code(e.code().unwrap_or("").to_string());
    }
    let mut message = e.message().to_string();
    if !proof.secret().is_empty() {
        message = message.replace(proof.secret(), "***");
    }
    e.with_message(message)
}

/// What a successful login grants.
struct Grant {
    token: Secret,
    /// Renews the session token when it expires; emulators may not give one.
    master: Option<Secret>,
    /// How often a long read should send a heartbeat to keep the session alive.
    heartbeat: Duration,
}

impl Grant {
    /// Reads the login answer's `data`; only the session token is required.
    fn read(data: &Value, during: &str) -> Result<Self, ConnectorError> {
        let token = data.get("token").and_then(Value::as_str).ok_or_else(|| {
            ConnectorError::internal(format!("{during}: the answer holds no session token"))
        })?;
        let master = data
            .get("masterToken")
            .and_then(Value::as_str)
            .map(Secret::new);
        Ok(Self {
            token: Secret::new(token),
            master,
            heartbeat: Duration::from_secs(heartbeat_secs(data)),
        })
    }
}

/// The heartbeat interval: the session's keep-alive frequency (default and at most an hour,
/// at least a minute), and often enough to come well within the token's validity.
fn heartbeat_secs(data: &Value) -> u64 {
    let frequency = data
        .get("parameters")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter().find(|p| {
                p.get("name").and_then(Value::as_str)
                    == Some("CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY")
            })
        })
        .and_then(|p| p.get("value"))
        .and_then(Value::as_u64);
    let heartbeat = frequency
        .unwrap_or(MAX_HEARTBEAT_SECS)
        .clamp(MIN_HEARTBEAT_SECS, MAX_HEARTBEAT_SECS);
    match data.get("validityInSeconds").and_then(Value::as_u64) {
        Some(validity) => heartbeat.min((validity * 3 / 4).max(MIN_HEARTBEAT_SECS)),
        None => heartbeat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> SnowflakeConfig {
        let mut raw = json!({
            "account": " xy12345.us-east-1 ",
            "user": "loader",
            "credential": {"password": "hunter2"},
        });
        for (key, value) in extra.as_object().unwrap() {
            raw[key] = value.clone();
        }
        SnowflakeConfig::validate(&raw).unwrap()
    }

    fn envelope(answer: Value) -> Envelope {
        serde_json::from_value(answer).unwrap()
    }

    #[test]
    fn a_password_login_sends_the_client_identity_and_the_password() {
        let cfg = config(json!({}));
        let proof = Proof::resolve(&cfg).unwrap();
        assert_eq!(
            login_body(&cfg, &proof),
            json!({
                "data": {
                    "CLIENT_APP_ID": "Go",
                    "CLIENT_APP_VERSION": "1.6.22",
                    "ACCOUNT_NAME": "XY12345",
                    "LOGIN_NAME": "loader",
                    "CLIENT_ENVIRONMENT": {
                        "APPLICATION": "Backflow",
                        "OS": std::env::consts::OS,
                    },
                    "SESSION_PARAMETERS": { "ABORT_DETACHED_QUERY": true },
                    "PASSWORD": "hunter2",
                }
            })
        );
    }

    #[test]
    fn a_key_pair_login_sends_a_jwt_instead_of_a_password() {
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa_key.p8");
        let cfg = config(json!({
            "account": "myorg-acct",
            "credential": {"key_pair": {"private_key_file": key}},
        }));
        let proof = Proof::resolve(&cfg).unwrap();
        assert!(matches!(proof, Proof::Jwt(_)));
        let body = login_body(&cfg, &proof);
        let data = body["data"].as_object().unwrap();
        assert_eq!(data["AUTHENTICATOR"], "SNOWFLAKE_JWT");
        assert_eq!(data["TOKEN"], proof.secret());
        assert_eq!(
            proof.secret().split('.').count(),
            3,
            "a JWT has three parts"
        );
        assert_eq!(data["ACCOUNT_NAME"], "MYORG-ACCT");
        assert!(!data.contains_key("PASSWORD"));
    }

    #[test]
    fn the_query_names_only_the_configured_session_context() {
        assert!(session_query(&config(json!({}))).is_empty());
        let cfg = config(json!({"warehouse": "WH", "schema": "PUBLIC", "role": "LOADER"}));
        assert_eq!(
            session_query(&cfg),
            vec![
                ("warehouse", "WH".to_string()),
                ("schemaName", "PUBLIC".to_string()),
                ("roleName", "LOADER".to_string()),
            ]
        );
    }

    #[test]
    fn a_refused_login_is_an_auth_error_without_the_secret() {
        let proof = Proof::Password(Secret::new("hunter2"));
        let refused = envelope(json!({
            "success": false,
            "code": "390100",
            "message": "Incorrect username or password (tried hunter2).",
            "data": null,
        }));
        let e = login_refused(&refused, "logging in", &proof);
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert_eq!(e.code(), Some("390100"));
        assert_eq!(
            e.message(),
            "logging in: Incorrect username or password (tried ***)."
        );

        // Any other refusal is an authentication failure too, unless the connection failed.
        let other = envelope(json!({"success": false, "code": "002003", "message": "nope"}));
        let e = login_refused(&other, "logging in", &proof);
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert_eq!(e.code(), Some("002003"));
        let lost = envelope(json!({
            "success": false,
            "message": "connection lost",
            "data": {"sqlState": "08001"},
        }));
        let e = login_refused(&lost, "logging in", &proof);
        assert_eq!(e.kind(), ErrorKind::Connectivity);
    }

    #[test]
    fn the_grant_needs_only_a_session_token() {
        let e = Grant::read(&json!({}), "logging in").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.message(), "logging in: the answer holds no session token");

        let grant = Grant::read(&json!({"token": "T"}), "logging in").unwrap();
        assert_eq!(grant.token.expose(), "T");
        assert!(grant.master.is_none());
        assert_eq!(grant.heartbeat, Duration::from_secs(3600));

        let grant = Grant::read(
            &json!({"token": "T", "masterToken": "M", "validityInSeconds": 3600}),
            "logging in",
        )
        .unwrap();
        assert_eq!(
            grant.master.map(|m| m.expose().to_string()),
            Some("M".into())
        );
        assert_eq!(grant.heartbeat, Duration::from_secs(2700));
    }

    #[test]
    fn the_heartbeat_follows_the_session_parameters_within_bounds() {
        let frequency = |value: u64| {
            json!({"parameters": [
                {"name": "OTHER", "value": 5},
                {"name": "CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY", "value": value},
            ]})
        };
        assert_eq!(heartbeat_secs(&frequency(900)), 900);
        assert_eq!(heartbeat_secs(&frequency(10)), 60);
        assert_eq!(heartbeat_secs(&frequency(7200)), 3600);
        let mut short = frequency(900);
        short["validityInSeconds"] = json!(400);
        assert_eq!(heartbeat_secs(&short), 300);
        short["validityInSeconds"] = json!(20);
        assert_eq!(heartbeat_secs(&short), 60);
    }
}
