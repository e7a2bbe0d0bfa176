//! Building blocks for connectors that speak PostgreSQL's wire protocol with another SQL
//! dialect (CockroachDB): the connection config and connecting, error classification,
//! identifier quoting, and the resolution, creation and validation of a destination table.
//!
//! Sharing these keeps the dialects' behaviour identical where the databases agree: the same
//! config fields and secret handling, the same error kinds for the same SQLSTATEs, the same
//! `check` promises. Only the statements that move rows differ.

use backflow_connector_core::{CanonicalType, ConnectorError, WriteMode, WriteTarget};
use sqlx::postgres::PgConnection;

pub use crate::config::{PostgresConfig, Role, DEFAULT_CONNECT_TIMEOUT_SECS};
pub use crate::error::{classify, is_row_level, sqlstate};
pub use crate::ident::quote;

use crate::destination::{check_table, open_table, Plan};

/// A destination table resolved, created when allowed, and validated against a target.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// The schema-qualified, quoted name, for SQL.
    pub quoted: String,
    /// `schema.table`, for messages.
    pub display: String,
    /// The written columns, in the target schema's order.
    pub columns: Vec<TargetColumn>,
    /// Primary-key column names, in the target's order.
    pub primary_key: Vec<String>,
    /// How rows are applied.
    pub mode: WriteMode,
}

impl TargetTable {
    /// The written columns that form the primary key, in key order.
    pub fn key_columns(&self) -> Vec<&TargetColumn> {
        self.primary_key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.name == k))
            .collect()
    }
}

/// One written column of a [`TargetTable`].
#[derive(Debug, Clone)]
pub struct TargetColumn {
    /// The column name (exact, unquoted).
    pub name: String,
    /// Its canonical Arrow type.
    pub canonical: CanonicalType,
    /// The native type values are sent as (`int8`, `numeric(38,9)`, …).
    pub native: String,
    /// The table column's type without typmod: values are cast to it before assignment, so
    /// a `varchar(n)` limit is enforced (an error) rather than truncating silently.
    pub column_type: String,
    /// The column's type has no equality operator (`json`, `xml`): compare its text.
    pub compare_as_text: bool,
}

/// Everything `Destination::check` verifies about `target` on an open connection: the table
/// exists (or may be created), takes the schema, has a unique key on the primary key, and
/// the role holds the privileges the mode needs. Creates nothing.
pub async fn check_target(
    conn: &mut PgConnection,
    target: &WriteTarget,
) -> Result<(), ConnectorError> {
    let plan = Plan::new(target)?;
    check_table(conn, &plan, target.create_table).await
}

/// Resolves `target`'s table (creating it from the schema when allowed and missing) and
/// validates it as [`check_target`] does.
pub async fn open_target(
    conn: &mut PgConnection,
    target: &WriteTarget,
) -> Result<TargetTable, ConnectorError> {
    let plan = Plan::new(target)?;
    let table = open_table(conn, &plan, target.create_table).await?;
    let columns = plan
        .columns
        .iter()
        .map(|c| {
            let existing = table.column(&c.name);
            TargetColumn {
                name: c.name.clone(),
                canonical: c.canonical.clone(),
                native: c.native.sql.clone(),
                column_type: existing
                    .map(|t| t.base.clone())
                    .unwrap_or_else(|| c.native.sql.clone()),
                compare_as_text: existing
                    .is_some_and(|t| matches!(t.type_oid, 114 | 142 | 143 | 199)),
            }
        })
        .collect();
    Ok(TargetTable {
        quoted: table.quoted(),
        display: table.display(),
        columns,
        primary_key: plan.primary_key.clone(),
        mode: plan.mode,
    })
}
