//! Conversions between `google.protobuf.Struct` (how connection configs travel on the wire)
//! and `serde_json::Value` (how connectors parse them). Whole-number doubles become integers
//! again, because protobuf's `Value` has only doubles and a connector expecting `port: u16`
//! must not see `5432.0`.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// Converts a JSON object (or any value, wrapped as `{"value": …}` if not an object) to a
/// `Struct`.
pub fn struct_from_json(value: &serde_json::Value) -> Struct {
    match value {
        serde_json::Value::Object(map) => Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), value_from_json(v)))
                .collect(),
        },
        serde_json::Value::Null => Struct::default(),
        other => Struct {
            fields: [("value".to_owned(), value_from_json(other))].into(),
        },
    }
}

/// Converts a `Struct` to a JSON object.
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// Converts any JSON value to a protobuf `Value`.
pub fn value_from_json(value: &serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(value_from_json).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(struct_from_json(value)),
    };
    Value { kind: Some(kind) }
}

/// Largest integer a double holds exactly (2^53).
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Converts a protobuf `Value` to JSON, whole-number doubles as integers.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() <= EXACT_INTEGER_LIMIT {
                // Exact by the check above.
                #[allow(clippy::cast_possible_truncation)]
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_nested_config_and_keeps_integers_integral() {
        let json = serde_json::json!({
            "url": "postgres://app@127.0.0.1:5432/app",
            "password": "${env:APP_DB_PASSWORD}",
            "port": 5432,
            "ratio": 0.25,
            "tls": false,
            "tables": { "scores": "./data/scores.parquet" },
            "hosts": ["a", "b"],
            "missing": null
        });
        let back = struct_to_json(&struct_from_json(&json));
        assert_eq!(back, json);
        assert!(back["port"].is_i64());
    }
}
