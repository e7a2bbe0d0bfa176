//! The PostgreSQL destination: binary COPY into a temporary staging table, then one statement
//! that applies the write mode, in one transaction per batch.
//!
//! Rows the database refuses (a bad value, a constraint) are isolated by splitting the batch
//! in halves until each failing row stands alone, so one bad row never blocks the others.
//! An initial load into an empty table whose columns have exactly the native types skips the
//! staging table and COPYs straight into the target.

use arrow::array::RecordBatch;
use arrow::datatypes::Field;
use async_trait::async_trait;
use backflow_connector_core::support::{AttemptError, Bisection};
use backflow_connector_core::{
    CanonicalType, ConnectorError, Destination, DestinationWriter, ErrorKind, RowFailure,
    WriteMode, WriteOutcome, WriteTarget,
};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use tracing::Instrument;

use crate::codec::{encode_fields, write_header, write_trailer, EncodeColumn};
use crate::config::{PostgresConfig, Role};
use crate::error::{classify, classify_during, is_row_level};
use crate::ident::{quote, ObjectName};
use crate::statements::{
    create_staging_table, required_privileges, table_is_empty, Statements, KEYS, STAGE,
};
use crate::table::{self, Table};
use crate::types::{native_type, NativeType};
use crate::validate::{
    check_casts, check_columns_writable, check_key_is_unique, check_privileges,
    check_unwritten_columns_optional,
};

/// Name of the row-number column of staging tables: ties staged rows back to the batch.
pub(crate) const ROW_COLUMN: &str = "__backflow_row";
/// Encoded COPY data is sent in pieces of about this size.
const SEND_CHUNK: usize = 1 << 20;

/// A validated PostgreSQL destination; it connects only in `check` and `open`.
#[derive(Debug, Clone)]
pub struct PostgresDestination {
    config: PostgresConfig,
}

impl PostgresDestination {
    pub(crate) fn new(config: PostgresConfig) -> Self {
        Self { config }
    }

    /// `open` with the concrete writer type, so crate tests can read its statistics.
    pub(crate) async fn open_writer(
        &self,
        target: &WriteTarget,
    ) -> Result<PostgresWriter, ConnectorError> {
        let plan = Plan::new(target)?;
        let mut conn = self.config.connect(Role::Destination).await?;
        let table = open_table(&mut conn, &plan, target.create_table).await?;
        PostgresWriter::start(conn, plan, table).await
    }
}

/// Resolves the target table, creating it when allowed and missing, and validates it: what
/// `open` does before any write.
pub(crate) async fn open_table(
    conn: &mut PgConnection,
    plan: &Plan,
    create: bool,
) -> Result<Table, ConnectorError> {
    let table = match table::resolve(conn, &plan.object).await? {
        Some(oid) => table::load(conn, oid).await?,
        None if create => {
            create_table(conn, plan).await?;
            let oid = table::resolve(conn, &plan.object).await?.ok_or_else(|| {
                ConnectorError::internal("the table just created cannot be found")
            })?;
            table::load(conn, oid).await?
        }
        None => return Err(missing_table(&plan.object)),
    };
    validate_table(conn, plan, &table).await?;
    Ok(table)
}

/// Everything `check` verifies on an open connection, without creating anything.
pub(crate) async fn check_table(
    conn: &mut PgConnection,
    plan: &Plan,
    create: bool,
) -> Result<(), ConnectorError> {
    match table::resolve(conn, &plan.object).await? {
        Some(oid) => {
            let table = table::load(conn, oid).await?;
            validate_table(conn, plan, &table).await
        }
        None if create => table::check_creatable(conn, &plan.object).await,
        None => Err(missing_table(&plan.object)),
    }
}

#[async_trait]
impl Destination for PostgresDestination {
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        let span = tracing::info_span!(
            "destination.check",
            url = %self.config.redacted_url(),
            object = %target.object,
        );
        async {
            let plan = Plan::new(target)?;
            let mut conn = self.config.connect(Role::Destination).await?;
            let result = check_table(&mut conn, &plan, target.create_table).await;
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

fn missing_table(object: &ObjectName) -> ConnectorError {
    let name = match &object.schema {
        Some(s) => format!("{s}.{}", object.table),
        None => object.table.clone(),
    };
    ConnectorError::new(
        ErrorKind::NotFound,
        format!(
            "table `{name}` does not exist; set `create_table: true` on the destination to \
             have Backflow create it"
        ),
    )
}

/// One written column: its canonical type and the native type it is staged as.
#[derive(Debug, Clone)]
pub(crate) struct WriteColumn {
    pub(crate) name: String,
    pub(crate) canonical: CanonicalType,
    pub(crate) native: NativeType,
}

/// What the target asks for, checked without I/O.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) object: ObjectName,
    pub(crate) columns: Vec<WriteColumn>,
    pub(crate) primary_key: Vec<String>,
    pub(crate) mode: WriteMode,
    initial_load: bool,
    deletes: bool,
}

impl Plan {
    pub(crate) fn new(target: &WriteTarget) -> Result<Self, ConnectorError> {
        let object = ObjectName::parse(&target.object)?;
        let names: Vec<&str> = target
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        crate::ident::check_destination_names(&target.object, &names)?;
        let mut columns: Vec<WriteColumn> = Vec::with_capacity(target.schema.fields().len());
        for field in target.schema.fields() {
            let field: &Field = field;
            let name = field.name();
            if name == ROW_COLUMN {
                return Err(ConnectorError::schema(
                    name,
                    format!("the column name `{ROW_COLUMN}` is reserved by Backflow"),
                ));
            }
            if columns.iter().any(|c| &c.name == name) {
                return Err(ConnectorError::schema(
                    name,
                    format!("column `{name}` appears twice in the sync's schema"),
                ));
            }
            let canonical = CanonicalType::require(field)?;
            let native = native_type(name, &canonical)?;
            columns.push(WriteColumn {
                name: name.clone(),
                canonical,
                native,
            });
        }
        if target.primary_key.is_empty() {
            return Err(ConnectorError::config(
                "primary_key",
                "a primary key of at least one column is required",
            ));
        }
        for key in &target.primary_key {
            if !columns.iter().any(|c| &c.name == key) {
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

    fn key_columns(&self) -> Vec<WriteColumn> {
        self.primary_key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.name == k).cloned())
            .collect()
    }
}

/// `CREATE TABLE` from the canonical schema, native types and `PRIMARY KEY (pk)`.
async fn create_table(conn: &mut PgConnection, plan: &Plan) -> Result<(), ConnectorError> {
    table::check_creatable(conn, &plan.object).await?;
    let columns: Vec<String> = plan
        .columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), c.native.sql))
        .collect();
    let pk: Vec<String> = plan.primary_key.iter().map(|k| quote(k)).collect();
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
        plan.object.quoted(),
        columns.join(", "),
        pk.join(", ")
    );
    conn.execute(sql.as_str())
        .await
        .map_err(classify_during("creating the table"))?;
    tracing::info!(object = %plan.object.quoted(), "created destination table");
    Ok(())
}

/// Everything `check` promises about an existing table: the columns exist and take the
/// canonical types, the key is backed by a unique index, and the privileges the mode needs.
async fn validate_table(
    conn: &mut PgConnection,
    plan: &Plan,
    table: &Table,
) -> Result<(), ConnectorError> {
    check_columns_writable(&plan.columns, table)?;
    if plan.mode != WriteMode::Update {
        check_unwritten_columns_optional(&plan.columns, table)?;
    }
    check_key_is_unique(&plan.primary_key, table)?;
    check_casts(conn, &plan.columns, table).await?;
    let columns: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    let keys: Vec<&str> = plan.primary_key.iter().map(String::as_str).collect();
    let needed = required_privileges(plan.mode, plan.deletes, &columns, &keys);
    check_privileges(conn, table, plan.mode, &needed).await
}

/// Counters of which write path batches took; read by tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteStats {
    /// Batches COPYed straight into the target table.
    pub(crate) direct_batches: u64,
    /// Direct COPYs that failed and were redone through the staging table.
    pub(crate) direct_fallbacks: u64,
    /// Batches written through the staging table.
    pub(crate) staged_batches: u64,
    /// Transactions attempted through the staging table (more than batches when split).
    pub(crate) staged_attempts: u64,
}

/// Writes one run's batches over one dedicated connection.
pub(crate) struct PostgresWriter {
    conn: Option<PgConnection>,
    plan: Plan,
    table: String,
    statements: Statements,
    direct: bool,
    pub(crate) stats: WriteStats,
}

/// Whether every written column has exactly its native type and typmod, so the binary COPY
/// encoding of the native type is valid for the column as it is.
fn has_native_types(columns: &[WriteColumn], table: &Table) -> bool {
    columns.iter().all(|c| {
        table
            .column(&c.name)
            .is_some_and(|t| t.type_oid == c.native.oid && t.typmod == c.native.typmod)
    })
}

/// Which staging path a set of rows goes through.
#[derive(Clone, Copy)]
enum Job {
    Write,
    Delete,
}

impl PostgresWriter {
    /// Prepares the dedicated connection for writing: staging tables, the statements planned
    /// once, and whether batches may skip staging.
    async fn start(
        mut conn: PgConnection,
        plan: Plan,
        table: Table,
    ) -> Result<Self, ConnectorError> {
        let keys = plan.key_columns();
        Self::create_staging_tables(&mut conn, &plan.columns, &keys).await?;
        let statements = Statements::new(&table, &plan.columns, &keys, plan.mode);
        Self::prepare(&mut conn, &statements, &table).await?;
        let direct = Self::direct_copy_possible(&mut conn, &plan, &table).await?;
        tracing::info!(
            table = %table.display(),
            mode = ?plan.mode,
            direct_copy = direct,
            "destination writer open"
        );
        Ok(Self {
            conn: Some(conn),
            plan,
            table: table.display(),
            statements,
            direct,
            stats: WriteStats::default(),
        })
    }

    /// Creates the temporary tables rows and keys are COPYed into before each apply; they
    /// live as long as the connection.
    async fn create_staging_tables(
        conn: &mut PgConnection,
        columns: &[WriteColumn],
        keys: &[WriteColumn],
    ) -> Result<(), ConnectorError> {
        for sql in [
            create_staging_table(STAGE, columns),
            create_staging_table(KEYS, keys),
        ] {
            conn.execute(sql.as_str())
                .await
                .map_err(classify_during("creating the staging table"))?;
        }
        Ok(())
    }

    /// Plans the apply and delete statements now, so a type without equality or a mismatch
    /// fails at open rather than on the first batch.
    async fn prepare(
        conn: &mut PgConnection,
        statements: &Statements,
        table: &Table,
    ) -> Result<(), ConnectorError> {
        for sql in [&statements.apply, &statements.delete] {
            conn.prepare(sql.as_str()).await.map_err(|e| {
                let e = classify(e);
                if e.kind() == ErrorKind::Connectivity {
                    e
                } else {
                    ConnectorError::new(
                        ErrorKind::Schema,
                        format!(
                            "cannot plan the write into {}: {}",
                            table.display(),
                            e.message()
                        ),
                    )
                }
            })?;
        }
        Ok(())
    }

    /// Whether batches may COPY straight into the table: only an initial load (which never
    /// updates) into an empty table whose columns take the encoded native values as they are.
    async fn direct_copy_possible(
        conn: &mut PgConnection,
        plan: &Plan,
        table: &Table,
    ) -> Result<bool, ConnectorError> {
        if !plan.initial_load
            || plan.mode == WriteMode::Update
            || !has_native_types(&plan.columns, table)
        {
            return Ok(false);
        }
        sqlx::query_scalar(&table_is_empty(&table.quoted()))
            .persistent(false)
            .fetch_one(conn)
            .await
            .map_err(classify_during("checking whether the table is empty"))
    }

    fn conn(&mut self) -> Result<&mut PgConnection, ConnectorError> {
        self.conn
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("the writer is closed"))
    }

    /// Views the batch columns `columns` names in the batch, by name.
    fn bind<'b>(
        columns: &'b [WriteColumn],
        batch: &'b RecordBatch,
    ) -> Result<Vec<EncodeColumn<'b>>, ConnectorError> {
        columns
            .iter()
            .map(|c| {
                let index = batch.schema().index_of(&c.name).map_err(|_| {
                    ConnectorError::schema(&c.name, format!("the batch has no column `{}`", c.name))
                })?;
                EncodeColumn::new(&c.name, &c.canonical, batch.column(index))
            })
            .collect()
    }

    /// Encodes every row of the batch once, keeping the bytes for every COPY attempt (the
    /// direct path, the staging path and each split retry), and a failure for each row that
    /// cannot be encoded.
    fn encode(columns: &[EncodeColumn<'_>], rows: usize) -> (Encoded, Vec<RowFailure>) {
        let mut encoded = Encoded {
            fields: columns.len(),
            bytes: Vec::with_capacity(rows * 64),
            ranges: Vec::with_capacity(rows),
            ok: Vec::with_capacity(rows),
        };
        let mut failed = Vec::new();
        for row in 0..rows {
            let start = encoded.bytes.len();
            match encode_fields(columns, row, &mut encoded.bytes) {
                Ok(()) => {
                    encoded.ok.push(row);
                    encoded.ranges.push(start..encoded.bytes.len());
                }
                Err((column, message)) => {
                    encoded.ranges.push(start..start);
                    failed.push(RowFailure {
                        row,
                        column: Some(column.to_string()),
                        message,
                    });
                }
            }
        }
        (encoded, failed)
    }

    /// Streams `rows` as one COPY (the statement opens it).
    async fn copy(
        conn: &mut PgConnection,
        statement: &str,
        encoded: &Encoded,
        rows: &[usize],
        numbered: bool,
    ) -> Result<(), sqlx::Error> {
        let mut copy = conn.copy_in_raw(statement).await?;
        let mut buf = Vec::with_capacity(SEND_CHUNK + 4096);
        write_header(&mut buf);
        let fields = (encoded.fields + usize::from(numbered)) as i16;
        for &row in rows {
            buf.extend_from_slice(&fields.to_be_bytes());
            if numbered {
                buf.extend_from_slice(&4i32.to_be_bytes());
                buf.extend_from_slice(&(row as i32).to_be_bytes());
            }
            buf.extend_from_slice(&encoded.bytes[encoded.ranges[row].clone()]);
            if buf.len() >= SEND_CHUNK {
                // On error the connection is gone; dropping `copy` is all that is left to do.
                copy.send(buf.as_slice()).await?;
                buf.clear();
            }
        }
        write_trailer(&mut buf);
        copy.send(buf.as_slice()).await?;
        copy.finish().await?;
        Ok(())
    }

    /// One transaction: COPY `rows` into the staging table, apply, commit. Returns the batch
    /// rows the mode skipped.
    async fn attempt(
        &mut self,
        job: Job,
        encoded: &Encoded,
        rows: &[usize],
    ) -> Result<Vec<usize>, sqlx::Error> {
        self.stats.staged_attempts += 1;
        let (copy_sql, apply_sql, returns) = match job {
            Job::Write => (
                &self.statements.copy_stage,
                &self.statements.apply,
                self.statements.apply_returns_skipped,
            ),
            Job::Delete => (&self.statements.copy_keys, &self.statements.delete, true),
        };
        let Some(conn) = self.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        conn.execute("BEGIN").await?;
        let result: Result<Vec<usize>, sqlx::Error> = async {
            Self::copy(conn, copy_sql, encoded, rows, true).await?;
            let skipped = if returns {
                sqlx::query_scalar::<_, i32>(apply_sql)
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(|r| r as usize)
                    .collect()
            } else {
                sqlx::query(apply_sql).execute(&mut *conn).await?;
                Vec::new()
            };
            // Deferred constraints fire here, so a commit failure is a row failure too.
            conn.execute("COMMIT").await?;
            Ok(skipped)
        }
        .await;
        if result.is_err() {
            // After a failed COMMIT the transaction is already gone; ROLLBACK then only warns.
            if let Err(rollback) = conn.execute("ROLLBACK").await {
                if !is_row_level(&rollback) {
                    return Err(rollback);
                }
            }
        }
        result
    }

    /// Applies `rows` through the staging table, splitting on row-level errors until every
    /// failing row is isolated.
    async fn apply_split(
        &mut self,
        job: Job,
        encoded: &Encoded,
        rows: Vec<usize>,
        outcome: &mut WriteOutcome,
    ) -> Result<(), ConnectorError> {
        let mut bisection = Bisection::new(0..rows.len());
        while let Some(group) = bisection.next_group() {
            let result = self.attempt(job, encoded, &rows[group]).await;
            bisection
                .record(result.map_err(|e| AttemptError::refused_if(e, is_row_level)))
                .map_err(|e| classify(e).context(format!("writing to {}", self.table)))?;
        }
        bisection.finish().settle(&rows, outcome, classify);
        Ok(())
    }

    async fn write_batch(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let plan_columns = self.plan.columns.clone();
        let columns = Self::bind(&plan_columns, batch)?;
        let (encoded, failed) = Self::encode(&columns, batch.num_rows());
        let rows = encoded.ok.clone();
        let mut outcome = WriteOutcome {
            failed,
            skipped: Vec::new(),
        };
        if rows.is_empty() {
            return Ok(outcome);
        }
        if self.direct && outcome.failed.is_empty() {
            let statement = self.statements.copy_direct.clone();
            match Self::copy(self.conn()?, &statement, &encoded, &rows, false).await {
                Ok(()) => {
                    self.stats.direct_batches += 1;
                    tracing::debug!(rows = rows.len(), path = "direct_copy", "batch written");
                    return Ok(outcome);
                }
                Err(e) => {
                    let e = classify(e);
                    if e.kind() == ErrorKind::Connectivity {
                        return Err(e.context(format!("writing to {}", self.table)));
                    }
                    // Whatever went wrong (a duplicate key, a bad row), the staging path
                    // handles it row by row; later batches go through staging too.
                    tracing::info!(
                        code = e.code().unwrap_or(""),
                        "direct copy failed; falling back to the staging table"
                    );
                    self.direct = false;
                    self.stats.direct_fallbacks += 1;
                }
            }
        }
        self.direct = false;
        self.stats.staged_batches += 1;
        self.apply_split(Job::Write, &encoded, rows, &mut outcome)
            .await?;
        tracing::debug!(
            rows = batch.num_rows(),
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            path = "staging",
            "batch written"
        );
        Ok(outcome)
    }

    async fn delete_batch(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let key_columns = self.plan.key_columns();
        let columns = Self::bind(&key_columns, keys)?;
        let (encoded, failed) = Self::encode(&columns, keys.num_rows());
        let rows = encoded.ok.clone();
        let mut outcome = WriteOutcome {
            failed,
            skipped: Vec::new(),
        };
        // Direct COPY only fits an initial load; once anything is deleted, stage everything.
        self.direct = false;
        self.apply_split(Job::Delete, &encoded, rows, &mut outcome)
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

/// A batch in binary COPY row encoding, without each row's field count and row number (which
/// differ between the direct and the staging COPY).
struct Encoded {
    fields: usize,
    bytes: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
    ok: Vec<usize>,
}

#[async_trait]
impl DestinationWriter for PostgresWriter {
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
            staged_batches = self.stats.staged_batches,
            staged_attempts = self.stats.staged_attempts,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Schema, SchemaRef};
    use sqlx::Connection;

    use super::*;

    fn url() -> String {
        std::env::var("BACKFLOW_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://backflow:backflow@127.0.0.1:55432/backflow".to_string())
    }

    fn destination() -> PostgresDestination {
        crate::validate_destination(&serde_json::json!({ "url": url() })).unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn target(object: &str, initial_load: bool) -> WriteTarget {
        WriteTarget {
            object: object.to_string(),
            schema: schema(),
            primary_key: vec!["id".to_string()],
            mode: WriteMode::Upsert,
            create_table: true,
            initial_load,
            deletes: false,
        }
    }

    async fn contents(table: &str) -> Vec<(i64, String)> {
        let mut conn = PgConnection::connect(&url())
            .await
            .expect("PostgreSQL is unreachable");
        let rows = sqlx::query_as(&format!("SELECT id, name FROM {table} ORDER BY id"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.execute(format!("DROP TABLE {table}").as_str())
            .await
            .unwrap();
        rows
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn initial_load_copies_directly_then_falls_back_to_staging() {
        let table = format!("fast_{:016x}", rand::random::<u64>());
        let mut w = destination()
            .open_writer(&target(&table, true))
            .await
            .unwrap();
        assert!(
            w.direct,
            "an empty, freshly created table takes the direct path"
        );

        let out = w.write(&batch(&[1, 2], &["a", "b"])).await.unwrap();
        assert_eq!(out, WriteOutcome::default());
        assert_eq!(w.stats.direct_batches, 1);
        assert_eq!(w.stats.staged_batches, 0);

        // Key 2 already exists: the direct COPY fails on the primary key and the batch is
        // redone as an upsert through the staging table; later batches stay on staging.
        let out = w.write(&batch(&[2, 3], &["B", "c"])).await.unwrap();
        assert_eq!(out, WriteOutcome::default());
        assert_eq!(w.stats.direct_fallbacks, 1);
        assert_eq!(w.stats.staged_batches, 1);
        let out = w.write(&batch(&[4], &["d"])).await.unwrap();
        assert_eq!(out, WriteOutcome::default());
        assert_eq!(w.stats.direct_batches, 1);
        assert_eq!(w.stats.staged_batches, 2);
        Box::new(w).close().await.unwrap();

        assert_eq!(
            contents(&table).await,
            vec![
                (1, "a".to_string()),
                (2, "B".to_string()),
                (3, "c".to_string()),
                (4, "d".to_string())
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_and_open_refuse_names_postgres_would_truncate() {
        let dest = destination();
        // 64 bytes: PostgreSQL would keep the first 63, the name of another sync's table.
        let table = format!("trunc_{:016x}_{}", rand::random::<u64>(), "x".repeat(41));
        assert_eq!(table.len(), 64);
        let e = dest.check(&target(&table, true)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert_eq!(e.field(), Some("destination.object"), "{e}");
        assert!(!e.is_retryable(), "{e}");
        assert!(e.message().contains("64 bytes long"), "{e}");
        let e = dest.open(&target(&table, true)).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let mut conn = PgConnection::connect(&url()).await.unwrap();
        let created: Option<i64> =
            sqlx::query_scalar("SELECT pg_catalog.to_regclass($1)::oid::int8")
                .bind(&table[..63])
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(created, None, "open created the truncated table");

        // A destination column over 63 bytes is named in the error.
        let column = "c".repeat(64);
        let long_column = WriteTarget {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new(&column, DataType::Utf8, true),
            ])),
            ..target("whatever", true)
        };
        let e = dest.check(&long_column).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert_eq!(e.column(), Some(column.as_str()), "{e}");
        assert!(!e.is_retryable(), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_path_needs_empty_table_native_types_and_initial_load() {
        let dest = destination();
        // Not an initial load.
        let table = format!("fast_{:016x}", rand::random::<u64>());
        let w = dest.open_writer(&target(&table, false)).await.unwrap();
        assert!(!w.direct);
        Box::new(w).close().await.unwrap();
        // Not empty.
        let mut w = dest.open_writer(&target(&table, true)).await.unwrap();
        assert!(w.direct);
        w.write(&batch(&[1], &["a"])).await.unwrap();
        Box::new(w).close().await.unwrap();
        let w = dest.open_writer(&target(&table, true)).await.unwrap();
        assert!(!w.direct);
        Box::new(w).close().await.unwrap();
        contents(&table).await;

        // Empty but `name` is varchar(10), not the native text.
        let table = format!("fast_{:016x}", rand::random::<u64>());
        let mut conn = PgConnection::connect(&url()).await.unwrap();
        conn.execute(
            format!("CREATE TABLE {table} (id int8 PRIMARY KEY, name varchar(10))").as_str(),
        )
        .await
        .unwrap();
        let mut w = dest.open_writer(&target(&table, true)).await.unwrap();
        assert!(!w.direct);
        let out = w
            .write(&batch(&[1, 2], &["short", "far too long for ten"]))
            .await
            .unwrap();
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].row, 1);
        assert_eq!(w.stats.staged_batches, 1);
        Box::new(w).close().await.unwrap();
        assert_eq!(contents(&table).await, vec![(1, "short".to_string())]);
    }
}
