//! Key-pair authentication: the JWT Snowflake documents for `AUTHENTICATOR=SNOWFLAKE_JWT`.
//!
//! The private key is a PKCS#8 PEM file, plain (`BEGIN PRIVATE KEY`) or encrypted with a
//! passphrase (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 as `openssl pkcs8 -topk8 -v2 aes256`
//! writes it). The token is signed RS256 with ring and carries:
//!
//! - `iss`: `ACCOUNT.USER.SHA256:<base64 of the SHA-256 of the public key's DER
//!   SubjectPublicKeyInfo>` (the fingerprint `DESC USER` shows as `RSA_PUBLIC_KEY_FP`),
//! - `sub`: `ACCOUNT.USER`,
//! - `iat` now and `exp` 59 minutes later (Snowflake refuses tokens valid for over an hour).
//!
//! `ACCOUNT` is the account identifier upper-cased, without any region suffix of a legacy
//! locator (`xy12345.us-east-1` → `XY12345`); `USER` is the login name upper-cased.

use std::time::{SystemTime, UNIX_EPOCH};

use backflow_connector_core::{secret, ConnectorError, Secret};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use pkcs8::der::Decode;
use ring::rand::SystemRandom;
use ring::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};

use crate::config::KeyPairConfig;

/// How long a token is valid; Snowflake's limit is one hour.
const LIFETIME_SECS: u64 = 59 * 60;

/// A loaded RSA private key and the fingerprint of its public half.
pub(crate) struct KeyPair {
    key: RsaKeyPair,
    fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Resolves the references of `cfg`, reads the key file and parses it; errors never
    /// quote the key or the passphrase.
    pub(crate) fn load(cfg: &KeyPairConfig) -> Result<Self, ConnectorError> {
        let field = "credential.key_pair.private_key_file";
        let path = secret::resolve(field, &cfg.private_key_file)?;
        let pem = std::fs::read_to_string(path.expose()).map_err(|e| {
            ConnectorError::config(field, format!("cannot read the private key file: {e}"))
        })?;
        let passphrase = cfg
            .passphrase
            .as_deref()
            .map(|p| secret::resolve("credential.key_pair.passphrase", p))
            .transpose()?;
        Self::from_pem(&pem, passphrase.as_ref())
    }

    /// Parses a PKCS#8 PEM key, decrypting it with `passphrase` when it is encrypted.
    pub(crate) fn from_pem(pem: &str, passphrase: Option<&Secret>) -> Result<Self, ConnectorError> {
        let field = "credential.key_pair.private_key_file";
        let (label, document) = pkcs8::SecretDocument::from_pem(pem).map_err(|_| {
            ConnectorError::config(field, "not a PEM file (expected `BEGIN PRIVATE KEY`)")
        })?;
        let der = match label {
            "PRIVATE KEY" => document,
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = passphrase.ok_or_else(|| {
                    ConnectorError::config(
                        "credential.key_pair.passphrase",
                        "the private key is encrypted: set `passphrase`",
                    )
                })?;
                let encrypted = pkcs8::EncryptedPrivateKeyInfo::from_der(document.as_bytes())
                    .map_err(|_| {
                        ConnectorError::config(field, "not a valid encrypted PKCS#8 key")
                    })?;
                encrypted.decrypt(passphrase.expose()).map_err(|_| {
                    ConnectorError::config(
                        "credential.key_pair.passphrase",
                        "cannot decrypt the private key: wrong passphrase or unsupported \
                         encryption (PBES2 with AES and PBKDF2 or scrypt is supported)",
                    )
                })?
            }
            "RSA PRIVATE KEY" => {
                return Err(ConnectorError::config(
                    field,
                    "a PKCS#1 key (`BEGIN RSA PRIVATE KEY`); convert it with \
                     `openssl pkcs8 -topk8 -in key.pem -out key.p8`",
                ))
            }
            other => {
                return Err(ConnectorError::config(
                    field,
                    format!("a PEM `{other}`, not a PKCS#8 private key"),
                ))
            }
        };
        let key = RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| {
            ConnectorError::config(field, format!("not a usable RSA private key: {e}"))
        })?;
        let spki = subject_public_key_info(key.public_key().as_ref());
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        let fingerprint = format!("SHA256:{}", STANDARD.encode(digest.as_ref()));
        Ok(Self { key, fingerprint })
    }

    /// The public key fingerprint, `SHA256:<base64>`, as Snowflake shows it.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A signed token for `account` and `user`, issued now.
    pub(crate) fn jwt(&self, account: &str, user: &str) -> Result<Secret, ConnectorError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.jwt_at(account, user, now)
    }

    /// A signed token issued at `now` (seconds since the epoch).
    pub(crate) fn jwt_at(
        &self,
        account: &str,
        user: &str,
        now: u64,
    ) -> Result<Secret, ConnectorError> {
        let subject = format!("{}.{}", jwt_account(account), user.to_uppercase());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": format!("{subject}.{}", self.fingerprint),
            "sub": subject,
            "iat": now,
            "exp": now + LIFETIME_SECS,
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
            .map_err(|_| ConnectorError::internal("signing the login token failed"))?;
        Ok(Secret::new(format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// The account part of the claims: upper-cased, without a locator's region suffix.
fn jwt_account(account: &str) -> String {
    let account = account.trim();
    let account = account.split('.').next().unwrap_or(account);
    account.to_uppercase()
}

/// Wraps a PKCS#1 `RSAPublicKey` in the DER `SubjectPublicKeyInfo` Snowflake fingerprints.
fn subject_public_key_info(rsa_public_key: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(rsa_public_key);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

/// One DER tag-length-value.
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const PLAIN: &str = include_str!("../tests/keys/rsa_key.p8");
    const ENCRYPTED: &str = include_str!("../tests/keys/rsa_key_encrypted.p8");
    /// `openssl rsa -in rsa_key.p8 -pubout -outform DER | openssl dgst -sha256 -binary | base64`.
    const FINGERPRINT: &str = include_str!("../tests/keys/fingerprint.txt");

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn jwt_has_snowflakes_claims_and_verifies_with_the_public_key() {
        let pair = KeyPair::from_pem(PLAIN, None).unwrap();
        assert_eq!(pair.fingerprint(), format!("SHA256:{}", FINGERPRINT.trim()));
        let token = pair
            .jwt_at("xy12345.us-east-1", "loader", 1_700_000_000)
            .unwrap();
        let parts: Vec<&str> = token.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_part(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT"})
        );
        let claims = decode_part(parts[1]);
        assert_eq!(
            claims["iss"],
            format!("XY12345.LOADER.SHA256:{}", FINGERPRINT.trim())
        );
        assert_eq!(claims["sub"], "XY12345.LOADER");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > 1_700_000_000 && exp - 1_700_000_000 <= 3600);

        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.key.public_key());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &signature).unwrap();
        assert!(public.verify(b"tampered", &signature).is_err());
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let e = KeyPair::from_pem(ENCRYPTED, None).unwrap_err();
        assert_eq!(e.field(), Some("credential.key_pair.passphrase"));
        let e = KeyPair::from_pem(ENCRYPTED, Some(&Secret::new("guess-xyz"))).unwrap_err();
        assert_eq!(e.field(), Some("credential.key_pair.passphrase"));
        assert!(!e.message().contains("guess-xyz"));
        let pair = KeyPair::from_pem(ENCRYPTED, Some(&Secret::new("backflow-test"))).unwrap();
        assert_eq!(pair.fingerprint(), format!("SHA256:{}", FINGERPRINT.trim()));
    }

    #[test]
    fn account_drops_the_region_of_a_locator() {
        assert_eq!(jwt_account("myorg-acct"), "MYORG-ACCT");
        assert_eq!(jwt_account("xy12345.eu-west-1.aws"), "XY12345");
    }

    #[test]
    fn rejects_non_pkcs8_input() {
        let e = KeyPair::from_pem("not a key", None).unwrap_err();
        assert_eq!(e.field(), Some("credential.key_pair.private_key_file"));
    }
}
