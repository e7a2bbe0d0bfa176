//! The SQLite destination: one connection per run, one transaction per batch, one prepared
//! statement (cached by sqlx) executed per row.
//!
//! Per-row statements are what let a constraint violation reject exactly one row: SQLite aborts
//! only the failing statement and keeps the transaction, so the batch's other rows still commit.
//! SQLite is embedded and the statement is prepared once per connection, so a row costs
//! microseconds and there is no network round trip to amortise with multi-row statements.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use backflow_connector_core::{
    CanonicalType, ConnectorError, Destination, DestinationWriter, ErrorKind, RowFailure,
    WriteMode, WriteOutcome, WriteTarget,
};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Executor};

use crate::config::SqliteConfig;
use crate::encode::{bind_all, column_type, ColumnReader, SqlValue};
use crate::error::{from_sqlx, is_row_error, row_failure};
use crate::table::{quote, table_info, TableInfo, TableName};

/// A validated SQLite destination. Constructing one does no I/O.
#[derive(Debug, Clone)]
pub struct SqliteDestination {
    config: SqliteConfig,
}

impl SqliteDestination {
    pub(crate) fn new(config: SqliteConfig) -> Self {
        Self { config }
    }

    /// The validated config, so callers can show which file a connection writes.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }
}

/// The parts of a target that can be checked without the database.
struct Plan {
    table: TableName,
    types: Vec<CanonicalType>,
    /// Indices (into the schema) of the primary-key columns, in key order.
    pk: Vec<usize>,
}

fn plan(target: &WriteTarget) -> Result<Plan, ConnectorError> {
    let table = TableName::parse(&target.object)?;
    let schema = &target.schema;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    crate::table::check_destination_names(&target.object, &names)?;
    let types = schema
        .fields()
        .iter()
        .map(|f| CanonicalType::require(f))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, f) in schema.fields().iter().enumerate() {
        if schema.fields()[..i]
            .iter()
            .any(|g| g.name().eq_ignore_ascii_case(f.name()))
        {
            return Err(ConnectorError::schema(
                f.name(),
                "column appears twice (SQLite column names are case-insensitive)",
            ));
        }
    }
    if target.primary_key.is_empty() {
        return Err(ConnectorError::new(
            ErrorKind::Schema,
            "a primary key is required to write to SQLite",
        ));
    }
    let pk = target
        .primary_key
        .iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| {
                ConnectorError::schema(k, "primary-key column is not among the synced columns")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan { table, types, pk })
}

/// Checks an existing table against the target: every column exists and the key is unique.
fn verify(target: &WriteTarget, table: &TableName, info: &TableInfo) -> Result<(), ConnectorError> {
    for field in target.schema.fields() {
        if info.column(field.name()).is_none() {
            return Err(ConnectorError::schema(
                field.name(),
                format!("table `{table}` has no column `{}`", field.name()),
            ));
        }
    }
    if !info.has_unique_key(&target.primary_key) {
        return Err(ConnectorError::new(
            ErrorKind::Schema,
            format!(
                "no PRIMARY KEY or UNIQUE index of table `{table}` covers exactly ({}); \
                 upserts need one",
                target.primary_key.join(", ")
            ),
        ));
    }
    Ok(())
}

fn not_found(table: &TableName) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::NotFound,
        format!("table `{table}` does not exist and create_table is off"),
    )
}

/// `CREATE TABLE` for the target, with the documented type mapping, NOT NULL key columns (SQLite
/// otherwise allows NULL in non-integer primary keys) and `PRIMARY KEY (pk)`.
fn create_table_sql(target: &WriteTarget, plan: &Plan) -> String {
    let mut defs: Vec<String> = target
        .schema
        .fields()
        .iter()
        .zip(&plan.types)
        .enumerate()
        .map(|(i, (f, ty))| {
            let not_null = if plan.pk.contains(&i) {
                " NOT NULL"
            } else {
                ""
            };
            format!("{} {}{not_null}", quote(f.name()), column_type(ty))
        })
        .collect();
    defs.push(format!("PRIMARY KEY ({})", key_list(target)));
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        plan.table.qualified(),
        defs.join(", ")
    )
}

fn key_list(target: &WriteTarget) -> String {
    target
        .primary_key
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements of one writer. Parameters are numbered by schema position (`?1` is column
/// 0), so every statement binds the same row values.
#[derive(Debug)]
struct Statements {
    /// Upsert or insert, or the `UPDATE` in update mode (`None` when every column is a key).
    write: Option<String>,
    /// `SELECT 1 … WHERE key` (update mode tells unchanged rows from missing keys with it).
    exists: String,
    /// `DELETE … WHERE key`, bound with the key columns only (`?1` is the first key column).
    delete: String,
}

fn statements(target: &WriteTarget, plan: &Plan) -> Statements {
    let qt = plan.table.qualified();
    let fields = target.schema.fields();
    let names: Vec<String> = fields.iter().map(|f| quote(f.name())).collect();
    let params: Vec<String> = (1..=fields.len()).map(|i| format!("?{i}")).collect();
    let non_key: Vec<usize> = (0..fields.len()).filter(|i| !plan.pk.contains(i)).collect();
    let key_match = |numbered: &dyn Fn(usize, usize) -> usize| {
        plan.pk
            .iter()
            .enumerate()
            .map(|(k, &i)| format!("{} = ?{}", names[i], numbered(k, i)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let by_position = key_match(&|_, i| i + 1);
    let insert = format!(
        "INSERT INTO {qt} ({}) VALUES ({}) ON CONFLICT ({})",
        names.join(", "),
        params.join(", "),
        key_list(target)
    );
    let write = match target.mode {
        WriteMode::Insert => Some(format!("{insert} DO NOTHING")),
        WriteMode::Upsert if non_key.is_empty() => Some(format!("{insert} DO NOTHING")),
        WriteMode::Upsert => {
            // Refer to the existing row by the bare table name, as SQLite's upsert requires.
            let current = quote(&plan.table.table);
            let set = non_key
                .iter()
                .map(|&i| format!("{0} = excluded.{0}", names[i]))
                .collect::<Vec<_>>()
                .join(", ");
            let changed = non_key
                .iter()
                .map(|&i| format!("{current}.{0} IS NOT excluded.{0}", names[i]))
                .collect::<Vec<_>>()
                .join(" OR ");
            Some(format!("{insert} DO UPDATE SET {set} WHERE {changed}"))
        }
        WriteMode::Update if non_key.is_empty() => None,
        WriteMode::Update => {
            let set = non_key
                .iter()
                .map(|&i| format!("{} = ?{}", names[i], i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let changed = non_key
                .iter()
                .map(|&i| format!("{} IS NOT ?{}", names[i], i + 1))
                .collect::<Vec<_>>()
                .join(" OR ");
            Some(format!(
                "UPDATE {qt} SET {set} WHERE {by_position} AND ({changed})"
            ))
        }
    };
    Statements {
        write,
        exists: format!("SELECT 1 FROM {qt} WHERE {by_position}"),
        delete: format!("DELETE FROM {qt} WHERE {}", key_match(&|k, _| k + 1)),
    }
}

#[async_trait]
impl Destination for SqliteDestination {
    #[tracing::instrument(name = "destination.check", skip_all, fields(connector = "sqlite"))]
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        let plan = plan(target)?;
        if !self.config.file_exists().await? {
            // Nothing to inspect; `open` will create the file and the table if both are allowed.
            return if !self.config.create_if_missing {
                Err(ConnectorError::new(
                    ErrorKind::NotFound,
                    format!(
                        "database file `{}` does not exist and create_if_missing is off",
                        self.config.path.display()
                    ),
                )
                .with_field("path"))
            } else if target.create_table {
                Ok(())
            } else {
                Err(not_found(&plan.table))
            };
        }
        let mut conn = self.config.connect_existing(true).await?;
        let info = table_info(&mut conn, &plan.table).await;
        let _ = conn.close().await;
        match info? {
            Some(info) => verify(target, &plan.table, &info),
            None if target.create_table => Ok(()),
            None => Err(not_found(&plan.table)),
        }
    }

    #[tracing::instrument(name = "destination.open", skip_all, fields(connector = "sqlite"))]
    async fn open(
        &self,
        target: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError> {
        let plan = plan(target)?;
        let mut conn = self.config.connect_writer().await?;
        let info = match table_info(&mut conn, &plan.table).await? {
            Some(info) => info,
            None if target.create_table => {
                let ddl = create_table_sql(target, &plan);
                conn.execute(ddl.as_str()).await.map_err(|e| {
                    from_sqlx(&e).context(format!("creating table `{}`", plan.table))
                })?;
                tracing::info!(table = %plan.table, "sqlite table created");
                table_info(&mut conn, &plan.table)
                    .await?
                    .ok_or_else(|| not_found(&plan.table))?
            }
            None => return Err(not_found(&plan.table)),
        };
        verify(target, &plan.table, &info)?;
        let statements = statements(target, &plan);
        let key_schema = Arc::new(Schema::new(
            plan.pk
                .iter()
                .map(|&i| target.schema.fields()[i].clone())
                .collect::<Vec<_>>(),
        ));
        Ok(Box::new(SqliteWriter {
            conn,
            table: plan.table,
            schema: target.schema.clone(),
            key_schema,
            key_types: plan.pk.iter().map(|&i| plan.types[i].clone()).collect(),
            types: plan.types,
            mode: target.mode,
            statements,
            in_transaction: false,
        }))
    }
}

/// Which statement a batch runs per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Delete,
}

/// One run's writer, holding its single connection.
struct SqliteWriter {
    conn: SqliteConnection,
    table: TableName,
    schema: SchemaRef,
    types: Vec<CanonicalType>,
    key_schema: SchemaRef,
    key_types: Vec<CanonicalType>,
    mode: WriteMode,
    statements: Statements,
    /// Set between BEGIN and COMMIT/ROLLBACK, so a batch abandoned mid-way (its future dropped)
    /// is rolled back before the next one begins.
    in_transaction: bool,
}

/// The values of every row of `batch`, matched by column name to `schema`; a row whose value
/// cannot be represented is a failure of that row alone.
fn row_values(
    batch: &RecordBatch,
    schema: &Schema,
    types: &[CanonicalType],
) -> Result<Vec<Result<Vec<SqlValue>, RowFailure>>, ConnectorError> {
    let readers = schema
        .fields()
        .iter()
        .zip(types)
        .map(|(field, ty)| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                ConnectorError::schema(field.name(), "column missing from the batch")
            })?;
            ColumnReader::new(field, ty, column)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            readers
                .iter()
                .zip(schema.fields())
                .map(|(reader, field)| {
                    reader.value(row).map_err(|message| RowFailure {
                        row,
                        column: Some(field.name().clone()),
                        message,
                    })
                })
                .collect()
        })
        .collect())
}

impl SqliteWriter {
    async fn begin(&mut self) -> Result<(), ConnectorError> {
        self.rollback().await;
        // IMMEDIATE takes the write lock now (waiting up to busy_timeout), so a busy database
        // fails the batch before any row is attempted instead of in the middle.
        self.conn
            .execute("BEGIN IMMEDIATE")
            .await
            .map_err(|e| from_sqlx(&e).context(format!("beginning a write to `{}`", self.table)))?;
        self.in_transaction = true;
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    async fn rollback(&mut self) {
        if self.in_transaction {
            // Fails harmlessly when SQLite already rolled back (e.g. ON CONFLICT ROLLBACK).
            if let Err(e) = self.conn.execute("ROLLBACK").await {
                tracing::debug!(error = %crate::error::message(&e), "sqlite rollback failed");
            }
            self.in_transaction = false;
        }
    }

    /// Runs one row's statement; `Ok(false)` means the mode deliberately skipped the row.
    async fn apply_row(&mut self, op: Op, values: &[SqlValue]) -> Result<bool, sqlx::Error> {
        let sql = match op {
            Op::Delete => &self.statements.delete,
            Op::Write => match &self.statements.write {
                Some(sql) => sql,
                None => {
                    // Update mode with only key columns: nothing to set; applied iff it exists.
                    let found = bind_all(sqlx::query(&self.statements.exists), values)
                        .fetch_optional(&mut self.conn)
                        .await?;
                    return Ok(found.is_some());
                }
            },
        };
        let changed = bind_all(sqlx::query(sql), values)
            .execute(&mut self.conn)
            .await?
            .rows_affected();
        if changed > 0 {
            return Ok(true);
        }
        match (op, self.mode) {
            // The key exists with identical values: nothing to write, yet the row is applied.
            (Op::Write, WriteMode::Upsert) => Ok(true),
            // The key already exists.
            (Op::Write, WriteMode::Insert) => Ok(false),
            // Either the key is missing (skipped) or its values are unchanged (applied).
            (Op::Write, WriteMode::Update) => {
                let found = bind_all(sqlx::query(&self.statements.exists), values)
                    .fetch_optional(&mut self.conn)
                    .await?;
                Ok(found.is_some())
            }
            // The key was not there.
            (Op::Delete, _) => Ok(false),
        }
    }

    /// Applies `rows` in one transaction; row-level refusals become failures while the other
    /// rows commit.
    async fn apply(
        &mut self,
        op: Op,
        rows: &[Result<Vec<SqlValue>, RowFailure>],
    ) -> Result<WriteOutcome, ConnectorError> {
        self.begin().await?;
        let mut outcome = WriteOutcome::default();
        for (row, values) in rows.iter().enumerate() {
            let values = match values {
                Ok(values) => values,
                Err(failure) => {
                    outcome.failed.push(failure.clone());
                    continue;
                }
            };
            match self.apply_row(op, values).await {
                Ok(true) => {}
                Ok(false) => outcome.skipped.push(row),
                Err(e) if is_row_error(&e) => outcome.failed.push(row_failure(row, &e)),
                Err(e) => {
                    self.rollback().await;
                    return Err(from_sqlx(&e).context(format!("writing to `{}`", self.table)));
                }
            }
        }
        match self.commit().await {
            Ok(()) => Ok(outcome),
            Err(e) if is_row_error(&e) => {
                // A deferred constraint (DEFERRABLE INITIALLY DEFERRED foreign key) failed at
                // COMMIT for some row we cannot name: redo the batch one row per transaction.
                tracing::debug!(table = %self.table, "sqlite commit refused, isolating rows");
                self.rollback().await;
                self.apply_one_by_one(op, rows).await
            }
            Err(e) => {
                self.rollback().await;
                Err(from_sqlx(&e).context(format!("committing to `{}`", self.table)))
            }
        }
    }

    async fn apply_one_by_one(
        &mut self,
        op: Op,
        rows: &[Result<Vec<SqlValue>, RowFailure>],
    ) -> Result<WriteOutcome, ConnectorError> {
        let mut outcome = WriteOutcome::default();
        for (row, values) in rows.iter().enumerate() {
            let values = match values {
                Ok(values) => values,
                Err(failure) => {
                    outcome.failed.push(failure.clone());
                    continue;
                }
            };
            self.begin().await?;
            let applied = match self.apply_row(op, values).await {
                Ok(applied) => applied,
                Err(e) if is_row_error(&e) => {
                    self.rollback().await;
                    outcome.failed.push(row_failure(row, &e));
                    continue;
                }
                Err(e) => {
                    self.rollback().await;
                    return Err(from_sqlx(&e).context(format!("writing to `{}`", self.table)));
                }
            };
            match self.commit().await {
                Ok(()) if applied => {}
                Ok(()) => outcome.skipped.push(row),
                Err(e) if is_row_error(&e) => {
                    self.rollback().await;
                    outcome.failed.push(row_failure(row, &e));
                }
                Err(e) => {
                    self.rollback().await;
                    return Err(from_sqlx(&e).context(format!("committing to `{}`", self.table)));
                }
            }
        }
        Ok(outcome)
    }
}

#[async_trait]
impl DestinationWriter for SqliteWriter {
    #[tracing::instrument(name = "destination.write", skip_all, fields(connector = "sqlite", rows = batch.num_rows()))]
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        if batch.num_rows() == 0 {
            return Ok(WriteOutcome::default());
        }
        let schema = self.schema.clone();
        let rows = row_values(batch, &schema, &self.types)?;
        let outcome = self.apply(Op::Write, &rows).await?;
        tracing::debug!(
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            "sqlite batch written"
        );
        Ok(outcome)
    }

    #[tracing::instrument(name = "destination.delete", skip_all, fields(connector = "sqlite", rows = keys.num_rows()))]
    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        if keys.num_rows() == 0 {
            return Ok(WriteOutcome::default());
        }
        let key_schema = self.key_schema.clone();
        let key_types = self.key_types.clone();
        let rows = row_values(keys, &key_schema, &key_types)?;
        let outcome = self.apply(Op::Delete, &rows).await?;
        tracing::debug!(
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            "sqlite keys deleted"
        );
        Ok(outcome)
    }

    async fn close(mut self: Box<Self>) -> Result<(), ConnectorError> {
        self.rollback().await;
        self.conn
            .close()
            .await
            .map_err(|e| from_sqlx(&e).context("closing the sqlite connection"))
    }
}
