//! Strict parsing of raw connector config into typed config.
//!
//! `validate` must be pure and must name the offending field, so parsing goes through
//! `serde_path_to_error`: a wrong type three levels deep reports `tables.scores` rather than a
//! bare serde message.

use schemars::{generate::SchemaSettings, JsonSchema};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ConnectorError;
use crate::secret::SECRET_KEYS;

/// Deserializes `raw` into `T`, turning serde's error into a config error naming the field path.
///
/// `T` should use `#[serde(deny_unknown_fields)]` so a typo is an error, not a silently ignored
/// key.
pub fn parse<T: DeserializeOwned>(raw: &serde_json::Value) -> Result<T, ConnectorError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let mut field = if path == "." { String::new() } else { path };
        // A missing field is reported at its parent's path; name the field itself.
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = if field.is_empty() {
                missing.to_owned()
            } else {
                format!("{field}.{missing}")
            };
        }
        ConnectorError::config(field, message)
    })
}

/// The JSON Schema of config type `T` (draft 2020-12), with every subschema inlined so a
/// client (and [`config_fields`]) reads one self-contained document.
///
/// Secret fields carry `"writeOnly": true`: every `password` and `passphrase` (the keys whose
/// literal values responses mask), plus fields marked on the struct with
/// `#[schemars(extend("writeOnly" = true))]` (a reference to a key file).
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    mark_secret_keys(&mut schema);
    schema
}

/// Adds `writeOnly` to every property named like a secret, wherever it is nested.
fn mark_secret_keys(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for (name, field) in properties.iter_mut() {
                    if SECRET_KEYS.contains(&name.as_str()) {
                        if let Value::Object(field) = field {
                            field.insert("writeOnly".into(), Value::Bool(true));
                        }
                    }
                }
            }
            map.values_mut().for_each(mark_secret_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(mark_secret_keys),
        _ => {}
    }
}

/// One field of a connector config, flattened out of its JSON Schema for listings, forms and
/// the documentation check.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigField {
    /// Dotted path from the config's root: `url`, `credential.key_pair.passphrase`; a map's
    /// entries are `*` (`tables.*.path`).
    pub path: String,
    /// JSON types the field takes (`string`, `integer`, `boolean`, `object`, …), without
    /// `null`: an optional field is shown by `required`, not by a null type.
    pub types: Vec<String>,
    /// Whether the object holding the field must have it.
    pub required: bool,
    /// A secret: write it as a reference (`${env:NAME}`); a literal is never returned.
    pub secret: bool,
    /// The value used when the field is absent, when there is one besides "none".
    pub default: Option<Value>,
    /// The values allowed, for a field that takes one of a few words.
    pub allowed: Vec<Value>,
    /// What the field means, from the config struct's doc comment.
    pub description: String,
}

/// Every field of a config schema from [`schema_of`], parents before their children, in the
/// schema's property order.
pub fn config_fields(schema: &Value) -> Vec<ConfigField> {
    let mut out = Vec::new();
    collect_fields(schema, "", "", &mut out);
    out
}

/// Adds the fields of `schema` under `prefix`. `fallback` describes a field that has no
/// description of its own: a tagged enum's variant (`credential: { password: … }`) documents
/// its one property on the variant.
fn collect_fields(schema: &Value, prefix: &str, fallback: &str, out: &mut Vec<ConfigField>) {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, field) in properties {
            let path = join(name);
            out.push(ConfigField {
                path: path.clone(),
                types: json_types(field),
                required: required.contains(&name.as_str()),
                secret: field.get("writeOnly") == Some(&Value::Bool(true)),
                default: field.get("default").filter(|d| !d.is_null()).cloned(),
                allowed: allowed_values(field),
                description: description_of(field).unwrap_or(fallback).to_owned(),
            });
            collect_fields(field, &path, "", out);
        }
    }
    if let Some(entries) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        collect_fields(entries, &join("*"), "", out);
    }
    for variant in alternatives(schema) {
        collect_fields(variant, prefix, description_of(variant).unwrap_or(""), out);
    }
}

fn description_of(schema: &Value) -> Option<&str> {
    schema.get("description").and_then(Value::as_str)
}

/// The `oneOf`/`anyOf` alternatives of a schema (an enum, an untagged value).
fn alternatives(schema: &Value) -> impl Iterator<Item = &Value> {
    ["oneOf", "anyOf"]
        .into_iter()
        .filter_map(|k| schema.get(k).and_then(Value::as_array))
        .flatten()
}

fn json_types(schema: &Value) -> Vec<String> {
    let mut types: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => alternatives(schema).flat_map(json_types).collect(),
    };
    types.retain(|t| t != "null");
    types.sort();
    types.dedup();
    types
}

fn allowed_values(schema: &Value) -> Vec<Value> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().filter(|v| !v.is_null()).cloned().collect();
    }
    alternatives(schema)
        .flat_map(|v| match v.get("const") {
            Some(word) => vec![word.clone()],
            None => allowed_values(v),
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config shaped like the connectors' own: a secret, defaults, a word enum, a tagged
    /// credential and a map of entries.
    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        /// Where to connect.
        url: String,
        /// Overrides the URL's password.
        #[serde(default)]
        password: Option<String>,
        /// A reference to a key file.
        #[serde(default)]
        #[schemars(extend("writeOnly" = true))]
        key: Option<String>,
        /// Seconds to wait.
        #[serde(default = "thirty")]
        timeout_secs: u64,
        /// How to sign in.
        #[serde(default)]
        auth: Option<Auth>,
        /// Named entries.
        #[serde(default)]
        tables: std::collections::BTreeMap<String, Inner>,
    }

    fn thirty() -> u64 {
        30
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Auth {
        Password,
        Iam,
    }

    #[derive(Debug, serde::Deserialize, JsonSchema)]
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
        let e = parse::<Outer>(&serde_json::json!({"server": {}})).unwrap_err();
        assert_eq!(e.field(), Some("server.port"));
        let e = parse::<Outer>(&serde_json::json!({})).unwrap_err();
        assert_eq!(e.field(), Some("server"));
    }

    #[test]
    fn fields_come_from_the_schema_with_secrets_defaults_and_words() {
        let fields = config_fields(&schema_of::<Sample>());
        let mut paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
        // Declaration order, or alphabetical when serde_json does not preserve order.
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "auth",
                "key",
                "password",
                "tables",
                "tables.*.port",
                "timeout_secs",
                "url"
            ]
        );
        let field = |p: &str| fields.iter().find(|f| f.path == p).unwrap();
        assert!(field("url").required && !field("url").secret);
        assert_eq!(field("url").types, ["string"]);
        assert!(field("password").secret && !field("password").required);
        assert!(field("key").secret);
        assert_eq!(field("timeout_secs").default, Some(serde_json::json!(30)));
        assert_eq!(field("timeout_secs").types, ["integer"]);
        assert_eq!(field("timeout_secs").description, "Seconds to wait.");
        assert_eq!(
            field("auth").allowed,
            [serde_json::json!("password"), serde_json::json!("iam")]
        );
        assert!(field("tables.*.port").required);
    }

    #[test]
    fn the_schema_refuses_what_the_parser_refuses() {
        let schema = schema_of::<Sample>();
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        assert_eq!(schema["required"], serde_json::json!(["url"]));
    }
}
