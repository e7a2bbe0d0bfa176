//! Whether an existing table can find the row a sync's key names.

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
}
