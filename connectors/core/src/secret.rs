//! Secret references (`${env:NAME}`, `${file:/path}`) and their resolution.
//!
//! Definitions store references, never values, so the API and the state store never hold a
//! password. Only the process that opens a connection resolves them, into a [`Secret`] whose
//! `Debug` and `Display` print a placeholder, so a value cannot reach a log line by accident.

use std::fmt;

use crate::error::{ConnectorError, ErrorKind};
use crate::names::quoted;

/// A resolved secret value that refuses to print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps an already-resolved value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for handing to a driver; never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces every `${env:NAME}` and `${file:PATH}` reference in `template`.
///
/// `field` names the config field for the error, which names the missing variable or file but
/// never includes any resolved value.
pub fn resolve(field: &str, template: &str) -> Result<Secret, ConnectorError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            ConnectorError::config(field, "unterminated secret reference: missing `}`")
        })?;
        let reference = &after[..end];
        out.push_str(&resolve_one(field, reference)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Secret(out))
}

/// Checks the syntax of every reference in `template` without reading any value, so `validate`
/// can reject `${vault:x}` while staying free of I/O.
pub fn check_references(field: &str, template: &str) -> Result<(), ConnectorError> {
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            ConnectorError::config(field, "unterminated secret reference: missing `}`")
        })?;
        parse_reference(field, &after[..end])?;
        rest = &after[end + 1..];
    }
    Ok(())
}

enum Reference<'a> {
    Env(&'a str),
    File(&'a str),
}

fn parse_reference<'a>(field: &str, reference: &'a str) -> Result<Reference<'a>, ConnectorError> {
    match reference.split_once(':') {
        Some(("env", name)) if !name.is_empty() => Ok(Reference::Env(name)),
        Some(("file", path)) if !path.is_empty() => Ok(Reference::File(path)),
        _ => Err(ConnectorError::config(
            field,
            format!(
                "unknown secret reference {}: expected ${{env:NAME}} or ${{file:PATH}}",
                quoted(&format!("${{{reference}}}"))
            ),
        )),
    }
}

fn resolve_one(field: &str, reference: &str) -> Result<String, ConnectorError> {
    match parse_reference(field, reference)? {
        Reference::Env(name) => std::env::var(name).map_err(|_| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("environment variable {} is not set", quoted(name)),
            )
            .with_field(field)
        }),
        Reference::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("cannot read secret file {}: {e}", quoted(path)),
                )
                .with_field(field)
            }),
    }
}

/// `template` with every `${…}` reference replaced by `with` (syntax checked beforehand by
/// [`check_references`]), so a URL holding references can be parsed for its shape during the
/// pure validation step, before any secret is resolved.
pub fn replace_references(template: &str, with: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push_str(with);
                rest = &rest[start + end + 1..];
            }
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// What a masked secret is shown as.
pub const MASK: &str = "***";

/// The byte range of the password in `url` (`scheme://user:PASSWORD@host…`), if it has one.
///
/// The userinfo normally ends at the last `@` before the path; a password holding an
/// unencoded `/`, `?` or `#` (which a lenient driver may still accept) would end the
/// authority early, so when the authority has no `@`, the first `@` after `://` ends the
/// userinfo instead. Masking too much is harmless; showing part of a password is not.
fn password_range(url: &str) -> Option<std::ops::Range<usize>> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end]
        .rfind('@')
        .or_else(|| rest.find('@'))?;
    let colon = rest[..at].find(':')?;
    Some(authority_start + colon + 1..authority_start + at)
}

/// Renders a connection URL for messages with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match password_range(url) {
        Some(range) => format!("{}{MASK}{}", &url[..range.start], &url[range.end..]),
        None => url.to_string(),
    }
}

/// Config keys whose literal values are secrets wherever they appear in a connector config.
pub(crate) const SECRET_KEYS: &[&str] = &["password", "passphrase"];

/// Whether `value` is nothing but secret references (`${env:A}${file:/b}`), which name where a
/// secret lives and are safe, and useful, to show.
fn only_references(value: &str) -> bool {
    !value.is_empty() && value.starts_with("${") && replace_references(value, "").is_empty()
}

/// One string of a config as it may be shown: a literal value of a secret key, and a literal
/// password inside a URL, become `***`; references stay as written.
fn redact_string(key: Option<&str>, value: &str) -> String {
    if key.is_some_and(|k| SECRET_KEYS.contains(&k)) && !value.is_empty() {
        return if only_references(value) {
            value.to_string()
        } else {
            MASK.to_string()
        };
    }
    match password_range(value) {
        Some(range) if !only_references(&value[range.clone()]) && !range.is_empty() => {
            format!("{}{MASK}{}", &value[..range.start], &value[range.end..])
        }
        _ => value.to_string(),
    }
}

fn redact_value(key: Option<&str>, value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact_string(key, s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_value(key, v)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_value(Some(k), v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A connector config as the API and the CLI may show it: every password written inside a
/// URL (`postgres://app:s3cret@db/app` → `postgres://app:***@db/app`) and every literal
/// `password` or `passphrase` value is replaced by `***`. Secret references are kept, since
/// they name where a secret lives rather than holding it.
pub fn redact_config(config: &serde_json::Value) -> serde_json::Value {
    redact_value(None, config)
}

/// Undoes [`redact_config`] on a config sent back by a client, so that reading a connection
/// and writing it back unchanged keeps its secrets.
///
/// Each string still equal to the redaction of the stored string at the same place takes the
/// stored value back, but only when `incoming` and `stored` agree on everything that is not
/// masked: a client that changed the host while keeping `***` would otherwise send the stored
/// password to another server. Returns `None` in that case (and whenever a mask cannot be
/// restored); the caller refuses the config so a literal `***` is never stored as a password.
pub fn restore_redacted(
    incoming: &serde_json::Value,
    stored: &serde_json::Value,
) -> Option<serde_json::Value> {
    if !holds_mask(incoming) {
        return Some(incoming.clone());
    }
    if redact_config(incoming) != redact_config(stored) {
        return None;
    }
    let restored = restore_value(None, incoming, stored);
    (!holds_mask(&restored)).then_some(restored)
}

fn restore_value(
    key: Option<&str>,
    incoming: &serde_json::Value,
    stored: &serde_json::Value,
) -> serde_json::Value {
    use serde_json::Value;
    match (incoming, stored) {
        (Value::String(i), Value::String(s)) if *i != *s && *i == redact_string(key, s) => {
            Value::String(s.clone())
        }
        (Value::Array(i), Value::Array(s)) if i.len() == s.len() => Value::Array(
            i.iter()
                .zip(s)
                .map(|(i, s)| restore_value(key, i, s))
                .collect(),
        ),
        (Value::Object(i), Value::Object(s)) => Value::Object(
            i.iter()
                .map(|(k, v)| {
                    let restored = match s.get(k) {
                        Some(stored) => restore_value(Some(k), v, stored),
                        None => v.clone(),
                    };
                    (k.clone(), restored)
                })
                .collect(),
        ),
        _ => incoming.clone(),
    }
}

/// Whether `config` holds the mask `***` where a secret goes (a URL's password, a
/// `password` or `passphrase` value): what a client sends when it writes back a redacted
/// config. Stored as is, it would become the password.
pub fn holds_mask(config: &serde_json::Value) -> bool {
    fn walk(key: Option<&str>, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                (key.is_some_and(|k| SECRET_KEYS.contains(&k)) && s == MASK)
                    || password_range(s).is_some_and(|r| &s[r] == MASK)
            }
            Value::Array(items) => items.iter().any(|v| walk(key, v)),
            Value::Object(map) => map.iter().any(|(k, v)| walk(Some(k), v)),
            _ => false,
        }
    }
    walk(None, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_references() {
        std::env::set_var("BACKFLOW_TEST_SECRET_A", "s3cret");
        let dir = std::env::temp_dir().join(format!("bf-secret-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        let template = format!(
            "postgres://app:${{env:BACKFLOW_TEST_SECRET_A}}@h/db?x=${{file:{}}}",
            dir.display()
        );
        let s = resolve("url", &template).unwrap();
        assert_eq!(s.expose(), "postgres://app:s3cret@h/db?x=from-file");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        std::fs::remove_file(dir).unwrap();
    }

    #[test]
    fn missing_variable_names_it_and_the_field() {
        let e = resolve("password", "${env:BACKFLOW_SURELY_UNSET_VAR}").unwrap_err();
        assert_eq!(e.field(), Some("password"));
        assert!(e.message().contains("BACKFLOW_SURELY_UNSET_VAR"));
    }

    #[test]
    fn unknown_scheme_is_a_config_error() {
        let e = check_references("password", "${vault:x}").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(check_references("url", "plain").is_ok());
    }

    #[test]
    fn redacts_url_passwords() {
        assert_eq!(
            redact_url("postgres://app:hunter2@127.0.0.1:5432/db"),
            "postgres://app:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact_url("postgres://app@h/db"), "postgres://app@h/db");
        assert_eq!(redact_url("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
        // An `@` in the password, and a password with an unencoded `/` (authority cut short).
        assert_eq!(
            redact_url("mysql://u:p@ss@h:3306/db"),
            "mysql://u:***@h:3306/db"
        );
        assert_eq!(redact_url("mongodb://u:a/b@h/db"), "mongodb://u:***@h/db");
        assert_eq!(redact_url("https://h/path?q=1"), "https://h/path?q=1");
    }

    #[test]
    fn redacted_configs_hide_literal_secrets_and_keep_references() {
        let config = serde_json::json!({
            "url": "postgres://app:hunter2@127.0.0.1:5432/db?sslmode=disable",
            "password": "literal-pw",
            "nested": { "passphrase": "pp", "urls": ["mysql://u:x@h/d", "mysql://u@h/d"] },
            "port": 5432,
        });
        let shown = redact_config(&config);
        let text = shown.to_string();
        for secret in ["hunter2", "literal-pw", "\"pp\"", "u:x@"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(
            shown["url"],
            "postgres://app:***@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(shown["password"], MASK);
        assert_eq!(shown["nested"]["urls"][1], "mysql://u@h/d");
        assert_eq!(shown["port"], 5432);

        let references = serde_json::json!({
            "url": "postgres://app:${env:PW}@h/db",
            "password": "${file:secrets/pw}",
        });
        assert_eq!(redact_config(&references), references);
        assert!(!holds_mask(&references));
        assert!(holds_mask(&shown));
    }

    #[test]
    fn a_redacted_config_written_back_keeps_the_stored_secrets() {
        let stored = serde_json::json!({
            "url": "postgres://app:hunter2@h/db",
            "password": "pw",
            "connect_timeout_secs": 5,
        });
        let shown = redact_config(&stored);
        assert_eq!(restore_redacted(&shown, &stored), Some(stored.clone()));

        // A new password next to a mask: the new one is taken, the mask restored.
        let mut new_password = shown.clone();
        new_password["password"] = "pw2".into();
        let restored = restore_redacted(&new_password, &stored).unwrap();
        assert_eq!(restored["password"], "pw2");
        assert_eq!(restored["url"], "postgres://app:hunter2@h/db");

        // Another host with the mask kept: the stored password must not follow.
        let mut moved = shown.clone();
        moved["url"] = "postgres://app:***@elsewhere/db".into();
        assert_eq!(restore_redacted(&moved, &stored), None);
        let mut other_setting = shown;
        other_setting["connect_timeout_secs"] = 9.into();
        assert_eq!(restore_redacted(&other_setting, &stored), None);

        // Nothing masked: taken as sent.
        let plain = serde_json::json!({ "url": "postgres://app:new@h/db" });
        assert_eq!(restore_redacted(&plain, &stored), Some(plain.clone()));
    }
}
