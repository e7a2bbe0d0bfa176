//! Document ids from primary keys.
//!
//! Each key value is rendered as text (integers in decimal, strings as they are, decimals as
//! written, dates `YYYY-MM-DD`, timestamps `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UUIDs hyphenated,
//! booleans `true`/`false`), then `%`, `/` and `|` are percent-encoded (`%25`, `%2F`, `%7C`)
//! and the parts of a composite key are joined with `|`. A single string key without those
//! characters is therefore its own document id (`acme` → `acme`, `(7, "a/b")` → `7|a%2Fb`).
//! Ids Firestore reserves are escaped too: `.` and `..` become `%2E`, `%2E%2E`, and an id of
//! the form `__…__` starts with `%5F`. Because `%` itself is always encoded, distinct keys
//! always get distinct ids. NULL key parts, empty ids and ids over 1,500 bytes are rejected
//! rows.

use arrow::array::{Array, ArrayRef};
use backflow_connector_core::{quoted, CanonicalType, ConnectorError, NameError};

/// Firestore's maximum document id length, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 1500;

/// Whether a key column of this type has a stable text form for ids.
pub(crate) fn key_type_supported(ty: &CanonicalType) -> bool {
    !matches!(
        ty,
        CanonicalType::Float32
            | CanonicalType::Float64
            | CanonicalType::Binary
            | CanonicalType::Json
    )
}

/// Builds the id of each row from its key columns.
pub(crate) struct KeyColumns<'a> {
    columns: Vec<(&'a str, &'a CanonicalType, &'a ArrayRef)>,
}

impl<'a> KeyColumns<'a> {
    /// The key columns of one batch, in key order.
    pub(crate) fn new(columns: Vec<(&'a str, &'a CanonicalType, &'a ArrayRef)>) -> Self {
        Self { columns }
    }

    /// The document id of `row`, or why the row has none (the rejected row's message, and the
    /// key column at fault when one is).
    pub(crate) fn id(&self, row: usize) -> Result<String, (Option<String>, String)> {
        let mut id = String::new();
        for (i, (name, ty, array)) in self.columns.iter().enumerate() {
            if array.is_null(row) {
                return Err((
                    Some(name.to_string()),
                    "primary key value is NULL".to_string(),
                ));
            }
            let text = crate::value::text(ty, array, row)
                .ok_or_else(|| {
                    (
                        Some(name.to_string()),
                        "key type has no text form".to_string(),
                    )
                })?
                .map_err(|e| (Some(name.to_string()), e))?;
            if i > 0 {
                id.push('|');
            }
            escape_into(&text, &mut id);
        }
        finish(id).map_err(|e| (None, e))
    }
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '|' => out.push_str("%7C"),
            c => out.push(c),
        }
    }
}

fn finish(id: String) -> Result<String, String> {
    let id = match id.as_str() {
        "" => return Err("the primary key gives an empty document id".to_string()),
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        s if s.len() >= 4 && s.starts_with("__") && s.ends_with("__") => format!("%5F{}", &s[1..]),
        _ => id,
    };
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "the document id from the primary key is {} bytes, over Firestore's {MAX_ID_BYTES}",
            id.len()
        ));
    }
    Ok(id)
}

/// Whether `name` has the reserved form `__…__` (at least four bytes: `__` is not reserved).
fn reserved(name: &str) -> bool {
    name.len() >= 4 && name.starts_with("__") && name.ends_with("__")
}

/// Checks the `collection` path (`orders`, or `users/u1/orders` for a subcollection) and
/// returns its segments.
pub(crate) fn collection_path(object: &str) -> Result<String, ConnectorError> {
    let segments: Vec<&str> = object.split('/').collect();
    let bad = segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == ".." || reserved(s));
    if bad || segments.len().is_multiple_of(2) {
        return Err(ConnectorError::config(
            "collection",
            format!(
                "{} is not a Firestore collection path: a collection id, or \
                 `collection/document/subcollection` with an odd number of non-empty segments",
                quoted(object)
            ),
        ));
    }
    Ok(object.to_string())
}

/// Checks a sync's destination names without I/O, against Firestore's rules: each segment of
/// the collection path (collection ids, and the document ids between them) is not `.` or
/// `..`, holds no `/` (it separates segments), is not of the reserved form `__…__` and is at
/// most 1,500 bytes; each field name (destination column) is 1 to 1,500 bytes and not of the
/// form `__…__`.
pub fn check_destination_names(object: &str, columns: &[&str]) -> Result<(), NameError> {
    collection_path(object).map_err(|e| NameError::object(e.message()))?;
    if let Some(segment) = object.split('/').find(|s| s.len() > MAX_ID_BYTES) {
        return Err(NameError::object(format!(
            "the collection path segment {} is {} bytes; Firestore ids are at most \
             {MAX_ID_BYTES} bytes",
            quoted(segment),
            segment.len()
        )));
    }
    for column in columns {
        check_field_name(column)?;
    }
    Ok(())
}

/// Whether Firestore takes `name` as a top-level field name.
pub(crate) fn check_field_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_ID_BYTES {
        return Err(NameError::column(
            name,
            format!(
                "the field name {} is {} bytes; Firestore field names are 1 to 1,500 bytes",
                quoted(name),
                name.len()
            ),
        ));
    }
    if reserved(name) {
        return Err(NameError::column(
            name,
            format!(
                "Firestore reserves field names of the form __name__ ({})",
                quoted(name)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    fn ids(columns: Vec<(&str, CanonicalType, ArrayRef)>) -> Vec<Result<String, String>> {
        let rows = columns[0].2.len();
        let refs = columns.iter().map(|(n, t, a)| (*n, t, a)).collect();
        let keys = KeyColumns::new(refs);
        (0..rows).map(|r| keys.id(r).map_err(|e| e.1)).collect()
    }

    #[test]
    fn escapes_separators_and_reserved_ids() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("acme"),
            Some("a/b|c%"),
            Some("."),
            Some("__x__"),
            Some(""),
            None,
        ]));
        let got = ids(vec![("k", CanonicalType::Text, s)]);
        assert_eq!(got[0].as_deref(), Ok("acme"));
        assert_eq!(got[1].as_deref(), Ok("a%2Fb%7Cc%25"));
        assert_eq!(got[2].as_deref(), Ok("%2E"));
        assert_eq!(got[3].as_deref(), Ok("%5F_x__"));
        assert!(got[4].as_ref().unwrap_err().contains("empty"));
        assert!(got[5].as_ref().unwrap_err().contains("NULL"));
    }

    #[test]
    fn composite_keys_join_with_a_bar() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![7, -1]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["a|b", ""]));
        let got = ids(vec![
            ("a", CanonicalType::Int64, a),
            ("b", CanonicalType::Text, b),
        ]);
        assert_eq!(got[0].as_deref(), Ok("7|a%7Cb"));
        assert_eq!(got[1].as_deref(), Ok("-1|"));
    }

    #[test]
    fn names_follow_firestore_rules() {
        use backflow_connector_core::NamePart;
        assert!(check_destination_names("orders", &["id", "total"]).is_ok());
        assert!(check_destination_names("users/u1/orders", &["id"]).is_ok());
        let id = "c".repeat(MAX_ID_BYTES);
        assert!(check_destination_names(&id, &[&id]).is_ok());
        let over = "c".repeat(MAX_ID_BYTES + 1);
        let e = check_destination_names(&over, &[]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        assert!(e.message.contains("1501 bytes"), "{e}");
        let e = check_destination_names(&format!("users/{over}/orders"), &[]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        for bad in [".", "..", "__x__", "a//b", "users/u1"] {
            let e = check_destination_names(bad, &[]).unwrap_err();
            assert_eq!(e.part, NamePart::Object, "{bad}");
        }
        let e = check_destination_names("c", &["ok", "__name__"]).unwrap_err();
        assert_eq!(e.part, NamePart::Column("__name__".into()));
        let e = check_destination_names("c", &[&over]).unwrap_err();
        assert_eq!(e.part, NamePart::Column(over.clone()));
        let e = check_destination_names("c", &[""]).unwrap_err();
        assert_eq!(e.part, NamePart::Column(String::new()));
        let huge = "c".repeat(1 << 20);
        let e = check_destination_names(&huge, &[]).unwrap_err();
        assert!(e.message.len() < 500, "{}", e.message.len());
        let e = check_destination_names(&format!("{huge}/x"), &[]).unwrap_err();
        assert!(e.message.len() < 500, "{}", e.message.len());
    }

    #[test]
    fn collection_paths_need_an_odd_segment_count() {
        assert!(collection_path("orders").is_ok());
        assert!(collection_path("users/u1/orders").is_ok());
        for bad in ["", "users/u1", "a//b", "__x__"] {
            assert_eq!(
                collection_path(bad).unwrap_err().field(),
                Some("collection"),
                "{bad}"
            );
        }
    }
}
