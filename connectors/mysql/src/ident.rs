//! Identifier quoting and parsing of `WriteTarget::object`.
//!
//! Every identifier this crate puts into SQL goes through [`quote`], so a column called
//! `order` or ``a`b`` is as safe as `id`.

use backflow_connector_core::names::{check_max_chars, check_not_empty_or_nul};
use backflow_connector_core::{quoted, ConnectorError, NameError};

/// The longest database, table or column name MySQL and MariaDB accept, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 64;

/// Checks one identifier (a database, table or column name) against MySQL's and MariaDB's
/// rules: not empty, at most 64 characters, no NUL, no character outside the Basic
/// Multilingual Plane (utf8mb3 identifiers cannot hold one), and no trailing space (the
/// server refuses it, or strips it and so names another object).
pub fn check_identifier(name: &str, what: &str) -> Result<(), String> {
    check_not_empty_or_nul(name, what)?;
    check_max_chars(name, what, MAX_IDENTIFIER_CHARS)?;
    if name.ends_with(' ') {
        return Err(format!("the {what} {} ends with a space", quoted(name)));
    }
    if let Some(c) = name.chars().find(|c| u32::from(*c) > 0xFFFF) {
        return Err(format!(
            "the {what} {} contains {c:?} (U+{:X}), outside the Basic Multilingual Plane that \
             MySQL identifiers are limited to",
            quoted(name),
            u32::from(c)
        ));
    }
    Ok(())
}

/// Checks a sync's destination names without I/O: `object` (`table` or `database.table`)
/// and every destination column, against [`check_identifier`].
pub fn check_destination_names(object: &str, columns: &[&str]) -> Result<(), NameError> {
    let parsed = ObjectName::parse(object).map_err(|e| NameError::object(e.message()))?;
    if let Some(database) = &parsed.database {
        check_identifier(database, "database name").map_err(NameError::object)?;
    }
    check_identifier(&parsed.table, "table name").map_err(NameError::object)?;
    for column in columns {
        check_identifier(column, "column name").map_err(|m| NameError::column(column, m))?;
    }
    Ok(())
}

/// The table `object` names, spelled one way (`` `app`.`t` `` for both `t` and `app.t` when
/// the connection's database is `app`), so two syncs writing one table can be recognised;
/// `None` when `object` does not parse. Names compare exactly, as on a server with the
/// default (case-sensitive) `lower_case_table_names=0`.
pub fn object_key(object: &str, default_database: Option<&str>) -> Option<String> {
    let parsed = ObjectName::parse(object).ok()?;
    let database = parsed
        .database
        .as_deref()
        .or(default_database)
        .unwrap_or_default();
    Some(format!("{}.{}", quote(database), quote(&parsed.table)))
}

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
                    "invalid table name {}: {why}; expected `table` or `database.table`",
                    quoted(object)
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
    use backflow_connector_core::NamePart;

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

    #[test]
    fn identifiers_follow_mysql_rules() {
        assert!(check_destination_names("app.scores", &["id", "ltv"]).is_ok());
        // 64 characters pass whatever their byte length; 65 do not.
        let t64 = "é".repeat(64);
        assert!(check_destination_names(&t64, &[&t64]).is_ok());
        let t65 = "t".repeat(65);
        let e = check_destination_names(&t65, &[]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        assert!(e.message.contains("65 characters long"), "{e}");
        let e = check_destination_names(&format!("{t65}.t"), &[]).unwrap_err();
        assert!(e.message.starts_with("the database name"), "{e}");
        let e = check_destination_names("`t `", &[]).unwrap_err();
        assert!(e.message.contains("ends with a space"), "{e}");
        let e = check_destination_names("t", &["id", "score "]).unwrap_err();
        assert_eq!(e.part, NamePart::Column("score ".into()));
        let e = check_destination_names("t", &["a\0"]).unwrap_err();
        assert!(e.message.contains("NUL"), "{e}");
        let e = check_destination_names("t", &["emoji😀"]).unwrap_err();
        assert!(e.message.contains("Basic Multilingual Plane"), "{e}");
        let huge = "x".repeat(1 << 20);
        let e = check_destination_names(&huge, &[]).unwrap_err();
        assert!(e.message.len() < 500, "{}", e.message.len());
    }

    #[test]
    fn object_keys_fill_in_the_connection_database() {
        assert_eq!(object_key("t", Some("app")), object_key("app.t", None));
        assert_eq!(
            object_key("`app`.`t`", Some("other")),
            object_key("app.t", None)
        );
        assert_ne!(
            object_key("t", Some("app")),
            object_key("other.t", Some("app"))
        );
        assert_ne!(object_key("t", None), object_key("T", None));
        assert_eq!(object_key("a.b.c", None), None);
    }
}
