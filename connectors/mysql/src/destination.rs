//! The MySQL/MariaDB destination: multi-row text statements in one transaction per batch.
//!
//! * `upsert`: `INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE c = VALUES(c)`.
//! * `insert`: the batch's keys go into an indexed temporary table; a join finds (and locks)
//!   the keys that already exist, which are reported skipped; the others are inserted with a
//!   plain `INSERT`, so an existing row is never updated.
//! * `update`: the rows go into an indexed temporary table; a join finds the existing keys,
//!   and one `UPDATE target JOIN stage` applies them, so a missing key is never created.
//! * deletes (`mirror`): the keys go into the indexed key table, one `DELETE target FROM
//!   target JOIN keys` removes them; keys that were not there are reported skipped.
//!
//! Rows the database refuses (a bad value, a constraint) are isolated by splitting the batch
//! in halves until each failing row stands alone, so one bad row never blocks the others. An
//! initial load into an empty table uses plain `INSERT`s without the upsert clause.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use backflow_connector_core::support::{AttemptError, Bisection};
use backflow_connector_core::{
    CanonicalType, ConnectorError, Destination, DestinationWriter, ErrorKind, RowFailure,
    WriteMode, WriteOutcome, WriteTarget,
};
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};
use tracing::Instrument;

use crate::config::{MysqlConfig, Role};
use crate::error::{classify, classify_during, is_row_level};
use crate::ident::{quote, ObjectName};
use crate::literal::{bind, ColumnFormat, Values};
use crate::statements::{
    any_row, max_statement_bytes, privilege_probes, staging_tables, Statements, KEYS, STAGE,
};
use crate::table::{self, Table};
use crate::types::native_type;
use crate::validate::{
    check_columns_writable, check_key_is_unique, check_privileges, check_unwritten_columns_optional,
};

/// Name of the row-number column of the staging tables: ties staged rows back to the batch.
pub(crate) const ROW_COLUMN: &str = "__backflow_row";

/// A validated MySQL/MariaDB destination; it connects only in `check` and `open`.
#[derive(Debug, Clone)]
pub struct MysqlDestination {
    config: MysqlConfig,
}

impl MysqlDestination {
    pub(crate) fn new(config: MysqlConfig) -> Self {
        Self { config }
    }

    /// `open` with the concrete writer type, so crate tests can read its statistics.
    pub(crate) async fn open_writer(
        &self,
        target: &WriteTarget,
    ) -> Result<MysqlWriter, ConnectorError> {
        let plan = Plan::new(target)?;
        let mut conn = self.config.connect(Role::Destination).await?;
        let database = table::database_of(&mut conn, &plan.object).await?;
        let table = match table::load(&mut conn, &database, &plan.object.table).await? {
            Some(t) => t,
            None if target.create_table => {
                create_table(&mut conn, &plan, &database).await?;
                table::load(&mut conn, &database, &plan.object.table)
                    .await?
                    .ok_or_else(|| {
                        ConnectorError::internal("the table just created cannot be found")
                    })?
            }
            None => return Err(missing_table(&database, &plan.object.table)),
        };
        validate_table(&mut conn, &plan, &table).await?;
        MysqlWriter::start(conn, plan, table).await
    }
}

#[async_trait]
impl Destination for MysqlDestination {
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        let span = tracing::info_span!(
            "destination.check",
            url = %self.config.redacted_url(),
            object = %target.object,
        );
        async {
            let plan = Plan::new(target)?;
            let mut conn = self.config.connect(Role::Destination).await?;
            let result = async {
                let database = table::database_of(&mut conn, &plan.object).await?;
                match table::load(&mut conn, &database, &plan.object.table).await? {
                    Some(table) => validate_table(&mut conn, &plan, &table).await,
                    None if target.create_table => Ok(()),
                    None => Err(missing_table(&database, &plan.object.table)),
                }
            }
            .await;
            let _ = conn.close().await;
            result
        }
        .instrument(span)
        .await
    }

    async fn open(
        &self,
        target: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError> {
        let span = tracing::info_span!(
            "destination.open",
            url = %self.config.redacted_url(),
            object = %target.object,
            mode = ?target.mode,
        );
        let writer = self.open_writer(target).instrument(span).await?;
        Ok(Box::new(writer))
    }
}

fn missing_table(database: &str, table: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::NotFound,
        format!(
            "table `{database}.{table}` does not exist; set `create_table: true` on the \
             destination to have Backflow create it"
        ),
    )
}

/// What the target asks for, checked without I/O.
#[derive(Debug, Clone)]
struct Plan {
    object: ObjectName,
    columns: Vec<(String, CanonicalType)>,
    primary_key: Vec<String>,
    mode: WriteMode,
    initial_load: bool,
    deletes: bool,
}

impl Plan {
    fn new(target: &WriteTarget) -> Result<Self, ConnectorError> {
        let object = ObjectName::parse(&target.object)?;
        let names: Vec<&str> = target
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        crate::ident::check_destination_names(&target.object, &names)?;
        if target.primary_key.is_empty() {
            return Err(ConnectorError::config(
                "primary_key",
                "a primary key of at least one column is required",
            ));
        }
        let mut columns: Vec<(String, CanonicalType)> = Vec::new();
        for field in target.schema.fields() {
            let name = field.name();
            if name == ROW_COLUMN {
                return Err(ConnectorError::schema(
                    name,
                    format!("the column name `{ROW_COLUMN}` is reserved by Backflow"),
                ));
            }
            if columns.iter().any(|(c, _)| c == name) {
                return Err(ConnectorError::schema(
                    name,
                    format!("column `{name}` appears twice in the sync's schema"),
                ));
            }
            let canonical = CanonicalType::require(field)?;
            native_type(name, &canonical, target.primary_key.contains(name))?;
            columns.push((name.clone(), canonical));
        }
        for key in &target.primary_key {
            if !columns.iter().any(|(c, _)| c == key) {
                return Err(ConnectorError::config(
                    "primary_key",
                    format!("primary key column `{key}` is not among the synced columns"),
                ));
            }
        }
        Ok(Self {
            object,
            columns,
            primary_key: target.primary_key.clone(),
            mode: target.mode,
            initial_load: target.initial_load,
            deletes: target.deletes,
        })
    }
}

/// `CREATE TABLE` from the canonical schema (see the crate docs for the mapping), utf8mb4 with
/// a binary collation so keys compare exactly as Arrow strings do.
async fn create_table(
    conn: &mut MySqlConnection,
    plan: &Plan,
    database: &str,
) -> Result<(), ConnectorError> {
    let mut columns = Vec::with_capacity(plan.columns.len());
    for (name, canonical) in &plan.columns {
        let in_key = plan.primary_key.contains(name);
        let native = native_type(name, canonical, in_key)?;
        columns.push(format!("{} {native}", quote(name)));
    }
    let pk: Vec<String> = plan.primary_key.iter().map(|k| quote(k)).collect();
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {}.{} ({}, PRIMARY KEY ({})) ENGINE=InnoDB \
         DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        quote(database),
        quote(&plan.object.table),
        columns.join(", "),
        pk.join(", ")
    );
    conn.execute(sql.as_str())
        .await
        .map_err(classify_during("creating the table"))?;
    tracing::info!(database, table = %plan.object.table, "created destination table");
    Ok(())
}

/// Everything `check` promises about an existing table: the columns exist and take the
/// canonical types, the key is backed by a unique index, and the privileges the mode needs.
async fn validate_table(
    conn: &mut MySqlConnection,
    plan: &Plan,
    table: &Table,
) -> Result<(), ConnectorError> {
    check_columns_writable(&plan.columns, table)?;
    if plan.mode != WriteMode::Update {
        check_unwritten_columns_optional(&plan.columns, table)?;
    }
    check_key_is_unique(&plan.primary_key, table)?;
    // EXPLAIN checks the privileges of the statement without running it.
    let columns: Vec<&str> = plan.columns.iter().map(|(c, _)| c.as_str()).collect();
    let probes = privilege_probes(&table.quoted(), &columns, plan.mode, plan.deletes);
    check_privileges(conn, table, plan.mode, &probes).await
}

/// Counters of which write path batches took; read by tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteStats {
    /// Batches written with plain INSERTs into the empty table of an initial load.
    pub(crate) direct_batches: u64,
    /// Direct batches that failed and were redone through the mode's path.
    pub(crate) direct_fallbacks: u64,
    /// Transactions attempted through the mode's path (more than batches when split).
    pub(crate) attempts: u64,
}

/// What one transaction does with a set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Plain INSERT (initial load into an empty table).
    Append,
    Upsert,
    Insert,
    Update,
    Delete,
}

/// A batch rendered as SQL literals, one text range per (row, column).
struct Rendered {
    text: String,
    cells: Vec<(u32, u32)>,
    columns: usize,
    ok: Vec<usize>,
}

impl Rendered {
    /// Renders every row; rows with a value MySQL cannot hold are returned as failures.
    fn new(values: &[Values<'_>], names: &[&str], rows: usize) -> (Self, Vec<RowFailure>) {
        let mut out = Self {
            text: String::with_capacity(rows * values.len() * 12),
            cells: Vec::with_capacity(rows * values.len()),
            columns: values.len(),
            ok: Vec::with_capacity(rows),
        };
        let mut failed = Vec::new();
        for row in 0..rows {
            let mut bad = None;
            for (i, v) in values.iter().enumerate() {
                let start = out.text.len() as u32;
                if let Err(message) = v.render(row, &mut out.text) {
                    bad.get_or_insert((i, message));
                }
                out.cells.push((start, out.text.len() as u32));
            }
            match bad {
                None => out.ok.push(row),
                Some((i, message)) => failed.push(RowFailure {
                    row,
                    column: Some(names[i].to_string()),
                    message,
                }),
            }
        }
        (out, failed)
    }

    /// Appends `(row, c1, c2, …)` (row number first when `numbered`) for the given columns.
    fn push_tuple(&self, sql: &mut String, row: usize, columns: &[usize], numbered: bool) {
        sql.push('(');
        if numbered {
            sql.push_str(&row.to_string());
        }
        for (n, &c) in columns.iter().enumerate() {
            if n > 0 || numbered {
                sql.push(',');
            }
            let (start, end) = self.cells[row * self.columns + c];
            sql.push_str(&self.text[start as usize..end as usize]);
        }
        sql.push(')');
    }
}

/// How each written column's values are rendered: UUIDs go into binary columns as their 16
/// bytes and into any other column as text.
fn column_formats(columns: &[(String, CanonicalType)], table: &Table) -> Vec<ColumnFormat> {
    columns
        .iter()
        .map(|(name, canonical)| {
            let data_type = table
                .column(name)
                .map(|c| c.data_type.as_str())
                .unwrap_or("");
            ColumnFormat {
                name: name.clone(),
                canonical: canonical.clone(),
                uuid_as_text: !matches!(data_type, "binary" | "varbinary")
                    && !data_type.ends_with("blob"),
            }
        })
        .collect()
}

/// Writes one run's batches over one dedicated connection.
pub(crate) struct MysqlWriter {
    conn: Option<MySqlConnection>,
    table: String,
    mode: WriteMode,
    formats: Vec<ColumnFormat>,
    key_formats: Vec<ColumnFormat>,
    /// Positions of the key columns among `formats`.
    key_positions: Vec<usize>,
    statements: Statements,
    max_statement: usize,
    direct: bool,
    pub(crate) stats: WriteStats,
}

impl MysqlWriter {
    /// Prepares the dedicated connection for writing: how values are rendered, the staging
    /// tables and statements, how long a statement may grow, and whether batches may skip the
    /// mode's path.
    async fn start(
        mut conn: MySqlConnection,
        plan: Plan,
        table: Table,
    ) -> Result<Self, ConnectorError> {
        let target = table.quoted();
        let formats = column_formats(&plan.columns, &table);
        let key_positions: Vec<usize> = plan
            .primary_key
            .iter()
            .filter_map(|k| formats.iter().position(|f| &f.name == k))
            .collect();
        let key_formats: Vec<ColumnFormat> =
            key_positions.iter().map(|&i| formats[i].clone()).collect();
        let columns: Vec<&str> = formats.iter().map(|f| f.name.as_str()).collect();
        let keys: Vec<&str> = key_formats.iter().map(|f| f.name.as_str()).collect();
        let setup = staging_tables(&target, &columns, &keys, plan.mode);
        Self::create_staging_tables(&mut conn, &setup).await?;
        let statements = Statements::new(&target, &columns, &keys);
        let max_statement = Self::max_statement(&mut conn).await?;
        let direct = Self::plain_inserts_possible(&mut conn, &plan, &target).await?;
        tracing::debug!(table = %target, direct, max_statement, "destination writer opened");
        Ok(Self {
            conn: Some(conn),
            table: target,
            mode: plan.mode,
            formats,
            key_formats,
            key_positions,
            statements,
            max_statement,
            direct,
            stats: WriteStats::default(),
        })
    }

    /// Runs the `setup` statements (see [`staging_tables`]); the tables are temporary and
    /// live as long as the connection.
    async fn create_staging_tables(
        conn: &mut MySqlConnection,
        setup: &[String],
    ) -> Result<(), ConnectorError> {
        for sql in setup {
            conn.execute(sql.as_str())
                .await
                .map_err(classify_during("creating the staging tables"))?;
        }
        Ok(())
    }

    /// The longest multi-row statement the server accepts, with room to spare.
    async fn max_statement(conn: &mut MySqlConnection) -> Result<usize, ConnectorError> {
        let max_packet: u64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS UNSIGNED)")
            .fetch_one(conn)
            .await
            .map_err(classify_during("reading max_allowed_packet"))?;
        Ok(max_statement_bytes(max_packet))
    }

    /// Whether batches may be written with plain INSERTs: only an initial load (which never
    /// updates) into an empty table.
    async fn plain_inserts_possible(
        conn: &mut MySqlConnection,
        plan: &Plan,
        target: &str,
    ) -> Result<bool, ConnectorError> {
        if !plan.initial_load || plan.mode == WriteMode::Update {
            return Ok(false);
        }
        let any: Option<i64> = sqlx::query_scalar(&any_row(target))
            .fetch_optional(conn)
            .await
            .map_err(classify_during("checking whether the table is empty"))?;
        Ok(any.is_none())
    }

    /// Sends `rows` as multi-row statements `prefix (…),(…) suffix` of bounded size.
    #[allow(clippy::too_many_arguments)]
    async fn exec_rows(
        conn: &mut MySqlConnection,
        max: usize,
        prefix: &str,
        suffix: &str,
        rendered: &Rendered,
        rows: &[usize],
        columns: &[usize],
        numbered: bool,
    ) -> Result<(), sqlx::Error> {
        let mut sql = String::with_capacity(max + 4096);
        let mut pending = 0usize;
        for &row in rows {
            if pending == 0 {
                sql.clear();
                sql.push_str(prefix);
            } else {
                sql.push(',');
            }
            rendered.push_tuple(&mut sql, row, columns, numbered);
            pending += 1;
            if sql.len() >= max {
                sql.push_str(suffix);
                conn.execute(sql.as_str()).await?;
                pending = 0;
            }
        }
        if pending > 0 {
            sql.push_str(suffix);
            conn.execute(sql.as_str()).await?;
        }
        Ok(())
    }

    /// The batch rows of the staged rows that matched a target row.
    async fn existing(
        conn: &mut MySqlConnection,
        sql: &str,
    ) -> Result<HashSet<usize>, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, u64>(sql)
            .persistent(false)
            .fetch_all(conn)
            .await?
            .into_iter()
            .map(|r| r as usize)
            .collect())
    }

    /// One transaction applying `job` to `rows`; returns the rows the mode skipped.
    async fn attempt(
        &mut self,
        job: Job,
        rendered: &Rendered,
        rows: &[usize],
    ) -> Result<Vec<usize>, sqlx::Error> {
        let max = self.max_statement;
        let all: Vec<usize> = (0..rendered.columns).collect();
        let keys: Vec<usize> = if job == Job::Delete {
            all.clone()
        } else {
            self.key_positions.clone()
        };
        let s = &self.statements;
        let Some(conn) = self.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        conn.execute("BEGIN").await?;
        let result: Result<Vec<usize>, sqlx::Error> = async {
            match job {
                Job::Append => {
                    Self::exec_rows(conn, max, &s.insert_prefix, "", rendered, rows, &all, false)
                        .await?;
                    Ok(Vec::new())
                }
                Job::Upsert => {
                    Self::exec_rows(
                        conn,
                        max,
                        &s.insert_prefix,
                        &s.upsert_suffix,
                        rendered,
                        rows,
                        &all,
                        false,
                    )
                    .await?;
                    Ok(Vec::new())
                }
                Job::Insert => {
                    conn.execute(format!("DELETE FROM {KEYS}").as_str()).await?;
                    Self::exec_rows(conn, max, &s.keys_prefix, "", rendered, rows, &keys, true)
                        .await?;
                    let existing = Self::existing(conn, &s.existing_keys).await?;
                    let fresh: Vec<usize> = rows
                        .iter()
                        .copied()
                        .filter(|r| !existing.contains(r))
                        .collect();
                    Self::exec_rows(
                        conn,
                        max,
                        &s.insert_prefix,
                        "",
                        rendered,
                        &fresh,
                        &all,
                        false,
                    )
                    .await?;
                    Ok(rows
                        .iter()
                        .copied()
                        .filter(|r| existing.contains(r))
                        .collect())
                }
                Job::Update => {
                    conn.execute(format!("DELETE FROM {STAGE}").as_str())
                        .await?;
                    Self::exec_rows(conn, max, &s.stage_prefix, "", rendered, rows, &all, true)
                        .await?;
                    let existing = Self::existing(conn, &s.existing_stage).await?;
                    if let Some(update) = &s.update {
                        if !existing.is_empty() {
                            conn.execute(update.as_str()).await?;
                        }
                    }
                    Ok(rows
                        .iter()
                        .copied()
                        .filter(|r| !existing.contains(r))
                        .collect())
                }
                Job::Delete => {
                    conn.execute(format!("DELETE FROM {KEYS}").as_str()).await?;
                    Self::exec_rows(conn, max, &s.keys_prefix, "", rendered, rows, &keys, true)
                        .await?;
                    let existing = Self::existing(conn, &s.existing_keys).await?;
                    if !existing.is_empty() {
                        conn.execute(s.delete.as_str()).await?;
                    }
                    Ok(rows
                        .iter()
                        .copied()
                        .filter(|r| !existing.contains(r))
                        .collect())
                }
            }
        }
        .await;
        match result {
            Ok(skipped) => {
                conn.execute("COMMIT").await?;
                Ok(skipped)
            }
            Err(e) => {
                conn.execute("ROLLBACK").await?;
                Err(e)
            }
        }
    }

    /// Applies `rows`, splitting on row-level errors until every failing row is isolated.
    async fn apply_split(
        &mut self,
        job: Job,
        rendered: &Rendered,
        rows: Vec<usize>,
        outcome: &mut WriteOutcome,
    ) -> Result<(), ConnectorError> {
        let mut bisection = Bisection::new(0..rows.len());
        while let Some(group) = bisection.next_group() {
            self.stats.attempts += 1;
            let result = self.attempt(job, rendered, &rows[group]).await;
            bisection
                .record(result.map_err(|e| AttemptError::refused_if(e, is_row_level)))
                .map_err(|e| classify(e).context(format!("writing to {}", self.table)))?;
        }
        bisection.finish().settle(&rows, outcome, classify);
        Ok(())
    }

    async fn write_batch(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let values = bind(&self.formats, batch)?;
        let names: Vec<&str> = self.formats.iter().map(|f| f.name.as_str()).collect();
        let (rendered, failed) = Rendered::new(&values, &names, batch.num_rows());
        drop(values);
        let rows = rendered.ok.clone();
        let mut outcome = WriteOutcome {
            failed,
            skipped: Vec::new(),
        };
        if rows.is_empty() {
            return Ok(outcome);
        }
        if self.direct {
            self.stats.attempts += 1;
            match self.attempt(Job::Append, &rendered, &rows).await {
                Ok(_) => {
                    self.stats.direct_batches += 1;
                    tracing::debug!(rows = rows.len(), path = "direct", "batch written");
                    return Ok(outcome);
                }
                Err(e) => {
                    let e = classify(e);
                    if e.kind() == ErrorKind::Connectivity {
                        return Err(e.context(format!("writing to {}", self.table)));
                    }
                    // Whatever went wrong (a key already there, a bad row), the mode's own
                    // path handles it row by row; later batches take that path too.
                    tracing::info!(
                        code = e.code().unwrap_or(""),
                        "direct insert failed; falling back to the mode's path"
                    );
                    self.direct = false;
                    self.stats.direct_fallbacks += 1;
                }
            }
        }
        let job = match self.mode {
            WriteMode::Upsert => Job::Upsert,
            WriteMode::Insert => Job::Insert,
            WriteMode::Update => Job::Update,
        };
        self.apply_split(job, &rendered, rows, &mut outcome).await?;
        tracing::debug!(
            rows = batch.num_rows(),
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            "batch written"
        );
        Ok(outcome)
    }

    async fn delete_batch(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let values = bind(&self.key_formats, keys)?;
        let names: Vec<&str> = self.key_formats.iter().map(|f| f.name.as_str()).collect();
        let (rendered, failed) = Rendered::new(&values, &names, keys.num_rows());
        drop(values);
        let rows = rendered.ok.clone();
        let mut outcome = WriteOutcome {
            failed,
            skipped: Vec::new(),
        };
        // Plain inserts only fit an initial load; once anything is deleted, use the mode.
        self.direct = false;
        self.apply_split(Job::Delete, &rendered, rows, &mut outcome)
            .await?;
        tracing::debug!(
            keys = keys.num_rows(),
            failed = outcome.failed.len(),
            missing = outcome.skipped.len(),
            "keys deleted"
        );
        Ok(outcome)
    }
}

#[async_trait]
impl DestinationWriter for MysqlWriter {
    // The engine wraps each call in its `destination.write` span.
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        self.write_batch(batch).await
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        self.delete_batch(keys).await
    }

    async fn close(mut self: Box<Self>) -> Result<(), ConnectorError> {
        tracing::info!(
            table = %self.table,
            direct_batches = self.stats.direct_batches,
            attempts = self.stats.attempts,
            "destination writer closed"
        );
        // The staging tables are temporary: they go with the connection.
        if let Some(conn) = self.conn.take() {
            conn.close()
                .await
                .map_err(classify_during("closing the connection"))?;
        }
        Ok(())
    }
}
