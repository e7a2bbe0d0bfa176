//! What the catalog says about a destination table: its columns, unique keys and privileges.

use backflow_connector_core::{ConnectorError, ErrorKind};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::error::classify_during;
use crate::ident::{quote, ObjectName};

/// One column of the destination table.
#[derive(Debug, Clone)]
pub(crate) struct TableColumn {
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) typmod: i32,
    /// `format_type(type, typmod)`, e.g. `character varying(10)`, for messages.
    pub(crate) formatted: String,
    /// `format_type(type, NULL)`, the type values are cast to before assignment, so the
    /// typmod is enforced by assignment (an error) rather than by an explicit cast (which
    /// would silently truncate a `varchar(n)`).
    pub(crate) base: String,
    pub(crate) not_null: bool,
    pub(crate) has_default: bool,
    pub(crate) generated: bool,
    pub(crate) identity: bool,
}

/// A resolved destination table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) oid: u32,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) columns: Vec<TableColumn>,
    /// Key columns of every valid, non-partial, non-expression unique index (and so of the
    /// primary key and unique constraints).
    pub(crate) unique_keys: Vec<Vec<String>>,
}

impl Table {
    /// The schema-qualified, quoted name.
    pub(crate) fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }

    /// `schema.table` for messages.
    pub(crate) fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub(crate) fn column(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The OID of the table `object` names (through the search path when unqualified), if any.
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    object: &ObjectName,
) -> Result<Option<u32>, ConnectorError> {
    let oid: Option<i64> = sqlx::query_scalar("SELECT pg_catalog.to_regclass($1)::oid::int8")
        .bind(object.quoted())
        .fetch_one(&mut *conn)
        .await
        .map_err(classify_during("looking up the table"))?;
    Ok(oid.map(|o| o as u32))
}

/// Reads the table's columns and unique keys.
pub(crate) async fn load(conn: &mut PgConnection, oid: u32) -> Result<Table, ConnectorError> {
    let oid64 = i64::from(oid);
    let row = sqlx::query(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = $1::int8::oid",
    )
    .bind(oid64)
    .fetch_optional(&mut *conn)
    .await
    .map_err(classify_during("reading the table"))?
    .ok_or_else(|| ConnectorError::new(ErrorKind::NotFound, "the table disappeared"))?;
    let schema: String = row.get(0);
    let name: String = row.get(1);
    let kind: String = row.get(2);
    if kind != "r" && kind != "p" {
        return Err(ConnectorError::new(
            ErrorKind::Schema,
            format!(
                "{schema}.{name} is not a table (relkind `{kind}`); Backflow writes only to tables"
            ),
        ));
    }
    let columns = sqlx::query(
        "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, \
                pg_catalog.format_type(a.atttypid, a.atttypmod), \
                pg_catalog.format_type(a.atttypid, NULL), \
                a.attnotnull, a.atthasdef, a.attgenerated::text <> '', a.attidentity::text <> '' \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(oid64)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify_during("reading the table's columns"))?
    .into_iter()
    .map(|r| TableColumn {
        name: r.get(0),
        type_oid: r.get::<i64, _>(1) as u32,
        typmod: r.get(2),
        formatted: r.get(3),
        base: r.get(4),
        not_null: r.get(5),
        has_default: r.get(6),
        generated: r.get(7),
        identity: r.get(8),
    })
    .collect();
    let unique_keys: Vec<Vec<String>> = sqlx::query_scalar(
        "SELECT ARRAY(SELECT a.attname::text \
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_catalog.pg_attribute a \
                        ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                      WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) \
         FROM pg_catalog.pg_index i \
         WHERE i.indrelid = $1::int8::oid AND i.indisunique AND i.indisvalid \
           AND i.indpred IS NULL AND i.indexprs IS NULL",
    )
    .bind(oid64)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify_during("reading the table's unique indexes"))?;
    Ok(Table {
        oid,
        schema,
        name,
        columns,
        unique_keys,
    })
}

/// Whether the session may use `privilege` on the table, or on every one of `columns`.
pub(crate) async fn has_privilege(
    conn: &mut PgConnection,
    table: &Table,
    privilege: &str,
    columns: &[&str],
) -> Result<Result<(), Option<String>>, ConnectorError> {
    let oid = i64::from(table.oid);
    let whole: bool =
        sqlx::query_scalar("SELECT pg_catalog.has_table_privilege($1::int8::oid, $2)")
            .bind(oid)
            .bind(privilege)
            .fetch_one(&mut *conn)
            .await
            .map_err(classify_during("checking privileges"))?;
    if whole {
        return Ok(Ok(()));
    }
    if privilege == "DELETE" || columns.is_empty() {
        return Ok(Err(None));
    }
    for column in columns {
        let ok: bool = sqlx::query_scalar(
            "SELECT pg_catalog.has_column_privilege($1::int8::oid, $2::text, $3)",
        )
        .bind(oid)
        .bind(*column)
        .bind(privilege)
        .fetch_one(&mut *conn)
        .await
        .map_err(classify_during("checking column privileges"))?;
        if !ok {
            return Ok(Err(Some((*column).to_string())));
        }
    }
    Ok(Ok(()))
}

/// Checks that a table could be created: the schema exists and the session may create in it.
pub(crate) async fn check_creatable(
    conn: &mut PgConnection,
    object: &ObjectName,
) -> Result<(), ConnectorError> {
    let row = sqlx::query(
        "SELECT n.nspname::text, pg_catalog.has_schema_privilege(n.oid, 'CREATE') \
         FROM pg_catalog.pg_namespace n \
         WHERE n.nspname = COALESCE($1, pg_catalog.current_schema())",
    )
    .bind(object.schema.as_deref())
    .fetch_optional(&mut *conn)
    .await
    .map_err(classify_during("checking the target schema"))?;
    match row {
        None => Err(ConnectorError::new(
            ErrorKind::NotFound,
            match &object.schema {
                Some(s) => format!(
                    "schema `{s}` does not exist, so table `{}` cannot be created",
                    object.table
                ),
                None => "no schema on the search path to create the table in".to_string(),
            },
        )),
        Some(r) if !r.get::<bool, _>(1) => Err(ConnectorError::new(
            ErrorKind::Permission,
            format!(
                "no CREATE privilege on schema `{}` to create table `{}`",
                r.get::<String, _>(0),
                object.table
            ),
        )),
        Some(_) => Ok(()),
    }
}
