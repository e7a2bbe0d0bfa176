//! The checks `check` and `open` run on an existing destination table, one promise each, so
//! a sync that cannot write fails before its first batch with an error naming the cause.

use backflow_connector_core::support::{check_required_columns_written, has_unique_key};
use backflow_connector_core::{ConnectorError, ErrorKind, WriteMode};
use sqlx::postgres::PgConnection;

use crate::destination::WriteColumn;
use crate::error::classify;
use crate::ident::quote;
use crate::statements::{cast_probe, Privilege};
use crate::table::{self, Table};

/// Every written column exists and is not generated.
pub(crate) fn check_columns_writable(
    columns: &[WriteColumn],
    table: &Table,
) -> Result<(), ConnectorError> {
    let display = table.display();
    for c in columns {
        let Some(col) = table.column(&c.name) else {
            return Err(ConnectorError::schema(
                &c.name,
                format!("column `{}` does not exist in table {display}", c.name),
            ));
        };
        if col.generated {
            return Err(ConnectorError::schema(
                &c.name,
                format!(
                    "column `{}` of {display} is generated and cannot be written",
                    c.name
                ),
            ));
        }
    }
    Ok(())
}

/// Every column the sync does not write can be left out of an insert: otherwise every
/// insert would fail on its NOT NULL constraint.
pub(crate) fn check_unwritten_columns_optional(
    columns: &[WriteColumn],
    table: &Table,
) -> Result<(), ConnectorError> {
    let required = table
        .columns
        .iter()
        .filter(|col| col.not_null && !col.has_default && !col.identity && !col.generated)
        .map(|col| col.name.as_str());
    check_required_columns_written(&table.display(), required, |name| {
        columns.iter().any(|c| c.name == name)
    })
}

/// Some unique index has exactly the primary key's columns (in any order), which
/// `ON CONFLICT` needs to find the row a key names.
pub(crate) fn check_key_is_unique(
    primary_key: &[String],
    table: &Table,
) -> Result<(), ConnectorError> {
    if has_unique_key(primary_key, &table.unique_keys) {
        return Ok(());
    }
    let quoted: Vec<String> = primary_key.iter().map(|k| quote(k)).collect();
    Err(ConnectorError::new(
        ErrorKind::Schema,
        format!(
            "no unique index on ({}) in {}; the primary key must match a primary key, unique \
             constraint or unique index exactly (e.g. CREATE UNIQUE INDEX ON {} ({}))",
            primary_key.join(", "),
            table.display(),
            table.quoted(),
            quoted.join(", ")
        ),
    ))
}

/// Every column's type accepts its native type by cast, as staged values reach it; the
/// server decides, so each cast is probed.
pub(crate) async fn check_casts(
    conn: &mut PgConnection,
    columns: &[WriteColumn],
    table: &Table,
) -> Result<(), ConnectorError> {
    for c in columns {
        let Some(col) = table.column(&c.name) else {
            continue;
        };
        let probe = cast_probe(&c.native.sql, &col.base);
        if let Err(e) = sqlx::query(&probe)
            .persistent(false)
            .execute(&mut *conn)
            .await
        {
            let e = classify(e);
            if e.kind() == ErrorKind::Connectivity {
                return Err(e);
            }
            return Err(ConnectorError::schema(
                &c.name,
                format!(
                    "column `{}` of {} has type {} which does not accept {} ({:?}): {}",
                    c.name,
                    table.display(),
                    col.formatted,
                    c.native.sql,
                    c.canonical,
                    e.message()
                ),
            ));
        }
    }
    Ok(())
}

/// The connection's role holds every `needed` privilege (see
/// [`crate::statements::required_privileges`]); the first one missing is the error.
pub(crate) async fn check_privileges(
    conn: &mut PgConnection,
    table: &Table,
    mode: WriteMode,
    needed: &[Privilege<'_>],
) -> Result<(), ConnectorError> {
    for privilege in needed {
        if let Err(column) =
            table::has_privilege(conn, table, privilege.name, &privilege.columns).await?
        {
            return Err(missing_privilege(table, mode, privilege.name, column));
        }
    }
    Ok(())
}

/// The error for a privilege the role lacks (on `column`, when only a column's is missing),
/// naming what needs it.
fn missing_privilege(
    table: &Table,
    mode: WriteMode,
    privilege: &str,
    column: Option<String>,
) -> ConnectorError {
    let needs = if privilege == "DELETE" {
        "mirror mode".to_string()
    } else {
        format!("{mode:?} mode")
    };
    let on_column = column
        .as_ref()
        .map(|c| format!(" (column `{c}`)"))
        .unwrap_or_default();
    let e = ConnectorError::new(
        ErrorKind::Permission,
        format!(
            "the connection's role lacks {privilege} on {}{on_column}, which {needs} needs",
            table.display()
        ),
    );
    match column {
        Some(c) => e.with_column(c),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use backflow_connector_core::CanonicalType;

    use super::*;
    use crate::statements::tests::{table, table_column, write_column};

    fn columns() -> Vec<WriteColumn> {
        vec![
            write_column("id", CanonicalType::Int64),
            write_column("name", CanonicalType::Text),
        ]
    }

    #[test]
    fn a_missing_or_generated_column_cannot_be_written() {
        let missing = table("public", "t", vec![table_column("id", 20, "bigint")]);
        let e = check_columns_writable(&columns(), &missing).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert_eq!(e.column(), Some("name"));
        assert_eq!(
            e.message(),
            "column `name` does not exist in table public.t"
        );

        let mut name = table_column("name", 25, "text");
        name.generated = true;
        let generated = table("public", "t", vec![table_column("id", 20, "bigint"), name]);
        let e = check_columns_writable(&columns(), &generated).unwrap_err();
        assert_eq!(e.column(), Some("name"));
        assert_eq!(
            e.message(),
            "column `name` of public.t is generated and cannot be written"
        );

        let fine = table(
            "public",
            "t",
            vec![
                table_column("id", 20, "bigint"),
                table_column("name", 25, "text"),
            ],
        );
        check_columns_writable(&columns(), &fine).unwrap();
    }

    #[test]
    fn an_unwritten_not_null_column_needs_a_default() {
        let mut extra = table_column("extra", 25, "text");
        extra.not_null = true;
        let mut t = table(
            "public",
            "t",
            vec![
                table_column("id", 20, "bigint"),
                table_column("name", 25, "text"),
                extra,
            ],
        );
        let e = check_unwritten_columns_optional(&columns(), &t).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert_eq!(e.column(), Some("extra"));
        assert_eq!(
            e.message(),
            "column `extra` of public.t is NOT NULL without a default and the sync does not \
             write it, so every insert would fail"
        );
        t.columns[2].has_default = true;
        check_unwritten_columns_optional(&columns(), &t).unwrap();
        t.columns[2].has_default = false;
        t.columns[2].identity = true;
        check_unwritten_columns_optional(&columns(), &t).unwrap();
    }

    #[test]
    fn the_key_must_match_a_unique_index_in_any_order() {
        let mut t = table("s", "t", vec![]);
        t.unique_keys = vec![
            vec!["b".to_string()],
            vec!["b".to_string(), "a\"x".to_string()],
        ];
        check_key_is_unique(&["a\"x".to_string(), "b".to_string()], &t).unwrap();
        check_key_is_unique(&["b".to_string()], &t).unwrap();
        let e = check_key_is_unique(&["a\"x".to_string()], &t).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert_eq!(
            e.message(),
            "no unique index on (a\"x) in s.t; the primary key must match a primary key, \
             unique constraint or unique index exactly (e.g. CREATE UNIQUE INDEX ON \"s\".\"t\" \
             (\"a\"\"x\"))"
        );
    }

    #[test]
    fn a_missing_privilege_names_the_column_and_what_needs_it() {
        let t = table("public", "t", vec![]);
        let e = missing_privilege(&t, WriteMode::Upsert, "UPDATE", Some("name".to_string()));
        assert_eq!(e.kind(), ErrorKind::Permission);
        assert_eq!(e.column(), Some("name"));
        assert_eq!(
            e.message(),
            "the connection's role lacks UPDATE on public.t (column `name`), which Upsert mode \
             needs"
        );
        let e = missing_privilege(&t, WriteMode::Upsert, "DELETE", None);
        assert_eq!(e.column(), None);
        assert_eq!(
            e.message(),
            "the connection's role lacks DELETE on public.t, which mirror mode needs"
        );
    }
}
