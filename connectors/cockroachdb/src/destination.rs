//! The CockroachDB destination: multi-row `INSERT … ON CONFLICT` (and `UPDATE … FROM`,
//! `DELETE … WHERE key IN`) over `unnest` of one `text[]` parameter per column, in statements
//! of at most `batch_rows` rows, each its own implicit transaction, retried with backoff on
//! serialization failures.

use std::ops::Range;
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use backflow_connector_core::support::{AttemptError, Bisection};
use backflow_connector_core::{
    ConnectorError, Destination, DestinationWriter, ErrorKind, WriteMode, WriteOutcome, WriteTarget,
};
use backflow_postgres::shared::{
    check_target, classify, is_row_level, open_target, quote, sqlstate, Role, TargetColumn,
    TargetTable,
};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};
use tracing::Instrument;

use crate::config::CockroachConfig;
use crate::text;

/// The SQLSTATE CockroachDB (and PostgreSQL) use for a transaction that must be retried.
const SERIALIZATION_FAILURE: &str = "40001";
/// Name of the row-number column: ties statement rows back to the batch.
const ROW_COLUMN: &str = "__backflow_row";
/// Most bytes of values one statement carries, whatever `batch_rows` says, so wide rows stay
/// well under CockroachDB's transaction and message size limits.
const MAX_STATEMENT_BYTES: usize = 4 << 20;
/// First retry delay; it doubles per attempt up to [`MAX_BACKOFF`], with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest delay between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A validated CockroachDB destination; it connects only in `check` and `open`.
#[derive(Debug, Clone)]
pub struct CockroachDestination {
    config: CockroachConfig,
}

impl CockroachDestination {
    pub(crate) fn new(config: CockroachConfig) -> Self {
        Self { config }
    }

    /// `open` with the concrete writer type, so crate tests can read its statistics.
    pub async fn open_writer(
        &self,
        target: &WriteTarget,
    ) -> Result<CockroachWriter, ConnectorError> {
        let mut conn = self.config.connection.connect(Role::Destination).await?;
        let table = open_target(&mut conn, target).await?;
        let statements = Statements::new(&table);
        // Plan both statements now: a type without equality or a mismatch fails at open,
        // not on the first batch.
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
                            table.display,
                            e.message()
                        ),
                    )
                }
            })?;
        }
        tracing::info!(
            table = %table.display,
            mode = ?table.mode,
            batch_rows = self.config.batch_rows,
            "destination writer open"
        );
        Ok(CockroachWriter {
            conn: Some(conn),
            table,
            statements,
            batch_rows: self.config.batch_rows,
            max_retries: self.config.max_retries,
            stats: WriteStats::default(),
        })
    }
}

#[async_trait]
impl Destination for CockroachDestination {
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        let span = tracing::info_span!(
            "destination.check",
            url = %self.config.connection.redacted_url(),
            object = %target.object,
        );
        async {
            let mut conn = self.config.connection.connect(Role::Destination).await?;
            let result = check_target(&mut conn, target).await;
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
            url = %self.config.connection.redacted_url(),
            object = %target.object,
            mode = ?target.mode,
        );
        let writer = self.open_writer(target).instrument(span).await?;
        Ok(Box::new(writer))
    }
}

/// The statements a writer runs, built once at open. Each takes `$1` (row numbers, `int4[]`)
/// and one `text[]` per column, and returns the row numbers the mode skipped (if any).
#[derive(Debug)]
struct Statements {
    apply: String,
    apply_returns_skipped: bool,
    delete: String,
}

impl Statements {
    fn new(table: &TargetTable) -> Self {
        let t = &table.quoted;
        let row = quote(ROW_COLUMN);
        let keys = table.key_columns();
        let all: Vec<&TargetColumn> = table.columns.iter().collect();
        let non_key: Vec<&TargetColumn> = table
            .columns
            .iter()
            .filter(|c| !table.primary_key.contains(&c.name))
            .collect();
        let join = |cols: &[&TargetColumn], f: &dyn Fn(&TargetColumn) -> String, sep: &str| {
            cols.iter().map(|c| f(c)).collect::<Vec<_>>().join(sep)
        };
        // A value of the staged rows `s`, parsed as its native type, then cast to the
        // column's type (which enforces a typmod by assignment rather than truncation).
        let value = |alias: &str, c: &TargetColumn| {
            let parsed = format!("{alias}.{}::{}", quote(&c.name), c.native);
            if c.column_type == c.native {
                parsed
            } else {
                format!("{parsed}::{}", c.column_type)
            }
        };
        let comparable = |expr: String, c: &TargetColumn| {
            if c.compare_as_text {
                format!("{expr}::text")
            } else {
                expr
            }
        };
        let staged = |cols: &[&TargetColumn]| {
            let params: Vec<String> = (0..cols.len())
                .map(|i| format!("${}::text[]", i + 2))
                .collect();
            format!(
                "s AS (SELECT * FROM unnest($1::int4[], {}) AS s({row}, {}))",
                params.join(", "),
                join(cols, &|c| quote(&c.name), ", ")
            )
        };
        let key_match = |left: &str| {
            join(
                &keys,
                &|c| format!("{left}.{} = {}", quote(&c.name), value("s", c)),
                " AND ",
            )
        };
        let names = join(&all, &|c| quote(&c.name), ", ");
        let values = join(&all, &|c| value("s", c), ", ");
        let key_names = join(&keys, &|c| quote(&c.name), ", ");
        let stage_all = staged(&all);
        let (apply, apply_returns_skipped) = match table.mode {
            WriteMode::Upsert => {
                let action = if non_key.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!(
                        "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
                        join(
                            &non_key,
                            &|c| format!("{0} = excluded.{0}", quote(&c.name)),
                            ", "
                        ),
                        join(
                            &non_key,
                            &|c| comparable(format!("t.{}", quote(&c.name)), c),
                            ", "
                        ),
                        join(
                            &non_key,
                            &|c| comparable(format!("excluded.{}", quote(&c.name)), c),
                            ", "
                        ),
                    )
                };
                (
                    format!(
                        "WITH {stage_all} INSERT INTO {t} AS t ({names}) SELECT {values} FROM s \
                         ON CONFLICT ({key_names}) {action}"
                    ),
                    false,
                )
            }
            WriteMode::Insert => (
                format!(
                    "WITH {stage_all}, ins AS (INSERT INTO {t} AS t ({names}) SELECT {values} \
                     FROM s ON CONFLICT ({key_names}) DO NOTHING RETURNING {}) \
                     SELECT s.{row} FROM s WHERE NOT EXISTS (SELECT 1 FROM ins WHERE {})",
                    join(&keys, &|c| format!("t.{}", quote(&c.name)), ", "),
                    key_match("ins"),
                ),
                true,
            ),
            WriteMode::Update => {
                let missing = format!(
                    "SELECT s.{row} FROM s WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE {})",
                    key_match("t")
                );
                if non_key.is_empty() {
                    (format!("WITH {stage_all} {missing}"), true)
                } else {
                    (
                        format!(
                            "WITH {stage_all}, upd AS (UPDATE {t} AS t SET {} FROM s WHERE {} \
                             AND ({}) IS DISTINCT FROM ({}) RETURNING 1) {missing}",
                            join(
                                &non_key,
                                &|c| format!("{} = {}", quote(&c.name), value("s", c)),
                                ", "
                            ),
                            key_match("t"),
                            join(
                                &non_key,
                                &|c| comparable(format!("t.{}", quote(&c.name)), c),
                                ", "
                            ),
                            join(&non_key, &|c| comparable(value("s", c), c), ", "),
                        ),
                        true,
                    )
                }
            }
        };
        let delete = format!(
            "WITH {}, del AS (DELETE FROM {t} AS t WHERE ({}) IN (SELECT {} FROM s) \
             RETURNING {}) SELECT s.{row} FROM s WHERE NOT EXISTS (SELECT 1 FROM del WHERE {})",
            staged(&keys),
            join(&keys, &|c| format!("t.{}", quote(&c.name)), ", "),
            join(&keys, &|c| value("s", c), ", "),
            join(&keys, &|c| format!("t.{}", quote(&c.name)), ", "),
            key_match("del"),
        );
        Self {
            apply,
            apply_returns_skipped,
            delete,
        }
    }
}

/// Counters of what a writer did; read by tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Statements that committed.
    pub statements: u64,
    /// Statements re-run after a serialization failure (SQLSTATE 40001).
    pub serialization_retries: u64,
}

/// Which statement a set of rows goes through.
#[derive(Clone, Copy)]
enum Job {
    Write,
    Delete,
}

/// Writes one run's batches over one dedicated connection.
pub struct CockroachWriter {
    conn: Option<PgConnection>,
    table: TargetTable,
    statements: Statements,
    batch_rows: usize,
    max_retries: u32,
    /// What this writer did so far.
    pub stats: WriteStats,
}

/// A batch's columns as text, one vector per statement parameter.
struct Encoded {
    columns: Vec<Vec<Option<String>>>,
    /// Approximate bytes of each row's values.
    row_bytes: Vec<usize>,
}

impl CockroachWriter {
    fn encode(
        &self,
        batch: &RecordBatch,
        columns: &[&TargetColumn],
    ) -> Result<Encoded, ConnectorError> {
        let schema = batch.schema();
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let index = schema.index_of(&c.name).map_err(|_| {
                ConnectorError::schema(&c.name, format!("the batch has no column `{}`", c.name))
            })?;
            out.push(text::encode(
                &c.name,
                &c.canonical,
                batch.column(index),
                schema.field(index),
            )?);
        }
        let row_bytes = (0..batch.num_rows())
            .map(|r| {
                out.iter()
                    .map(|col| col[r].as_ref().map_or(1, String::len))
                    .sum()
            })
            .collect();
        Ok(Encoded {
            columns: out,
            row_bytes,
        })
    }

    /// Row ranges of at most `batch_rows` rows and [`MAX_STATEMENT_BYTES`] bytes.
    fn chunks(&self, encoded: &Encoded) -> Vec<Range<usize>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (row, &size) in encoded.row_bytes.iter().enumerate() {
            if row > start && (row - start >= self.batch_rows || bytes + size > MAX_STATEMENT_BYTES)
            {
                chunks.push(start..row);
                start = row;
                bytes = 0;
            }
            bytes += size;
        }
        if start < encoded.row_bytes.len() {
            chunks.push(start..encoded.row_bytes.len());
        }
        chunks
    }

    /// One statement over `rows`, as one implicit transaction. Returns the skipped rows.
    async fn execute(
        &mut self,
        job: Job,
        encoded: &Encoded,
        rows: &[usize],
    ) -> Result<Vec<usize>, sqlx::Error> {
        let (sql, returns) = match job {
            Job::Write => (
                &self.statements.apply,
                self.statements.apply_returns_skipped,
            ),
            Job::Delete => (&self.statements.delete, true),
        };
        let Some(conn) = self.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        let numbers: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let mut query = sqlx::query_scalar::<_, i32>(sql).bind(numbers);
        for column in &encoded.columns {
            let values: Vec<Option<String>> = rows.iter().map(|&r| column[r].clone()).collect();
            query = query.bind(values);
        }
        let skipped = if returns {
            query
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|r| r as usize)
                .collect()
        } else {
            query.fetch_optional(&mut *conn).await?;
            Vec::new()
        };
        self.stats.statements += 1;
        Ok(skipped)
    }

    /// [`Self::execute`], retried with exponential backoff and jitter while CockroachDB
    /// reports a serialization failure, as its client protocol requires.
    async fn execute_with_retry(
        &mut self,
        job: Job,
        encoded: &Encoded,
        rows: &[usize],
    ) -> Result<Vec<usize>, sqlx::Error> {
        let mut attempt = 0u32;
        loop {
            match self.execute(job, encoded, rows).await {
                Err(e)
                    if sqlstate(&e) == Some(SERIALIZATION_FAILURE)
                        && attempt < self.max_retries =>
                {
                    attempt += 1;
                    self.stats.serialization_retries += 1;
                    let delay = backoff(attempt);
                    tracing::info!(
                        attempt,
                        rows = rows.len(),
                        delay_ms = delay.as_millis() as u64,
                        "serialization failure; retrying the statement"
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Applies `rows` chunk by chunk, splitting a chunk on row-level errors until every
    /// failing row is isolated.
    async fn apply(
        &mut self,
        job: Job,
        encoded: &Encoded,
        outcome: &mut WriteOutcome,
    ) -> Result<(), ConnectorError> {
        let rows: Vec<usize> = (0..encoded.row_bytes.len()).collect();
        let mut bisection = Bisection::from_groups(self.chunks(encoded));
        while let Some(group) = bisection.next_group() {
            let result = self.execute_with_retry(job, encoded, &rows[group]).await;
            bisection
                .record(result.map_err(|e| AttemptError::refused_if(e, is_row_level)))
                .map_err(|e| classify(e).context(format!("writing to {}", self.table.display)))?;
        }
        bisection.finish().settle(&rows, outcome, classify);
        Ok(())
    }
}

/// The delay before retry `attempt` (1-based): 50 ms doubling up to 5 s, minus up to half
/// at random so concurrent writers do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    full.mul_f64(1.0 - rand::random::<f64>() / 2.0)
}

#[async_trait]
impl DestinationWriter for CockroachWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let columns: Vec<TargetColumn> = self.table.columns.clone();
        let refs: Vec<&TargetColumn> = columns.iter().collect();
        let encoded = self.encode(batch, &refs)?;
        let mut outcome = WriteOutcome::default();
        self.apply(Job::Write, &encoded, &mut outcome).await?;
        tracing::debug!(
            rows = batch.num_rows(),
            failed = outcome.failed.len(),
            skipped = outcome.skipped.len(),
            "batch written"
        );
        Ok(outcome)
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let table = self.table.clone();
        let encoded = self.encode(keys, &table.key_columns())?;
        let mut outcome = WriteOutcome::default();
        self.apply(Job::Delete, &encoded, &mut outcome).await?;
        tracing::debug!(
            keys = keys.num_rows(),
            failed = outcome.failed.len(),
            missing = outcome.skipped.len(),
            "keys deleted"
        );
        Ok(outcome)
    }

    async fn close(mut self: Box<Self>) -> Result<(), ConnectorError> {
        tracing::info!(
            table = %self.table.display,
            statements = self.stats.statements,
            serialization_retries = self.stats.serialization_retries,
            "destination writer closed"
        );
        if let Some(conn) = self.conn.take() {
            conn.close()
                .await
                .map_err(|e| classify(e).context("closing the connection"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        for attempt in 1..=20 {
            let d = backoff(attempt);
            let full = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            assert!(d <= full && d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }
}
