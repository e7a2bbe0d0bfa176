//! Table names, identifier quoting and catalog introspection (columns, keys).

use backflow_connector_core::names::check_not_empty_or_nul;
use backflow_connector_core::{quoted, ConnectorError, ErrorKind, NameError};
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

use crate::error::from_sqlx;

/// Quotes an identifier for SQLite, so any name (keywords, spaces, quotes) is safe in SQL.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A target table: `table` or `schema.table` (`main` when omitted); either part may be
/// double-quoted to contain dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    pub(crate) schema: String,
    pub(crate) table: String,
}

impl TableName {
    /// Parses `object` as the user wrote it in the sync definition.
    pub(crate) fn parse(object: &str) -> Result<Self, ConnectorError> {
        let invalid = |why: &str| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("invalid SQLite table name {}: {why}", quoted(object)),
            )
            .with_field("destination.table")
        };
        let mut parts = Vec::new();
        let mut chars = object.trim().chars().peekable();
        loop {
            let mut part = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            part.push('"');
                        }
                        Some('"') => break,
                        Some(c) => part.push(c),
                        None => return Err(invalid("unterminated quote")),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    part.push(c);
                    chars.next();
                }
            }
            if part.is_empty() {
                return Err(invalid("empty name part"));
            }
            parts.push(part);
            match chars.next() {
                None => break,
                Some('.') => continue,
                Some(_) => return Err(invalid("unexpected text after a quoted name")),
            }
        }
        match parts.len() {
            1 => Ok(Self {
                schema: "main".to_string(),
                table: parts.remove(0),
            }),
            2 => Ok(Self {
                table: parts.remove(1),
                schema: parts.remove(0),
            }),
            _ => Err(invalid("expected `table` or `schema.table`")),
        }
    }

    /// The quoted `"schema"."table"` for statements.
    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Checks a sync's destination names without I/O. SQLite has no length limit, so only what
/// it can never hold exactly is refused: an empty name, and a NUL character (the C API
/// ends the name there).
pub fn check_destination_names(object: &str, columns: &[&str]) -> Result<(), NameError> {
    let table = TableName::parse(object).map_err(|e| NameError::object(e.message()))?;
    check_not_empty_or_nul(&table.schema, "schema name").map_err(NameError::object)?;
    check_not_empty_or_nul(&table.table, "table name").map_err(NameError::object)?;
    for column in columns {
        check_not_empty_or_nul(column, "column name").map_err(|m| NameError::column(column, m))?;
    }
    Ok(())
}

/// The table `object` names, spelled one way (`t`, `main.t` and `MAIN."T"` alike: the
/// default schema is `main` and SQLite compares ASCII names case-insensitively), so two
/// syncs writing one table can be recognised; `None` when `object` does not parse.
pub fn object_key(object: &str) -> Option<String> {
    let table = TableName::parse(object).ok()?;
    Some(format!(
        "{}.{}",
        quote(&table.schema.to_ascii_lowercase()),
        quote(&table.table.to_ascii_lowercase())
    ))
}

/// What a run needs to know about an existing table.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// Column names as declared.
    pub(crate) columns: Vec<String>,
    /// Every column set SQLite enforces uniqueness on: the PRIMARY KEY (even a rowid alias,
    /// which has no index) and each full (non-partial) UNIQUE index over plain columns.
    pub(crate) unique_keys: Vec<Vec<String>>,
}

impl TableInfo {
    /// The declared name of `column`, matched the way SQLite matches identifiers (ASCII
    /// case-insensitively).
    pub(crate) fn column(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(column))
            .map(String::as_str)
    }

    /// Whether some unique key is exactly the column set `key`, so `ON CONFLICT (key)` is
    /// well defined.
    pub(crate) fn has_unique_key(&self, key: &[String]) -> bool {
        let wanted = normalized(key.iter().map(String::as_str));
        self.unique_keys
            .iter()
            .any(|k| normalized(k.iter().map(String::as_str)) == wanted)
    }
}

fn normalized<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = names.map(|n| n.to_ascii_lowercase()).collect();
    v.sort();
    v.dedup();
    v
}

/// Reads the columns and unique keys of `name`, or `None` when it does not exist.
pub(crate) async fn table_info(
    conn: &mut SqliteConnection,
    name: &TableName,
) -> Result<Option<TableInfo>, ConnectorError> {
    let ctx = |e: sqlx::Error| from_sqlx(&e).context(format!("inspecting table `{name}`"));
    let rows = sqlx::query("SELECT name, pk FROM pragma_table_info(?1, ?2) ORDER BY cid")
        .bind(&name.table)
        .bind(&name.schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(ctx)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut pk: Vec<(i64, String)> = Vec::new();
    for row in &rows {
        let column: String = row.try_get("name").map_err(ctx)?;
        let position: i64 = row.try_get("pk").map_err(ctx)?;
        if position > 0 {
            pk.push((position, column.clone()));
        }
        columns.push(column);
    }
    let mut unique_keys = Vec::new();
    if !pk.is_empty() {
        pk.sort();
        unique_keys.push(pk.into_iter().map(|(_, c)| c).collect());
    }
    let indexes = sqlx::query(
        "SELECT name FROM pragma_index_list(?1, ?2) WHERE \"unique\" = 1 AND partial = 0",
    )
    .bind(&name.table)
    .bind(&name.schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(ctx)?;
    for index in &indexes {
        let index_name: String = index.try_get("name").map_err(ctx)?;
        let cols = sqlx::query("SELECT name FROM pragma_index_info(?1, ?2) ORDER BY seqno")
            .bind(&index_name)
            .bind(&name.schema)
            .fetch_all(&mut *conn)
            .await
            .map_err(ctx)?;
        let names: Option<Vec<String>> = cols
            .iter()
            .map(|r| r.try_get::<Option<String>, _>("name").ok().flatten())
            .collect();
        // An index over an expression has NULL column names and cannot back ON CONFLICT (cols).
        if let Some(names) = names {
            unique_keys.push(names);
        }
    }
    Ok(Some(TableInfo {
        columns,
        unique_keys,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table_names() {
        let t = TableName::parse("scores").unwrap();
        assert_eq!((t.schema.as_str(), t.table.as_str()), ("main", "scores"));
        let t = TableName::parse("main.scores").unwrap();
        assert_eq!(t.qualified(), "\"main\".\"scores\"");
        let t = TableName::parse("\"my.table\"").unwrap();
        assert_eq!(t.table, "my.table");
        let t = TableName::parse("\"a\"\"b\"").unwrap();
        assert_eq!(t.qualified(), "\"main\".\"a\"\"b\"");
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("").is_err());
        assert!(TableName::parse("a.").is_err());
        assert!(TableName::parse("\"a").is_err());
    }

    #[test]
    fn only_empty_and_nul_names_are_refused() {
        use backflow_connector_core::NamePart;
        let long = "t".repeat(100_000);
        assert!(check_destination_names(&long, &[&long]).is_ok());
        let e = check_destination_names("\"a\0b\"", &[]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        assert!(e.message.contains("NUL"), "{e}");
        let e = check_destination_names("", &[]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        let e = check_destination_names("t", &["id", ""]).unwrap_err();
        assert_eq!(e.part, NamePart::Column(String::new()));
        let e = check_destination_names("t", &["x\0"]).unwrap_err();
        assert_eq!(e.part, NamePart::Column("x\0".into()));
        let huge = format!("\"{}", "x".repeat(1 << 20));
        let e = check_destination_names(&huge, &[]).unwrap_err();
        assert!(e.message.len() < 500, "{}", e.message.len());
    }

    #[test]
    fn object_keys_ignore_ascii_case_and_the_main_schema() {
        assert_eq!(object_key("t"), object_key("main.t"));
        assert_eq!(object_key("t"), object_key("MAIN.\"T\""));
        assert_ne!(object_key("t"), object_key("aux.t"));
        assert_eq!(object_key("a.b.c"), None);
    }
}
