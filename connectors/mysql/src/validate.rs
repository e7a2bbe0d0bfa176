//! The checks `check` and `open` run on an existing destination table, one promise each, so
//! a sync that cannot write fails before its first batch with an error naming the cause.

use backflow_connector_core::support::{check_required_columns_written, has_unique_key};
use backflow_connector_core::{CanonicalType, ConnectorError, ErrorKind, WriteMode};
use sqlx::mysql::MySqlConnection;
use sqlx::Executor;

use crate::error::classify;
use crate::ident::quote;
use crate::statements::PrivilegeProbe;
use crate::table::Table;
use crate::types::accepts;

/// Every written column exists, is not generated, and has a type that can hold its values.
pub(crate) fn check_columns_writable(
    columns: &[(String, CanonicalType)],
    table: &Table,
) -> Result<(), ConnectorError> {
    let display = table.display();
    for (name, canonical) in columns {
        let Some(col) = table.column(name) else {
            return Err(ConnectorError::schema(
                name,
                format!("column `{name}` does not exist in table {display}"),
            ));
        };
        if col.generated {
            return Err(ConnectorError::schema(
                name,
                format!("column `{name}` of {display} is generated and cannot be written"),
            ));
        }
        if !accepts(&col.data_type, canonical) {
            return Err(ConnectorError::schema(
                name,
                format!(
                    "column `{name}` of {display} has type {} which cannot hold {canonical:?} values",
                    col.column_type
                ),
            ));
        }
    }
    Ok(())
}

/// Every column the sync does not write can be left out of an insert: otherwise every
/// insert would fail on its NOT NULL constraint.
pub(crate) fn check_unwritten_columns_optional(
    columns: &[(String, CanonicalType)],
    table: &Table,
) -> Result<(), ConnectorError> {
    let required = table
        .columns
        .iter()
        .filter(|col| col.not_null && !col.has_default && !col.generated)
        .map(|col| col.name.as_str());
    check_required_columns_written(&table.display(), required, |name| {
        columns.iter().any(|(c, _)| c == name)
    })
}

/// Some unique index has exactly the primary key's columns (in any order), which
/// `ON DUPLICATE KEY` and the key joins need to find the row a key names.
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
            "no unique index on ({}) in {}; the primary key must match a primary key or unique \
             index exactly, without prefix lengths (e.g. ALTER TABLE {} ADD UNIQUE ({}))",
            primary_key.join(", "),
            table.display(),
            table.quoted(),
            quoted.join(", ")
        ),
    ))
}

/// The connection's user holds every privilege the `probes` stand for (see
/// [`crate::statements::privilege_probes`]); the first one refused is the error.
pub(crate) async fn check_privileges(
    conn: &mut MySqlConnection,
    table: &Table,
    mode: WriteMode,
    probes: &[PrivilegeProbe],
) -> Result<(), ConnectorError> {
    let display = table.display();
    for probe in probes {
        if let Err(e) = (&mut *conn).execute(probe.sql.as_str()).await {
            let e = classify(e);
            if e.kind() == ErrorKind::Permission {
                return Err(missing_privilege(&display, mode, probe.privilege, &e));
            }
            return Err(e.context(format!("checking privileges on {display}")));
        }
    }
    Ok(())
}

/// The error for a privilege the user lacks, naming what needs it and keeping the server's
/// explanation.
fn missing_privilege(
    display: &str,
    mode: WriteMode,
    privilege: &str,
    refused: &ConnectorError,
) -> ConnectorError {
    let needs = if privilege == "DELETE" {
        "mirror mode".to_string()
    } else {
        format!("{mode:?} mode")
    };
    ConnectorError::new(
        ErrorKind::Permission,
        format!(
            "the connection's user lacks {privilege} on {display}, which {needs} needs: {}",
            refused.message()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableColumn;

    fn column(name: &str, data_type: &str) -> TableColumn {
        TableColumn {
            name: name.to_string(),
            data_type: data_type.to_string(),
            column_type: data_type.to_string(),
            not_null: false,
            has_default: false,
            generated: false,
        }
    }

    fn table(columns: Vec<TableColumn>) -> Table {
        Table {
            database: "shop".to_string(),
            name: "items".to_string(),
            columns,
            unique_keys: Vec::new(),
        }
    }

    fn written() -> Vec<(String, CanonicalType)> {
        vec![
            ("id".to_string(), CanonicalType::Int64),
            ("day".to_string(), CanonicalType::Date),
        ]
    }

    #[test]
    fn a_written_column_must_exist_be_plain_and_take_the_values() {
        let e =
            check_columns_writable(&written(), &table(vec![column("id", "bigint")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert_eq!(e.column(), Some("day"));
        assert_eq!(
            e.message(),
            "column `day` does not exist in table shop.items"
        );

        let mut day = column("day", "date");
        day.generated = true;
        let e = check_columns_writable(&written(), &table(vec![column("id", "bigint"), day]))
            .unwrap_err();
        assert_eq!(
            e.message(),
            "column `day` of shop.items is generated and cannot be written"
        );

        let e = check_columns_writable(
            &written(),
            &table(vec![column("id", "bigint"), column("day", "int")]),
        )
        .unwrap_err();
        assert_eq!(e.column(), Some("day"));
        assert_eq!(
            e.message(),
            "column `day` of shop.items has type int which cannot hold Date values"
        );

        check_columns_writable(
            &written(),
            &table(vec![column("id", "bigint"), column("day", "datetime")]),
        )
        .unwrap();
    }

    #[test]
    fn an_unwritten_not_null_column_needs_a_default() {
        let mut note = column("note", "text");
        note.not_null = true;
        let mut t = table(vec![column("id", "bigint"), column("day", "date"), note]);
        let e = check_unwritten_columns_optional(&written(), &t).unwrap_err();
        assert_eq!(e.column(), Some("note"));
        assert_eq!(
            e.message(),
            "column `note` of shop.items is NOT NULL without a default and the sync does not \
             write it, so every insert would fail"
        );
        t.columns[2].has_default = true;
        check_unwritten_columns_optional(&written(), &t).unwrap();
    }

    #[test]
    fn the_key_must_match_a_unique_index_in_any_order() {
        let mut t = table(Vec::new());
        t.unique_keys = vec![vec!["b".to_string(), "a`x".to_string()]];
        check_key_is_unique(&["a`x".to_string(), "b".to_string()], &t).unwrap();
        let e = check_key_is_unique(&["a`x".to_string()], &t).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert_eq!(
            e.message(),
            "no unique index on (a`x) in shop.items; the primary key must match a primary key \
             or unique index exactly, without prefix lengths (e.g. ALTER TABLE `shop`.`items` \
             ADD UNIQUE (`a``x`))"
        );
    }

    #[test]
    fn a_missing_privilege_names_what_needs_it() {
        let refused = ConnectorError::new(ErrorKind::Permission, "command denied");
        let e = missing_privilege("shop.items", WriteMode::Insert, "INSERT", &refused);
        assert_eq!(e.kind(), ErrorKind::Permission);
        assert_eq!(
            e.message(),
            "the connection's user lacks INSERT on shop.items, which Insert mode needs: \
             command denied"
        );
        let e = missing_privilege("shop.items", WriteMode::Insert, "DELETE", &refused);
        assert_eq!(
            e.message(),
            "the connection's user lacks DELETE on shop.items, which mirror mode needs: \
             command denied"
        );
    }
}
