//! Strict parsing of raw connector config into typed config.
//!
//! `validate` must be pure and must name the offending field, so parsing goes through
//! `serde_path_to_error`: a wrong type three levels deep reports `tables.scores` rather than a
//! bare serde message.

use serde::de::DeserializeOwned;

use crate::error::ConnectorError;

/// Deserializes `raw` into `T`, turning serde's error into a config error naming the field path.
///
/// `T` should use `#[serde(deny_unknown_fields)]` so a typo is an error, not a silently ignored
/// key.
pub fn parse<T: DeserializeOwned>(raw: &serde_json::Value) -> Result<T, ConnectorError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = if path == "." { String::new() } else { path };
        ConnectorError::config(field, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        server: Inner,
    }

    #[test]
    fn names_the_nested_field() {
        let e = parse::<Outer>(&serde_json::json!({"server": {"port": "x"}})).unwrap_err();
        assert_eq!(e.field(), Some("server.port"));
        let e = parse::<Outer>(&serde_json::json!({"server": {"port": 1, "prot": 2}})).unwrap_err();
        assert!(e.message().contains("unknown field `prot`"), "{e}");
    }
}
