//! Credentials for Google's services: a service-account key exchanged for an OAuth2 access
//! token with the JWT bearer grant (RFC 7523), signed RS256 with ring.
//!
//! Every Google connector (Firestore, BigQuery) authenticates the same way and differs only in
//! the OAuth2 scope it asks for, so the exchange lives here once, with the scope as a
//! parameter. The flow follows Google's documentation
//! (<https://developers.google.com/identity/protocols/oauth2/service-account>); it cannot run
//! against Google from the test machines (no network), so the tests check the signed assertion
//! itself. Emulator paths never reach this crate.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backflow_connector_core::{secret, ConnectorError, ErrorKind, Secret};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Google's token endpoint, used when the key file does not name one.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Tokens are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The fields of a service-account JSON key this connector uses.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A parsed service-account key and the access token it last obtained.
///
/// Errors name the config field `credentials`, the name every Google connector gives the
/// reference to the key file.
pub struct ServiceAccount {
    email: String,
    key: RsaKeyPair,
    token_uri: String,
    scope: String,
    http: reqwest::Client,
    token: Mutex<Option<(Secret, Instant)>>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Resolves the `credentials` reference and parses the key, for tokens of OAuth2 `scope`
    /// (for example `https://www.googleapis.com/auth/bigquery`); errors never quote the key.
    pub fn load(reference: &str, scope: &str) -> Result<Self, ConnectorError> {
        let json = secret::resolve("credentials", reference)?;
        Self::parse(json.expose(), scope)
    }

    /// Parses a service-account JSON key already in memory; errors never quote the key.
    pub fn parse(json: &str, scope: &str) -> Result<Self, ConnectorError> {
        let file: KeyFile = serde_json::from_str(json).map_err(|_| {
            ConnectorError::config(
                "credentials",
                "not a service-account JSON key (expected an object with `client_email` and \
                 `private_key`)",
            )
        })?;
        let key = RsaKeyPair::from_pkcs8(&pem_to_der(&file.private_key)?).map_err(|e| {
            ConnectorError::config(
                "credentials",
                format!("the service-account private key is not a usable RSA key: {e}"),
            )
        })?;
        Ok(Self {
            email: file.client_email,
            key,
            token_uri: file
                .token_uri
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            scope: scope.to_string(),
            http: reqwest::Client::new(),
            token: Mutex::new(None),
        })
    }

    /// The service account's email, safe to show in messages.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// A valid access token, fetching a new one when the cached one is about to expire.
    pub async fn token(&self) -> Result<Secret, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + REFRESH_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.exchange().await?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// The signed assertion of the JWT bearer grant.
    fn assertion(&self, now: u64) -> Result<String, ConnectorError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": self.scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| ConnectorError::internal("signing the token request failed"))?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    async fn exchange(&self) -> Result<(Secret, Duration), ConnectorError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ConnectorError::internal("the system clock is before 1970"))?
            .as_secs();
        // The assertion is base64url, so it needs no form encoding.
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            self.assertion(now)?
        );
        let response = self
            .http
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ConnectorError::connectivity(format!(
                    "cannot reach the token endpoint {}: {e}",
                    self.token_uri
                ))
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            ConnectorError::connectivity(format!("reading the token response: {e}"))
        })?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !status.is_success() {
            // Google's error body names the problem (`invalid_grant`, …) and holds no secret.
            let reason = ["error", "error_description"]
                .iter()
                .filter_map(|k| json.get(k).and_then(|v| v.as_str()))
                .collect::<Vec<_>>()
                .join(": ");
            let kind = if status.is_server_error() {
                ErrorKind::Connectivity
            } else {
                ErrorKind::Auth
            };
            return Err(ConnectorError::new(
                kind,
                format!(
                    "the token endpoint refused service account {} ({status}): {reason}",
                    self.email
                ),
            ));
        }
        let token = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ConnectorError::internal("the token response has no access_token"))?;
        let lifetime = json
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(3600);
        Ok((Secret::new(token), Duration::from_secs(lifetime)))
    }
}

/// The DER bytes of a PEM `PRIVATE KEY` block (PKCS#8, as Google's key files hold).
fn pem_to_der(pem: &str) -> Result<Vec<u8>, ConnectorError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err(ConnectorError::config(
            "credentials",
            "the service-account `private_key` has no PEM `PRIVATE KEY` block",
        ));
    }
    STANDARD.decode(body).map_err(|_| {
        ConnectorError::config(
            "credentials",
            "the service-account `private_key` is not valid base64 PEM",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    /// A throwaway RSA key in PKCS#8 PEM, made by the `openssl` command for this test only.
    fn throwaway_key() -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("the openssl command is needed to make a throwaway RSA key");
        assert!(out.status.success(), "openssl genpkey failed");
        String::from_utf8(out.stdout).unwrap()
    }

    const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

    #[test]
    fn the_assertion_is_an_rs256_jwt_google_can_verify() {
        let key = serde_json::json!({
            "type": "service_account",
            "client_email": "sync@demo.iam.gserviceaccount.com",
            "private_key": throwaway_key(),
        });
        let account = ServiceAccount::parse(&key.to_string(), SCOPE).unwrap();
        let jwt = account.assertion(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "sync@demo.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], DEFAULT_TOKEN_URI);
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"], 1_700_003_600);
        let public = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            account.key.public().as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .expect("the signature verifies with the key's public half");
        assert!(!format!("{account:?}").contains("PRIVATE"));
    }

    #[test]
    fn malformed_keys_are_config_errors_that_do_not_echo_the_key() {
        let e = ServiceAccount::parse(r#"{"client_email": 5}"#, SCOPE).unwrap_err();
        assert_eq!(e.field(), Some("credentials"));
        assert!(!e.message().contains('5'), "{e}");
        let e = ServiceAccount::parse(
            r#"{"client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#,
            SCOPE,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("credentials"));
        assert!(!e.message().contains("c2VjcmV0"), "{e}");
    }
}
