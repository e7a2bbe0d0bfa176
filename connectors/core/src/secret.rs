//! Secret references (`${env:NAME}`, `${file:/path}`) and their resolution.
//!
//! Definitions store references, never values, so the API and the state store never hold a
//! password. Only the process that opens a connection resolves them, into a [`Secret`] whose
//! `Debug` and `Display` print a placeholder, so a value cannot reach a log line by accident.

use std::fmt;

use crate::error::{ConnectorError, ErrorKind};

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
            format!("unknown secret reference `${{{reference}}}`: expected ${{env:NAME}} or ${{file:PATH}}"),
        )),
    }
}

fn resolve_one(field: &str, reference: &str) -> Result<String, ConnectorError> {
    match parse_reference(field, reference)? {
        Reference::Env(name) => std::env::var(name).map_err(|_| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("environment variable `{name}` is not set"),
            )
            .with_field(field)
        }),
        Reference::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("cannot read secret file `{path}`: {e}"),
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

/// Renders a connection URL for messages with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let redacted = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!(
                "{}{}{}",
                &url[..authority_start],
                redacted,
                &url[authority_start + at..]
            )
        }
        None => url.to_string(),
    }
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
    }
}
