//! What a sync asks a MongoDB collection for, checked without I/O: the written columns, the
//! key, and whether MongoDB takes every name exactly as written. The destination builds a
//! [`Plan`] once; the writer and the row encoder only read it.

use backflow_connector_core::{
    quoted, CanonicalType, ConnectorError, NameError, WriteMode, WriteTarget,
};

use crate::config::{DecimalsAs, MongoConfig};

/// One written column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) canonical: CanonicalType,
    /// Whether the column is part of the primary key.
    pub(crate) key: bool,
}

/// What the target asks for, checked without I/O.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) collection: String,
    pub(crate) columns: Vec<Column>,
    /// Schema indices of the primary-key columns, in key order.
    pub(crate) key: Vec<usize>,
    pub(crate) mode: WriteMode,
    /// Create the collection (and the key's unique index) when missing.
    pub(crate) create: bool,
    pub(crate) key_as_id: bool,
    pub(crate) decimals: DecimalsAs,
}

/// The longest namespace (`database.collection`) MongoDB accepts, in bytes (MongoDB 4.4+;
/// sharded and older deployments allow less and refuse longer names themselves).
pub const MAX_NAMESPACE_BYTES: usize = 255;

/// Whether MongoDB takes `name` as a top-level field name that `$set` writes verbatim.
fn check_field_name(name: &str) -> Result<(), NameError> {
    let problem = if name.is_empty() {
        Some("an empty field name")
    } else if name.starts_with('$') {
        Some("a field name starting with `$` (an operator in MongoDB)")
    } else if name.contains('.') {
        Some("a field name containing `.` (a path in MongoDB)")
    } else if name.contains('\0') {
        Some("a field name containing a NUL character")
    } else {
        None
    };
    match problem {
        Some(p) => Err(NameError::column(
            name,
            format!(
                "column {} would be {p}; rename it with a mapping",
                quoted(name)
            ),
        )),
        None => Ok(()),
    }
}

/// Whether MongoDB takes `collection` as a collection name in `database`, exactly as
/// written: not empty, no `$` or NUL, not in the reserved `system.` namespace, and
/// `database.collection` at most 255 bytes. `database` is `None` when unknown (the
/// namespace length is then not checked).
fn check_collection_name(database: Option<&str>, collection: &str) -> Result<(), NameError> {
    let problem = if collection.is_empty() {
        Some("it is empty".to_owned())
    } else if collection.contains('$') {
        Some("it contains `$`".to_owned())
    } else if collection.contains('\0') {
        Some("it contains a NUL character".to_owned())
    } else if collection.starts_with("system.") {
        Some("the `system.` prefix is reserved for MongoDB's own collections".to_owned())
    } else {
        database
            .map(|db| db.len() + 1 + collection.len())
            .filter(|n| *n > MAX_NAMESPACE_BYTES)
            .map(|n| {
                format!(
                    "the namespace `database.collection` would be {n} bytes; MongoDB allows \
                     {MAX_NAMESPACE_BYTES}"
                )
            })
    };
    match problem {
        Some(why) => Err(NameError::object(format!(
            "{} is not a collection name MongoDB accepts: {why}",
            quoted(collection)
        ))),
        None => Ok(()),
    }
}

/// Checks a sync's destination names without I/O: the collection (in `database`, when
/// known) and every destination column as a top-level field name.
pub fn check_destination_names(
    database: Option<&str>,
    collection: &str,
    columns: &[&str],
) -> Result<(), NameError> {
    check_collection_name(database, collection)?;
    for column in columns {
        check_field_name(column)?;
    }
    Ok(())
}

impl Plan {
    /// Checks what `target` asks for against `config`, naming the offending column or
    /// field, before any I/O.
    pub(crate) fn new(target: &WriteTarget, config: &MongoConfig) -> Result<Self, ConnectorError> {
        let collection = target.object.clone();
        check_collection_name(Some(config.database()), &collection)?;
        if target.primary_key.is_empty() {
            return Err(ConnectorError::config(
                "primary_key",
                "a primary key of at least one column is required",
            ));
        }
        let mut columns: Vec<Column> = Vec::with_capacity(target.schema.fields().len());
        for field in target.schema.fields() {
            let name = field.name();
            check_field_name(name)?;
            if columns.iter().any(|c| &c.name == name) {
                return Err(ConnectorError::schema(
                    name,
                    format!("column `{name}` appears twice in the sync's schema"),
                ));
            }
            columns.push(Column {
                name: name.clone(),
                canonical: CanonicalType::require(field)?,
                key: target.primary_key.contains(name),
            });
        }
        let mut key = Vec::with_capacity(target.primary_key.len());
        for k in &target.primary_key {
            let Some(i) = columns.iter().position(|c| &c.name == k) else {
                return Err(ConnectorError::config(
                    "primary_key",
                    format!("primary key column `{k}` is not among the synced columns"),
                ));
            };
            if key.contains(&i) {
                return Err(ConnectorError::config(
                    "primary_key",
                    format!("primary key column `{k}` is listed twice"),
                ));
            }
            key.push(i);
        }
        let id_column = columns.iter().any(|c| c.name == "_id");
        let id_is_the_key =
            config.primary_key_as_id && key.len() == 1 && columns[key[0]].name == "_id";
        if id_column && !id_is_the_key {
            return Err(ConnectorError::schema(
                "_id",
                "column `_id` is MongoDB's document id: it may only be the single primary key \
                 column (with `primary_key_as_id: true`); rename it with a mapping",
            ));
        }
        Ok(Self {
            collection,
            columns,
            key,
            mode: target.mode,
            create: target.create_table,
            key_as_id: config.primary_key_as_id,
            decimals: config.decimals,
        })
    }

    /// The primary-key column names, in key order.
    pub(crate) fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use backflow_connector_core::{ErrorKind, NamePart};

    #[test]
    fn field_names_mongodb_refuses_are_config_errors_naming_the_column() {
        for bad in ["", "$x", "a.b", "nul\0"] {
            let e = ConnectorError::from(check_field_name(bad).unwrap_err());
            assert_eq!(e.kind(), ErrorKind::Config);
            assert_eq!(e.column(), Some(bad));
            assert!(!e.is_retryable());
        }
        assert!(check_field_name("ok_name").is_ok());
    }

    #[test]
    fn collection_names_follow_mongodb_rules() {
        assert!(check_destination_names(Some("shop"), "orders", &["_id", "total"]).is_ok());
        for bad in ["", "a$b", "a\0b", "system.users"] {
            let e = check_destination_names(Some("shop"), bad, &[]).unwrap_err();
            assert_eq!(e.part, NamePart::Object, "{bad:?}");
        }
        // `shop.` is 5 bytes: 250 bytes of collection fill the 255-byte namespace exactly.
        assert!(check_collection_name(Some("shop"), &"c".repeat(250)).is_ok());
        let e = check_collection_name(Some("shop"), &"c".repeat(251)).unwrap_err();
        assert!(e.message.contains("256 bytes"), "{e}");
        assert!(check_collection_name(None, &"c".repeat(251)).is_ok());
        let huge = "c".repeat(1 << 20);
        let e = check_collection_name(Some("shop"), &huge).unwrap_err();
        assert!(e.message.len() < 500, "{}", e.message.len());
        let e = check_destination_names(Some("shop"), "orders", &["ok", "$bad"]).unwrap_err();
        assert_eq!(e.part, NamePart::Column("$bad".into()));
    }
}
