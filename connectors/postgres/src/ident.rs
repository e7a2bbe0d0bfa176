//! Identifier quoting and parsing of `WriteTarget::object`.
//!
//! Every identifier this crate puts into SQL goes through [`quote`], so a column called
//! `order` or `a"b` is as safe as `id`. Names are exact (case-sensitive): `Scores` means the
//! table `"Scores"`, the way the canonical schema carries column names.

use backflow_connector_core::names::{check_max_bytes, check_not_empty_or_nul};
use backflow_connector_core::{quoted, ConnectorError, NameError};

/// The longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`). The server
/// silently truncates longer ones, so two names that differ only after byte 63 would name the
/// same table or column.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The schema an unqualified table lands in on a default search path, which object keys
/// assume (`t` and `public.t` are the same table).
const DEFAULT_SCHEMA: &str = "public";

/// Checks one identifier (a schema, table or column name) against what PostgreSQL stores
/// exactly: not empty, no NUL (the protocol's strings end at one), at most 63 bytes.
pub fn check_identifier(name: &str, what: &str) -> Result<(), String> {
    check_not_empty_or_nul(name, what)?;
    check_max_bytes(name, what, MAX_IDENTIFIER_BYTES)
}

/// Checks a sync's destination names without I/O: `object` (`table` or `schema.table`, each
/// part at most 63 bytes) and every destination column, so nothing is silently truncated.
pub fn check_destination_names(object: &str, columns: &[&str]) -> Result<(), NameError> {
    let parsed = ObjectName::parse(object).map_err(|e| NameError::object(e.message()))?;
    if let Some(schema) = &parsed.schema {
        check_identifier(schema, "schema name").map_err(NameError::object)?;
    }
    check_identifier(&parsed.table, "table name").map_err(NameError::object)?;
    for column in columns {
        check_identifier(column, "column name").map_err(|m| NameError::column(column, m))?;
    }
    Ok(())
}

/// The table `object` names, spelled one way (`"public"."t"` for both `t` and `public.t`),
/// so two syncs writing the same table can be recognised; `None` when `object` does not
/// parse. An unqualified name is taken to be in `public`, the default search path's schema:
/// a role whose search path puts it elsewhere may see two different tables refused as one,
/// never the reverse.
pub fn object_key(object: &str) -> Option<String> {
    let parsed = ObjectName::parse(object).ok()?;
    let schema = parsed.schema.as_deref().unwrap_or(DEFAULT_SCHEMA);
    Some(format!("{}.{}", quote(schema), quote(&parsed.table)))
}

/// Double-quotes an identifier, doubling embedded quotes.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table named by the user: `table` or `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectName {
    /// The schema, when the user gave one; otherwise the search path decides.
    pub(crate) schema: Option<String>,
    /// The table.
    pub(crate) table: String,
}

impl ObjectName {
    /// Parses `table`, `schema.table`, or either part double-quoted (to hold a dot or quote).
    pub(crate) fn parse(object: &str) -> Result<Self, ConnectorError> {
        let invalid = |why: &str| {
            ConnectorError::config(
                "table",
                format!(
                    "invalid table name {}: {why}; expected `table` or `schema.table`",
                    quoted(object)
                ),
            )
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = object.trim().chars().peekable();
        let mut quoted_part = false;
        while let Some(c) = chars.next() {
            match c {
                '"' if current.is_empty() && !quoted_part => {
                    quoted_part = true;
                    loop {
                        match chars.next() {
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                current.push('"');
                            }
                            Some('"') => break,
                            Some(c) => current.push(c),
                            None => return Err(invalid("unterminated quote")),
                        }
                    }
                    if !matches!(chars.peek(), None | Some('.')) {
                        return Err(invalid("unexpected text after a quoted name"));
                    }
                }
                '.' => {
                    parts.push(std::mem::take(&mut current));
                    quoted_part = false;
                }
                '"' => return Err(invalid("unexpected quote")),
                c => current.push(c),
            }
        }
        parts.push(current);
        if parts.iter().any(String::is_empty) {
            return Err(invalid("empty name"));
        }
        match parts.len() {
            1 => Ok(Self {
                schema: None,
                table: parts.remove(0),
            }),
            2 => {
                let table = parts.pop().unwrap_or_default();
                Ok(Self {
                    schema: parts.pop(),
                    table,
                })
            }
            _ => Err(invalid("too many dots")),
        }
    }

    /// The quoted SQL form, schema-qualified when a schema was given.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote(s), quote(&self.table)),
            None => quote(&self.table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::NamePart;

    #[test]
    fn quotes_embedded_quotes() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote("order"), "\"order\"");
    }

    #[test]
    fn parses_objects() {
        let o = ObjectName::parse("public.scores").unwrap();
        assert_eq!(o.schema.as_deref(), Some("public"));
        assert_eq!(o.table, "scores");
        assert_eq!(o.quoted(), "\"public\".\"scores\"");

        let o = ObjectName::parse("Scores").unwrap();
        assert_eq!(o.schema, None);
        assert_eq!(o.quoted(), "\"Scores\"");

        let o = ObjectName::parse("\"my.schema\".\"a\"\"b\"").unwrap();
        assert_eq!(o.schema.as_deref(), Some("my.schema"));
        assert_eq!(o.table, "a\"b");

        assert!(ObjectName::parse("a.b.c").is_err());
        assert!(ObjectName::parse("a.").is_err());
        assert!(ObjectName::parse("\"a").is_err());
        assert!(ObjectName::parse("").is_err());
    }

    #[test]
    fn names_over_63_bytes_are_refused_per_part() {
        let t63 = "t".repeat(63);
        let t64 = "t".repeat(64);
        assert!(check_destination_names(&t63, &["id"]).is_ok());
        assert!(check_destination_names(&format!("{t63}.{t63}"), &[&t63]).is_ok());
        let e = check_destination_names(&t64, &["id"]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        assert!(e.message.contains("64 bytes long; the limit is 63"), "{e}");
        let e = check_destination_names(&format!("{t64}.t"), &[]).unwrap_err();
        assert!(e.message.starts_with("the schema name"), "{e}");
        // 63 bytes of two-byte characters is 31 characters plus one byte: 32 'é' are 64 bytes.
        let e = check_destination_names(&"é".repeat(32), &[]).unwrap_err();
        assert!(e.message.contains("64 bytes"), "{e}");
        let e = check_destination_names("t", &["id", &t64]).unwrap_err();
        assert_eq!(e.part, NamePart::Column(t64.clone()));
        let e = check_destination_names("t", &["a\0b"]).unwrap_err();
        assert!(e.message.contains("NUL"), "{e}");
        let e = check_destination_names("t", &[""]).unwrap_err();
        assert_eq!(e.part, NamePart::Column(String::new()));
    }

    #[test]
    fn a_huge_name_is_refused_without_being_echoed() {
        let huge = "x".repeat(1 << 20);
        let e = check_destination_names(&huge, &[]).unwrap_err();
        assert!(e.message.len() < 500, "{} bytes", e.message.len());
        assert!(e.message.contains("1048576 bytes"), "{e}");
        let e = check_destination_names("\"unterminated", &[]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        let long_bad = format!("\"{huge}");
        let e = check_destination_names(&long_bad, &[]).unwrap_err();
        assert!(e.message.len() < 500, "{} bytes", e.message.len());
    }

    #[test]
    fn object_keys_spell_the_default_schema() {
        assert_eq!(object_key("t"), object_key("public.t"));
        assert_eq!(object_key("t"), object_key("\"public\".\"t\""));
        assert_ne!(object_key("t"), object_key("T"));
        assert_ne!(object_key("app.t"), object_key("t"));
        assert_ne!(object_key("\"a.b\".c"), object_key("a.\"b.c\""));
        assert_eq!(object_key("a.b.c"), None);
    }
}
