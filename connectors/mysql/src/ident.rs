//! Identifier quoting and parsing of `WriteTarget::object`.
//!
//! Every identifier this crate puts into SQL goes through [`quote`], so a column called
//! `order` or ``a`b`` is as safe as `id`.

use backflow_connector_core::ConnectorError;

/// Backtick-quotes an identifier, doubling embedded backticks.
pub(crate) fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A table named by the user: `table` or `database.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectName {
    /// The database, when the user gave one; otherwise the connection's database.
    pub(crate) database: Option<String>,
    /// The table.
    pub(crate) table: String,
}

impl ObjectName {
    /// Parses `table`, `database.table`, or either part backtick-quoted (to hold a dot).
    pub(crate) fn parse(object: &str) -> Result<Self, ConnectorError> {
        let invalid = |why: &str| {
            ConnectorError::config(
                "table",
                format!(
                    "invalid table name `{object}`: {why}; expected `table` or `database.table`"
                ),
            )
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = object.trim().chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '`' if current.is_empty() => {
                    loop {
                        match chars.next() {
                            Some('`') if chars.peek() == Some(&'`') => {
                                chars.next();
                                current.push('`');
                            }
                            Some('`') => break,
                            Some(c) => current.push(c),
                            None => return Err(invalid("unterminated quote")),
                        }
                    }
                    if !matches!(chars.peek(), None | Some('.')) {
                        return Err(invalid("unexpected text after a quoted name"));
                    }
                }
                '.' => parts.push(std::mem::take(&mut current)),
                '`' => return Err(invalid("unexpected backtick")),
                c => current.push(c),
            }
        }
        parts.push(current);
        if parts.iter().any(String::is_empty) {
            return Err(invalid("empty name"));
        }
        match parts.len() {
            1 => Ok(Self {
                database: None,
                table: parts.remove(0),
            }),
            2 => {
                let table = parts.pop().unwrap_or_default();
                Ok(Self {
                    database: parts.pop(),
                    table,
                })
            }
            _ => Err(invalid("too many dots")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_quotes() {
        assert_eq!(
            ObjectName::parse("app.scores").unwrap(),
            ObjectName {
                database: Some("app".into()),
                table: "scores".into()
            }
        );
        assert_eq!(
            ObjectName::parse("`a.b`").unwrap(),
            ObjectName {
                database: None,
                table: "a.b".into()
            }
        );
        assert_eq!(quote("we`ird"), "`we``ird`");
        for bad in ["", "a.", "a.b.c", "`x", "a`b"] {
            let e = ObjectName::parse(bad).unwrap_err();
            assert_eq!(e.field(), Some("table"), "{bad}");
        }
    }
}
