//! Syncs: definitions, the paused flag, the committed snapshot pointer and the scheduler's next
//! due time.

use sqlx::{AnyConnection, Row};

use super::rows::{
    fetch_connection, fetch_sync, lock_row, sync_from_row, to_i64, to_json, SYNC_COLUMNS,
};
use super::{Dialect, Result, Store, StoreError};
use crate::model::{ConnectionRecord, Millis, Schedule, SyncDefinition, SyncRecord};

const KIND: &str = "sync";

/// Decides, inside the transaction that writes a sync, whether the sync may write its
/// destination object, given the destination connection and every other sync writing
/// through that connection. `Err` carries the refusal, which the store returns as
/// [`StoreError::FailedPrecondition`].
pub type TargetCheck<'a> =
    dyn Fn(&ConnectionRecord, &[SyncRecord]) -> std::result::Result<(), String> + Send + Sync + 'a;

/// Fails with `NotFound { kind: "connection" }` unless both connections of `definition`
/// exist; on PostgreSQL the rows stay share-locked until commit so they cannot be deleted
/// under the sync being written. With `exclusive`, the destination connection is locked for
/// update instead, so that syncs written through one destination connection (on any replica)
/// are written one at a time and each sees the others' targets. Rows are locked in id order,
/// so two such writes never wait on each other in a cycle.
async fn check_connections(
    conn: &mut AnyConnection,
    dialect: Dialect,
    definition: &SyncDefinition,
    exclusive: bool,
) -> Result<()> {
    let mut ids = vec![
        definition.source_connection.as_str(),
        definition.destination_connection.as_str(),
    ];
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let lock = if exclusive && id == definition.destination_connection {
            dialect.for_update()
        } else {
            dialect.for_share()
        };
        lock_row(conn, "connections", "connection", id, lock).await?;
    }
    Ok(())
}

/// Runs `check` on the destination connection of `definition` and the other syncs writing
/// through it (every sync but `id`), with the connection rows locked by the caller.
async fn check_target(
    conn: &mut AnyConnection,
    id: &str,
    definition: &SyncDefinition,
    check: &TargetCheck<'_>,
) -> Result<()> {
    let destination = fetch_connection(conn, &definition.destination_connection)
        .await?
        .ok_or_else(|| StoreError::not_found("connection", &definition.destination_connection))?;
    let sql = format!(
        "SELECT {SYNC_COLUMNS} FROM syncs WHERE destination_connection = $1 AND id <> $2 \
         ORDER BY id"
    );
    let others = sqlx::query(&sql)
        .bind(&definition.destination_connection)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(sync_from_row)
        .collect::<Result<Vec<_>>>()?;
    check(&destination, &others).map_err(StoreError::FailedPrecondition)
}

impl Store {
    /// Stores a new sync; its id must be free and both of its connections must exist.
    pub async fn create_sync(&self, sync: &SyncRecord) -> Result<()> {
        self.create_sync_inner(sync, None).await
    }

    /// [`Store::create_sync`], refused with `FailedPrecondition` when `check` refuses the
    /// sync's target. The check runs in the writing transaction, with every other sync write
    /// through the same destination connection waiting, so two concurrent writes cannot both
    /// pass it.
    pub async fn create_sync_checked(
        &self,
        sync: &SyncRecord,
        check: &TargetCheck<'_>,
    ) -> Result<()> {
        self.create_sync_inner(sync, Some(check)).await
    }

    async fn create_sync_inner(
        &self,
        sync: &SyncRecord,
        check: Option<&TargetCheck<'_>>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        check_connections(&mut tx, self.dialect, &sync.definition, check.is_some()).await?;
        if let Some(check) = check {
            check_target(&mut tx, &sync.id, &sync.definition, check).await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO syncs (id, definition, source_connection, destination_connection, \
             paused, created_at, updated_at, last_run_id, snapshot_path, snapshot_rows) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&sync.id)
        .bind(to_json(&sync.definition)?)
        .bind(&sync.definition.source_connection)
        .bind(&sync.definition.destination_connection)
        .bind(sync.paused)
        .bind(sync.created_at)
        .bind(sync.updated_at)
        .bind(&sync.last_run_id)
        .bind(sync.snapshot.as_ref().map(|s| s.path.clone()))
        .bind(sync.snapshot.as_ref().map(|s| to_i64(s.rows)))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: KIND,
                id: sync.id.clone(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// One sync.
    pub async fn get_sync(&self, id: &str) -> Result<SyncRecord> {
        let mut conn = self.pool.acquire().await?;
        fetch_sync(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, id))
    }

    /// A page of syncs ordered by id, starting after `after` (the last id of the previous
    /// page).
    pub async fn list_syncs(&self, after: Option<&str>, limit: u32) -> Result<Vec<SyncRecord>> {
        let rows = match after {
            Some(after) => {
                let sql =
                    format!("SELECT {SYNC_COLUMNS} FROM syncs WHERE id > $1 ORDER BY id LIMIT $2");
                sqlx::query(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("SELECT {SYNC_COLUMNS} FROM syncs ORDER BY id LIMIT $1");
                sqlx::query(&sql)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(sync_from_row).collect()
    }

    /// Replaces a sync's definition. The paused flag, the last run and the next schedule are
    /// kept; the snapshot pointer is kept unless the rows now go somewhere else (another
    /// object, connection, key or column mapping), in which case the next run sends every row.
    pub async fn update_sync(
        &self,
        id: &str,
        definition: &SyncDefinition,
        now: Millis,
    ) -> Result<SyncRecord> {
        self.update_sync_inner(id, definition, now, None).await
    }

    /// [`Store::update_sync`], refused with `FailedPrecondition` when `check` refuses the new
    /// definition's target; see [`Store::create_sync_checked`].
    pub async fn update_sync_checked(
        &self,
        id: &str,
        definition: &SyncDefinition,
        now: Millis,
        check: &TargetCheck<'_>,
    ) -> Result<SyncRecord> {
        self.update_sync_inner(id, definition, now, Some(check))
            .await
    }

    async fn update_sync_inner(
        &self,
        id: &str,
        definition: &SyncDefinition,
        now: Millis,
        check: Option<&TargetCheck<'_>>,
    ) -> Result<SyncRecord> {
        let mut tx = self.begin_write().await?;
        check_connections(&mut tx, self.dialect, definition, check.is_some()).await?;
        let current = fetch_sync(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, id))?;
        if let Some(check) = check {
            check_target(&mut tx, id, definition, check).await?;
        }
        // The snapshot says what the destination object holds, column by column. Pointed at
        // another object, connection, key or column naming, it would make the next run skip
        // rows the new target has never seen; without it the next run sends everything.
        let target_moved = current.definition.destination_connection
            != definition.destination_connection
            || current.definition.object != definition.object
            || current.definition.primary_key != definition.primary_key
            || current.definition.mappings != definition.mappings;
        let reset = if target_moved {
            ", snapshot_path = NULL, snapshot_rows = NULL"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE syncs SET definition = $1, source_connection = $2, \
             destination_connection = $3, updated_at = $4{reset} WHERE id = $5"
        );
        sqlx::query(&sql)
            .bind(to_json(definition)?)
            .bind(&definition.source_connection)
            .bind(&definition.destination_connection)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let stored = fetch_sync(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, id))?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Pauses or resumes a sync: a paused sync is not scheduled and refuses triggers. Runs
    /// already queued or running are left alone.
    pub async fn set_paused(&self, id: &str, paused: bool, now: Millis) -> Result<SyncRecord> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query("UPDATE syncs SET paused = $1, updated_at = $2 WHERE id = $3")
            .bind(paused)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::not_found(KIND, id));
        }
        let stored = fetch_sync(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, id))?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Deletes a sync with its runs and their rejected rows; refused while a run is queued or
    /// running (cancel it first), so no worker is left executing a sync that no longer exists.
    pub async fn delete_sync(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The row lock waits for an enqueue in flight (it holds the row FOR KEY SHARE through
        // its foreign key), so the active-run check below sees the run it inserts.
        lock_row(&mut tx, "syncs", KIND, id, self.dialect.for_update()).await?;
        let active = sqlx::query(
            "SELECT id, state FROM runs WHERE sync_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(run) = active {
            let run_id: String = run.try_get("id")?;
            let state: String = run.try_get("state")?;
            return Err(StoreError::FailedPrecondition(format!(
                "sync `{id}` has a {state} run `{run_id}`; cancel it or wait for it to finish"
            )));
        }
        sqlx::query("DELETE FROM syncs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records when the scheduler should next enqueue this sync (`None`: never by itself).
    pub async fn set_next_schedule(&self, id: &str, next: Option<Millis>) -> Result<()> {
        let updated = sqlx::query("UPDATE syncs SET next_schedule_at = $1 WHERE id = $2")
            .bind(next)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::not_found(KIND, id));
        }
        Ok(())
    }

    /// When the scheduler will next enqueue this sync, as last set with
    /// [`Store::set_next_schedule`]; lets the scheduler tell a sync it has never planned from
    /// one that is simply not due.
    pub async fn get_next_schedule(&self, id: &str) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT next_schedule_at FROM syncs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, id))?;
        Ok(row.try_get("next_schedule_at")?)
    }

    /// Syncs the scheduler must enqueue now: not paused, with a next schedule at or before
    /// `now`, earliest first.
    pub async fn due_schedules(&self, now: Millis) -> Result<Vec<SyncRecord>> {
        let sql = format!(
            "SELECT {SYNC_COLUMNS} FROM syncs WHERE paused = $1 AND next_schedule_at IS NOT NULL \
             AND next_schedule_at <= $2 ORDER BY next_schedule_at, id"
        );
        sqlx::query(&sql)
            .bind(false)
            .bind(now)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(sync_from_row)
            .collect()
    }

    /// Non-paused syncs scheduled to run after each success of `sync_id`, ordered by id.
    pub async fn syncs_after(&self, sync_id: &str) -> Result<Vec<SyncRecord>> {
        // The LIKE only narrows the scan; the definition is checked exactly below.
        let sql = format!(
            "SELECT {SYNC_COLUMNS} FROM syncs WHERE paused = $1 AND definition LIKE $2 \
             ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(false)
            .bind("%after_sync%")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let sync = sync_from_row(row)?;
            if matches!(&sync.definition.schedule, Some(Schedule::AfterSync { sync }) if sync == sync_id)
            {
                out.push(sync);
            }
        }
        Ok(out)
    }
}
