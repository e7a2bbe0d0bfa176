//! What information_schema says about a destination table: its columns and unique keys.

use backflow_connector_core::{ConnectorError, ErrorKind};
use sqlx::mysql::MySqlConnection;
use sqlx::Row;

use crate::error::classify_during;
use crate::ident::{quote, ObjectName};

/// One column of the destination table.
#[derive(Debug, Clone)]
pub(crate) struct TableColumn {
    pub(crate) name: String,
    /// information_schema `DATA_TYPE`, lowercase (`varchar`, `decimal`, …).
    pub(crate) data_type: String,
    /// information_schema `COLUMN_TYPE`, for messages (`varchar(10)`, `decimal(12,2)`).
    pub(crate) column_type: String,
    pub(crate) not_null: bool,
    pub(crate) has_default: bool,
    pub(crate) generated: bool,
}

/// A resolved destination table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) database: String,
    pub(crate) name: String,
    pub(crate) columns: Vec<TableColumn>,
    /// Columns of every unique index without prefix parts (so of the primary key too).
    pub(crate) unique_keys: Vec<Vec<String>>,
}

impl Table {
    /// The database-qualified, quoted name.
    pub(crate) fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.database), quote(&self.name))
    }

    /// `database.table` for messages.
    pub(crate) fn display(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    pub(crate) fn column(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The database `object` lives in: the one it names, else the connection's; it must exist.
pub(crate) async fn database_of(
    conn: &mut MySqlConnection,
    object: &ObjectName,
) -> Result<String, ConnectorError> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME = COALESCE(?, DATABASE())",
    )
    .bind(object.database.as_deref())
    .fetch_optional(&mut *conn)
    .await
    .map_err(classify_during("looking up the database"))?;
    name.ok_or_else(|| match &object.database {
        Some(db) => ConnectorError::new(
            ErrorKind::NotFound,
            format!("database `{db}` does not exist (or is not visible to this user)"),
        ),
        None => ConnectorError::config(
            "url",
            format!(
                "the URL selects no database and the table `{}` names none; use \
                 `database.table` or put the database in the URL",
                object.table
            ),
        ),
    })
}

/// Reads the table's columns and unique keys; `None` when it does not exist.
pub(crate) async fn load(
    conn: &mut MySqlConnection,
    database: &str,
    table: &str,
) -> Result<Option<Table>, ConnectorError> {
    let kind: Option<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(database)
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(classify_during("looking up the table"))?;
    let Some(kind) = kind else {
        return Ok(None);
    };
    if kind != "BASE TABLE" {
        return Err(ConnectorError::new(
            ErrorKind::Schema,
            format!("{database}.{table} is a {kind}, not a table; Backflow writes only to tables"),
        ));
    }
    let columns = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(LOWER(DATA_TYPE) AS CHAR), \
                CAST(COLUMN_TYPE AS CHAR), IS_NULLABLE = 'NO', \
                COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%', \
                EXTRA LIKE '%VIRTUAL GENERATED%' OR EXTRA LIKE '%STORED GENERATED%' \
                  OR EXTRA LIKE '%PERSISTENT%' \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
         ORDER BY ORDINAL_POSITION",
    )
    .bind(database)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify_during("reading the table's columns"))?
    .into_iter()
    .map(|r| TableColumn {
        name: r.get(0),
        data_type: r.get(1),
        column_type: r.get(2),
        not_null: r.get::<i64, _>(3) != 0,
        has_default: r.get::<i64, _>(4) != 0,
        generated: r.get::<i64, _>(5) != 0,
    })
    .collect();
    let parts: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), SUB_PART \
         FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
         ORDER BY INDEX_NAME, SEQ_IN_INDEX",
    )
    .bind(database)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify_during("reading the table's unique indexes"))?;
    let mut unique_keys: Vec<Vec<String>> = Vec::new();
    let mut prefixed: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (index, column, sub_part) in parts {
        if sub_part.is_some() {
            prefixed.push(index.clone());
        }
        if current.as_deref() != Some(index.as_str()) {
            unique_keys.push(Vec::new());
            current = Some(index.clone());
        }
        if let Some(key) = unique_keys.last_mut() {
            key.push(column);
        }
    }
    // A unique prefix index does not make the whole value unique.
    if !prefixed.is_empty() {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME",
        )
        .bind(database)
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(classify_during("reading the table's unique indexes"))?;
        unique_keys = names
            .into_iter()
            .zip(unique_keys)
            .filter(|(name, _)| !prefixed.contains(name))
            .map(|(_, key)| key)
            .collect();
    }
    Ok(Some(Table {
        database: database.to_string(),
        name: table.to_string(),
        columns,
        unique_keys,
    }))
}
