//! Checks every SQL destination makes on an existing table before its first write, so a sync
//! that cannot work fails at once with the cause named.

use crate::ConnectorError;

/// Whether one of `unique_keys` (a table's primary key, unique constraints and unique
/// indexes, each as column names) has exactly the columns of `primary_key`, in any order:
/// the upserts and key joins of SQL destinations need such an index to find the row a key
/// names, and a wider or narrower one would match other rows or none.
pub fn has_unique_key(primary_key: &[String], unique_keys: &[Vec<String>]) -> bool {
    let mut wanted: Vec<&str> = primary_key.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    unique_keys.iter().any(|key| {
        let mut columns: Vec<&str> = key.iter().map(String::as_str).collect();
        columns.sort_unstable();
        columns == wanted
    })
}

/// Fails naming the first of `required` (columns that are NOT NULL without a default, an
/// identity or a generation expression) that the sync does not write: every insert would fail
/// on it. `table` is the table as messages show it.
pub fn check_required_columns_written<'a>(
    table: &str,
    required: impl IntoIterator<Item = &'a str>,
    written: impl Fn(&str) -> bool,
) -> Result<(), ConnectorError> {
    match required.into_iter().find(|column| !written(column)) {
        None => Ok(()),
        Some(column) => Err(ConnectorError::schema(
            column,
            format!(
                "column `{column}` of {table} is NOT NULL without a default and the sync does \
                 not write it, so every insert would fail"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_an_index_with_exactly_the_key_columns_counts() {
        let keys = vec![names(&["b", "a"]), names(&["id"])];
        assert!(has_unique_key(&names(&["a", "b"]), &keys));
        assert!(has_unique_key(&names(&["id"]), &keys));
        assert!(!has_unique_key(&names(&["a"]), &keys));
        assert!(!has_unique_key(&names(&["a", "b", "c"]), &keys));
        assert!(!has_unique_key(&names(&["id"]), &[]));
    }

    #[test]
    fn a_required_column_the_sync_does_not_write_is_named() {
        let written = |c: &str| c == "id";
        assert!(check_required_columns_written("t", ["id"], written).is_ok());
        let e =
            check_required_columns_written("`app`.`t`", ["id", "owner", "x"], written).unwrap_err();
        assert_eq!(e.column(), Some("owner"));
        assert!(
            e.message()
                .starts_with("column `owner` of `app`.`t` is NOT NULL without a default"),
            "{e}"
        );
    }
}
