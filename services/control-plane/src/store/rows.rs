//! Reading stored rows back into model records, and the conversions the `Any` driver needs
//! (it knows only bool, integers, floats, text and bytes).

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Result, StoreError};
use crate::model::{
    ConnectionRecord, RejectedRow, RunError, RunRecord, RunState, RunTrigger, SnapshotPointer,
    SyncRecord,
};
use backflow_engine::RejectedOperation;

/// Columns of `connections`, in [`connection_from_row`]'s order.
pub(super) const CONNECTION_COLUMNS: &str = "id, kind, config, created_at, updated_at";

/// Columns of `syncs` that make a [`SyncRecord`].
pub(super) const SYNC_COLUMNS: &str =
    "id, definition, paused, created_at, updated_at, last_run_id, snapshot_path, snapshot_rows";

/// Columns of `runs` that make a [`RunRecord`].
pub(super) const RUN_COLUMNS: &str = "id, sync_id, state, trigger_kind, attempt, max_attempts, \
     full_resync, counts, timings, error, cancel_requested, rejected_count, request_id, \
     traceparent, created_at, started_at, ended_at, not_before, lease_id, lease_deadline, \
     worker_id";

/// Reads a boolean column: PostgreSQL returns BOOLEAN, SQLite an INTEGER 0/1.
pub(super) fn get_bool(row: &AnyRow, column: &str) -> Result<bool> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

fn get_u32(row: &AnyRow, column: &str) -> Result<u32> {
    let v: i64 = row.try_get(column)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} = {v} is out of range")))
}

fn get_u64(row: &AnyRow, column: &str) -> Result<u64> {
    let v: i64 = row.try_get(column)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} = {v} is negative")))
}

/// A `u64` count as a BIGINT; counts beyond `i64::MAX` cannot happen, so they saturate.
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Serialises a JSON column.
pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot serialise a JSON column: {e}")))
}

fn from_json<T: DeserializeOwned>(text: &str, column: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("column {column} does not parse: {e}")))
}

fn get_json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    from_json(&text, column)
}

fn get_json_opt<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| from_json(&t, column)).transpose()
}

/// Reads a row selected with [`CONNECTION_COLUMNS`].
pub(super) fn connection_from_row(row: &AnyRow) -> Result<ConnectionRecord> {
    Ok(ConnectionRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        config: get_json(row, "config")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Reads a row selected with [`SYNC_COLUMNS`].
pub(super) fn sync_from_row(row: &AnyRow) -> Result<SyncRecord> {
    let snapshot_path: Option<String> = row.try_get("snapshot_path")?;
    let snapshot = match snapshot_path {
        Some(path) => {
            let rows: Option<i64> = row.try_get("snapshot_rows")?;
            Some(SnapshotPointer {
                path,
                rows: u64::try_from(rows.unwrap_or(0)).map_err(|_| {
                    StoreError::Corrupt(format!("snapshot_rows = {rows:?} is negative"))
                })?,
            })
        }
        None => None,
    };
    Ok(SyncRecord {
        id: row.try_get("id")?,
        definition: get_json(row, "definition")?,
        paused: get_bool(row, "paused")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_run_id: row.try_get("last_run_id")?,
        snapshot,
    })
}

/// Reads a row selected with [`RUN_COLUMNS`].
pub(super) fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let state: String = row.try_get("state")?;
    let trigger: String = row.try_get("trigger_kind")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        sync_id: row.try_get("sync_id")?,
        state: RunState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run state `{state}`")))?,
        trigger: RunTrigger::parse(&trigger)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run trigger `{trigger}`")))?,
        attempt: get_u32(row, "attempt")?,
        max_attempts: get_u32(row, "max_attempts")?,
        full_resync: get_bool(row, "full_resync")?,
        counts: get_json(row, "counts")?,
        timings: get_json_opt(row, "timings")?,
        error: get_json_opt::<RunError>(row, "error")?,
        cancel_requested: get_bool(row, "cancel_requested")?,
        rejected_count: get_u64(row, "rejected_count")?,
        request_id: row.try_get("request_id")?,
        traceparent: row.try_get("traceparent")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        not_before: row.try_get("not_before")?,
        lease_id: row.try_get("lease_id")?,
        lease_deadline: row.try_get("lease_deadline")?,
        worker_id: row.try_get("worker_id")?,
    })
}

/// The stored form of a rejected row's operation.
pub(super) fn operation_str(op: RejectedOperation) -> &'static str {
    match op {
        RejectedOperation::Write => "write",
        RejectedOperation::Delete => "delete",
    }
}

/// Reads a row of `rejected_rows` (`key, column_name, message, operation`).
pub(super) fn rejected_from_row(row: &AnyRow) -> Result<RejectedRow> {
    let operation: String = row.try_get("operation")?;
    Ok(RejectedRow {
        key: row.try_get("key")?,
        column: row.try_get("column_name")?,
        message: row.try_get("message")?,
        operation: match operation.as_str() {
            "write" => RejectedOperation::Write,
            "delete" => RejectedOperation::Delete,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown rejected-row operation `{other}`"
                )))
            }
        },
    })
}

/// Loads a connection inside a transaction (or from a pooled connection).
pub(super) async fn fetch_connection(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ConnectionRecord>> {
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(connection_from_row)
        .transpose()
}

/// Loads a sync inside a transaction (or from a pooled connection).
pub(super) async fn fetch_sync(conn: &mut AnyConnection, id: &str) -> Result<Option<SyncRecord>> {
    let sql = format!("SELECT {SYNC_COLUMNS} FROM syncs WHERE id = $1");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(sync_from_row)
        .transpose()
}

/// Loads a run inside a transaction (or from a pooled connection), with an optional row-lock
/// clause.
pub(super) async fn fetch_run(
    conn: &mut AnyConnection,
    id: &str,
    lock: &str,
) -> Result<Option<RunRecord>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1{lock}");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
}

/// Fails with `NotFound { kind }` unless row `id` of `table` exists, and holds it with `lock`
/// (a dialect's `FOR UPDATE` or `FOR SHARE`) until the transaction ends.
pub(super) async fn lock_row(
    conn: &mut AnyConnection,
    table: &'static str,
    kind: &'static str,
    id: &str,
    lock: &str,
) -> Result<()> {
    let sql = format!("SELECT id FROM {table} WHERE id = $1{lock}");
    match sqlx::query(&sql).bind(id).fetch_optional(conn).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found(kind, id)),
    }
}
