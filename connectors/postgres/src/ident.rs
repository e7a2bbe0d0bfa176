//! Identifier quoting and parsing of `WriteTarget::object`.
//!
//! Every identifier this crate puts into SQL goes through [`quote`], so a column called
//! `order` or `a"b` is as safe as `id`. Names are exact (case-sensitive): `Scores` means the
//! table `"Scores"`, the way the canonical schema carries column names.

use backflow_connector_core::ConnectorError;

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
                format!("invalid table name `{object}`: {why}; expected `table` or `schema.table`"),
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
}
