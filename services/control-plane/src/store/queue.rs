//! The run queue: enqueueing (coalesced to one active run per sync), leasing to workers,
//! fenced worker reports, cancellation, and recovery of expired leases.

use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{AnyConnection, Row};

use super::rows::{
    fetch_connection, fetch_run, fetch_sync, get_bool, operation_str, rejected_from_row,
    run_from_row, to_i64, to_json, RUN_COLUMNS,
};
use super::{Result, Store, StoreError};
use crate::model::{
    Completion, Enqueued, Lease, LeaseRef, LeaseStatus, Millis, NewRun, QueueStats, RejectedRow,
    RunError, RunFilter, RunRecord, RunState,
};
use backflow_engine::RunCounts;

const RUN: &str = "run";

/// Rejected rows per multi-row INSERT: 6 parameters each stays far below SQLite's and
/// PostgreSQL's parameter limits.
const REJECTED_BATCH: usize = 500;

/// How often an enqueue re-reads after losing an insert race before giving up.
const ENQUEUE_RACE_RETRIES: usize = 5;

/// The fencing condition every worker report carries: the run is still running this attempt
/// under this lease. Parameters `$1` run id, `$2` lease id, `$3` attempt.
const LEASE_MATCHES: &str = "id = $1 AND state = 'running' AND lease_id = $2 AND attempt = $3";

/// The error recorded when a worker stopped heartbeating.
fn lease_expired_error() -> RunError {
    RunError {
        code: "lease_expired".into(),
        message: "the worker stopped heartbeating (lease expired)".into(),
        retryable: true,
    }
}

/// The error recorded when a user cancels a queued run.
fn cancelled_error() -> RunError {
    RunError {
        code: "cancelled".into(),
        message: "cancelled by a user".into(),
        retryable: false,
    }
}

/// Whether `run` is the attempt `lease` names, still running.
fn lease_matches(run: &RunRecord, lease: &LeaseRef) -> bool {
    run.state == RunState::Running
        && run.lease_id.as_deref() == Some(lease.lease_id.as_str())
        && run.attempt == lease.attempt
}

async fn run_with_request_id(
    conn: &mut AnyConnection,
    sync_id: &str,
    request_id: &str,
) -> Result<Option<RunRecord>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE sync_id = $1 AND request_id = $2");
    sqlx::query(&sql)
        .bind(sync_id)
        .bind(request_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
}

async fn active_run(conn: &mut AnyConnection, sync_id: &str) -> Result<Option<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE sync_id = $1 AND state IN ('queued', 'running')"
    );
    sqlx::query(&sql)
        .bind(sync_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
}

/// The change [`Store::fail_run`] and [`Store::requeue_expired`] make to a running run.
struct Outcome {
    state: RunState,
    not_before: Millis,
    ended_at: Option<Millis>,
}

/// Decides what becomes of a running run whose attempt ended with `error`: cancelled when a
/// user asked, queued again while attempts remain and the error may pass, failed otherwise.
fn outcome(run: &RunRecord, error: &RunError, now: Millis, backoff_ms: i64) -> Outcome {
    if run.cancel_requested {
        Outcome {
            state: RunState::Cancelled,
            not_before: run.not_before,
            ended_at: Some(now),
        }
    } else if error.retryable && run.attempt < run.max_attempts {
        Outcome {
            state: RunState::Queued,
            not_before: now.saturating_add(backoff_ms.max(0)),
            ended_at: None,
        }
    } else {
        Outcome {
            state: RunState::Failed,
            not_before: run.not_before,
            ended_at: Some(now),
        }
    }
}

/// Ends the current attempt of a running run (lease cleared) as `outcome` says. Only changes
/// the run if it is still running attempt `attempt`; returns whether it did.
async fn end_attempt(
    conn: &mut AnyConnection,
    run: &RunRecord,
    outcome: &Outcome,
    error: &RunError,
    counts: &RunCounts,
) -> Result<bool> {
    // A re-queued run has no worker; a finished one keeps the worker of its last attempt.
    let keep_worker = outcome.state != RunState::Queued;
    let changed = sqlx::query(
        "UPDATE runs SET state = $1, error = $2, counts = $3, rejected_count = $4, \
         ended_at = $5, not_before = $6, lease_id = NULL, lease_deadline = NULL, \
         worker_id = CASE WHEN $7 THEN worker_id ELSE NULL END \
         WHERE id = $8 AND state = 'running' AND attempt = $9",
    )
    .bind(outcome.state.as_str())
    .bind(to_json(error)?)
    .bind(to_json(counts)?)
    .bind(to_i64(counts.failed))
    .bind(outcome.ended_at)
    .bind(outcome.not_before)
    .bind(keep_worker)
    .bind(&run.id)
    .bind(i64::from(run.attempt))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

async fn insert_rejected(
    conn: &mut AnyConnection,
    run_id: &str,
    rows: &[RejectedRow],
) -> Result<()> {
    for (chunk_index, chunk) in rows.chunks(REJECTED_BATCH).enumerate() {
        let mut sql = String::from(
            "INSERT INTO rejected_rows (run_id, seq, key, column_name, message, operation) VALUES ",
        );
        for i in 0..chunk.len() {
            let p = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            ));
        }
        let mut query = sqlx::query(&sql);
        for (i, row) in chunk.iter().enumerate() {
            let seq = chunk_index * REJECTED_BATCH + i;
            query = query
                .bind(run_id)
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(row.key.clone())
                .bind(row.column.clone())
                .bind(row.message.clone())
                .bind(operation_str(row.operation));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

impl Store {
    /// Queues a run of a sync, unless one is already queued or running: then that run is
    /// returned with `coalesced = true`. A request id seen before for this sync returns its
    /// run (`coalesced = false`), so a client retrying a trigger never queues twice.
    ///
    /// Race-safe across replicas: the partial unique index on active runs makes a concurrent
    /// second insert a no-op, after which the winner's run is returned.
    pub async fn enqueue_run(&self, new: &NewRun, now: Millis) -> Result<Enqueued> {
        let mut tx = self.begin_write().await?;
        let sync = fetch_sync(&mut tx, &new.sync_id)
            .await?
            .ok_or_else(|| StoreError::not_found("sync", &new.sync_id))?;
        if sync.paused {
            return Err(StoreError::FailedPrecondition(format!(
                "sync `{}` is paused; resume it before triggering a run",
                sync.id
            )));
        }
        for _ in 0..ENQUEUE_RACE_RETRIES {
            if let Some(request_id) = &new.request_id {
                if let Some(run) = run_with_request_id(&mut tx, &sync.id, request_id).await? {
                    tx.commit().await?;
                    return Ok(Enqueued {
                        run,
                        coalesced: false,
                    });
                }
            }
            if let Some(run) = active_run(&mut tx, &sync.id).await? {
                tx.commit().await?;
                return Ok(Enqueued {
                    run,
                    coalesced: true,
                });
            }
            let id = uuid::Uuid::now_v7().to_string();
            // RETURNING saves reading the run back: one round trip fewer per trigger.
            let insert = format!(
                "INSERT INTO runs (id, sync_id, state, trigger_kind, attempt, max_attempts, \
                 full_resync, counts, cancel_requested, rejected_count, request_id, traceparent, \
                 created_at, not_before) \
                 VALUES ($1, $2, 'queued', $3, 0, $4, $5, $6, $7, 0, $8, $9, $10, $10) \
                 ON CONFLICT DO NOTHING RETURNING {RUN_COLUMNS}"
            );
            let inserted = sqlx::query(&insert)
                .bind(&id)
                .bind(&sync.id)
                .bind(new.trigger.as_str())
                .bind(i64::from(sync.definition.max_attempts))
                .bind(new.full_resync)
                .bind(to_json(&RunCounts::default())?)
                .bind(false)
                .bind(&new.request_id)
                .bind(&new.traceparent)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::not_found("sync", &new.sync_id)
                    } else {
                        StoreError::Database(e)
                    }
                })?;
            let Some(inserted) = inserted else {
                // A concurrent enqueue won the race; its run is committed by now (the insert
                // waited for it), so the next round returns it.
                continue;
            };
            let run = run_from_row(&inserted)?;
            sqlx::query("UPDATE syncs SET last_run_id = $1 WHERE id = $2")
                .bind(&id)
                .bind(&sync.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::debug!(run_id = %run.id, sync_id = %run.sync_id, trigger = run.trigger.as_str(), "run queued");
            return Ok(Enqueued {
                run,
                coalesced: false,
            });
        }
        Err(StoreError::FailedPrecondition(format!(
            "sync `{}` changed concurrently while queuing a run; try again",
            sync.id
        )))
    }

    /// One run.
    pub async fn get_run(&self, id: &str) -> Result<RunRecord> {
        let mut conn = self.pool.acquire().await?;
        fetch_run(&mut conn, id, "")
            .await?
            .ok_or_else(|| StoreError::not_found(RUN, id))
    }

    /// A page of runs, newest first, starting before `before` (the last id of the previous
    /// page). Run ids are UUIDv7, so id order is creation order.
    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.sync_id.is_some() {
            conditions.push(format!("sync_id = {}", next()));
        }
        if filter.state.is_some() {
            conditions.push(format!("state = {}", next()));
        }
        if before.is_some() {
            conditions.push(format!("id < {}", next()));
        }
        let limit_param = next();
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs{where_clause} ORDER BY id DESC LIMIT {limit_param}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(sync_id) = &filter.sync_id {
            query = query.bind(sync_id.clone());
        }
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        if let Some(before) = before {
            query = query.bind(before.to_string());
        }
        query
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    /// Leases the oldest queued run that is ready (`not_before <= now`) to `worker_id`: the
    /// run becomes `running` with a new attempt and a lease expiring `ttl_ms` from now.
    /// Returns it with its sync and connections, or `None` when nothing is ready.
    ///
    /// On PostgreSQL the candidate is selected `FOR UPDATE SKIP LOCKED`, so replicas leasing
    /// at once take different runs instead of waiting for (or double-leasing) the same one.
    pub async fn lease_next_run(
        &self,
        worker_id: &str,
        now: Millis,
        ttl_ms: i64,
    ) -> Result<Option<Lease>> {
        let mut tx = self.begin_write().await?;
        let select = format!(
            "SELECT id FROM runs WHERE state = 'queued' AND not_before <= $1 \
             ORDER BY id LIMIT 1{}",
            self.dialect.for_update_skip_locked()
        );
        loop {
            let Some(row) = sqlx::query(&select)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            else {
                tx.commit().await?;
                return Ok(None);
            };
            let run_id: String = row.try_get("id")?;
            let lease_id = uuid::Uuid::new_v4().to_string();
            let leased = sqlx::query(
                "UPDATE runs SET state = 'running', attempt = attempt + 1, lease_id = $1, \
                 lease_deadline = $2, started_at = $3, worker_id = $4 \
                 WHERE id = $5 AND state = 'queued'",
            )
            .bind(&lease_id)
            .bind(now.saturating_add(ttl_ms))
            .bind(now)
            .bind(worker_id)
            .bind(&run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if leased == 0 {
                // Taken or cancelled between the select and the update; try the next one.
                continue;
            }
            let run = fetch_run(&mut tx, &run_id, "")
                .await?
                .ok_or_else(|| StoreError::not_found(RUN, &run_id))?;
            let sync = fetch_sync(&mut tx, &run.sync_id)
                .await?
                .ok_or_else(|| StoreError::not_found("sync", &run.sync_id))?;
            let source = fetch_connection(&mut tx, &sync.definition.source_connection)
                .await?
                .ok_or_else(|| {
                    StoreError::not_found("connection", &sync.definition.source_connection)
                })?;
            let destination = fetch_connection(&mut tx, &sync.definition.destination_connection)
                .await?
                .ok_or_else(|| {
                    StoreError::not_found("connection", &sync.definition.destination_connection)
                })?;
            tx.commit().await?;
            tracing::debug!(run_id = %run.id, attempt = run.attempt, worker_id, "run leased");
            return Ok(Some(Lease {
                run,
                sync,
                source,
                destination,
            }));
        }
    }

    /// Extends a lease by `ttl_ms` from now if it is still the run's current one. An invalid
    /// lease (expired and re-granted, finished, unknown run) reports `valid = false` and
    /// deadline 0: the worker must abandon the attempt.
    pub async fn heartbeat(
        &self,
        lease: &LeaseRef,
        now: Millis,
        ttl_ms: i64,
    ) -> Result<LeaseStatus> {
        let deadline = now.saturating_add(ttl_ms);
        let sql = format!(
            "UPDATE runs SET lease_deadline = $4 WHERE {LEASE_MATCHES} RETURNING cancel_requested"
        );
        let extended = sqlx::query(&sql)
            .bind(&lease.run_id)
            .bind(&lease.lease_id)
            .bind(i64::from(lease.attempt))
            .bind(deadline)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = extended {
            return Ok(LeaseStatus {
                valid: true,
                cancel_requested: get_bool(&row, "cancel_requested")?,
                deadline,
            });
        }
        let cancel_requested = match sqlx::query("SELECT cancel_requested FROM runs WHERE id = $1")
            .bind(&lease.run_id)
            .fetch_optional(&self.pool)
            .await?
        {
            Some(row) => get_bool(&row, "cancel_requested")?,
            None => false,
        };
        Ok(LeaseStatus {
            valid: false,
            cancel_requested,
            deadline: 0,
        })
    }

    /// Records a running attempt's counts so far; returns whether a user asked to cancel.
    pub async fn report_progress(&self, lease: &LeaseRef, counts: &RunCounts) -> Result<bool> {
        let sql = format!(
            "UPDATE runs SET counts = $4, rejected_count = $5 WHERE {LEASE_MATCHES} \
             RETURNING cancel_requested"
        );
        let row = sqlx::query(&sql)
            .bind(&lease.run_id)
            .bind(&lease.lease_id)
            .bind(i64::from(lease.attempt))
            .bind(to_json(counts)?)
            .bind(to_i64(counts.failed))
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::stale(&lease.run_id))?;
        get_bool(&row, "cancel_requested")
    }

    /// Commits a successful attempt in one transaction: the run's final state and counts, the
    /// sync's new snapshot pointer and the rejected rows. Nothing is written unless the lease
    /// and attempt still match (fencing).
    pub async fn complete_run(
        &self,
        lease: &LeaseRef,
        completion: &Completion,
        now: Millis,
    ) -> Result<RunRecord> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE runs SET state = 'succeeded', counts = $4, timings = $5, rejected_count = $6, \
             ended_at = $7, error = NULL, lease_deadline = NULL \
             WHERE {LEASE_MATCHES} RETURNING sync_id"
        );
        let row = sqlx::query(&sql)
            .bind(&lease.run_id)
            .bind(&lease.lease_id)
            .bind(i64::from(lease.attempt))
            .bind(to_json(&completion.counts)?)
            .bind(to_json(&completion.timings)?)
            .bind(to_i64(completion.counts.failed))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            // The lease id stays on a succeeded run, so a worker that retries a completion
            // whose answer it lost (a control-plane restart) gets the committed run back
            // instead of a stale-lease error.
            let run = fetch_run(&mut tx, &lease.run_id, "").await?;
            return match run {
                Some(run)
                    if run.state == RunState::Succeeded
                        && run.lease_id.as_deref() == Some(lease.lease_id.as_str())
                        && run.attempt == lease.attempt =>
                {
                    Ok(run)
                }
                _ => Err(StoreError::stale(&lease.run_id)),
            };
        };
        let sync_id: String = row.try_get("sync_id")?;
        sqlx::query("UPDATE syncs SET snapshot_path = $1, snapshot_rows = $2 WHERE id = $3")
            .bind(&completion.snapshot.path)
            .bind(to_i64(completion.snapshot.rows))
            .bind(&sync_id)
            .execute(&mut *tx)
            .await?;
        insert_rejected(&mut tx, &lease.run_id, &completion.rejected).await?;
        let run = fetch_run(&mut tx, &lease.run_id, "")
            .await?
            .ok_or_else(|| StoreError::not_found(RUN, &lease.run_id))?;
        tx.commit().await?;
        tracing::debug!(run_id = %run.id, attempt = run.attempt, "run succeeded");
        Ok(run)
    }

    /// Ends a failed attempt: the run is cancelled if a user asked, queued again after
    /// `backoff_ms` if the error is retryable and attempts remain (the error stays visible),
    /// failed otherwise.
    pub async fn fail_run(
        &self,
        lease: &LeaseRef,
        error: &RunError,
        counts: &RunCounts,
        now: Millis,
        backoff_ms: i64,
    ) -> Result<RunRecord> {
        let mut tx = self.begin_write().await?;
        let run = fetch_run(&mut tx, &lease.run_id, self.dialect.for_update())
            .await?
            .ok_or_else(|| StoreError::stale(&lease.run_id))?;
        if !lease_matches(&run, lease) {
            return Err(StoreError::stale(&lease.run_id));
        }
        let outcome = outcome(&run, error, now, backoff_ms);
        if !end_attempt(&mut tx, &run, &outcome, error, counts).await? {
            return Err(StoreError::stale(&lease.run_id));
        }
        let run = fetch_run(&mut tx, &lease.run_id, "")
            .await?
            .ok_or_else(|| StoreError::not_found(RUN, &lease.run_id))?;
        tx.commit().await?;
        tracing::debug!(
            run_id = %run.id,
            attempt = run.attempt,
            state = run.state.as_str(),
            code = %error.code,
            "run attempt failed"
        );
        Ok(run)
    }

    /// Cancels a run: a queued run ends at once; a running one is flagged and its worker
    /// stops at its next heartbeat (then reports through [`Store::fail_run`]). A finished
    /// run cannot be cancelled.
    pub async fn cancel_run(&self, id: &str, now: Millis) -> Result<RunRecord> {
        let mut tx = self.begin_write().await?;
        let run = fetch_run(&mut tx, id, self.dialect.for_update())
            .await?
            .ok_or_else(|| StoreError::not_found(RUN, id))?;
        let changed = match run.state {
            RunState::Queued => sqlx::query(
                "UPDATE runs SET state = 'cancelled', ended_at = $1, error = $2 \
                 WHERE id = $3 AND state = 'queued'",
            )
            .bind(now)
            .bind(to_json(&cancelled_error())?)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            RunState::Running => sqlx::query(
                "UPDATE runs SET cancel_requested = $1 WHERE id = $2 AND state = 'running'",
            )
            .bind(true)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            state => {
                return Err(StoreError::FailedPrecondition(format!(
                    "run `{id}` already {}; only queued or running runs can be cancelled",
                    state.as_str()
                )))
            }
        };
        if changed == 0 {
            return Err(StoreError::FailedPrecondition(format!(
                "run `{id}` changed state while being cancelled; try again"
            )));
        }
        let run = fetch_run(&mut tx, id, "")
            .await?
            .ok_or_else(|| StoreError::not_found(RUN, id))?;
        tx.commit().await?;
        Ok(run)
    }

    /// Recovers runs whose worker stopped heartbeating (lease deadline before `now`): each is
    /// queued again (ready `backoff_ms` from now) while attempts remain, failed after the
    /// last, cancelled if a user asked. Returns the runs changed.
    pub async fn requeue_expired(&self, now: Millis, backoff_ms: i64) -> Result<Vec<RunRecord>> {
        let mut tx = self.begin_write().await?;
        let select = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' AND lease_deadline < $1 \
             ORDER BY id{}",
            self.dialect.for_update_skip_locked()
        );
        let expired: Vec<RunRecord> = sqlx::query(&select)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(run_from_row)
            .collect::<Result<_>>()?;
        let error = lease_expired_error();
        let mut changed = Vec::with_capacity(expired.len());
        for run in expired {
            let outcome = outcome(&run, &error, now, backoff_ms);
            if !end_attempt(&mut tx, &run, &outcome, &error, &run.counts).await? {
                continue;
            }
            if let Some(run) = fetch_run(&mut tx, &run.id, "").await? {
                tracing::info!(
                    run_id = %run.id,
                    attempt = run.attempt,
                    state = run.state.as_str(),
                    "lease expired"
                );
                changed.push(run);
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// A page of a run's rejected rows in the order the destination reported them, from
    /// position `offset`.
    pub async fn list_rejected_rows(
        &self,
        run_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RejectedRow>> {
        let mut conn = self.pool.acquire().await?;
        if sqlx::query("SELECT id FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found(RUN, run_id));
        }
        let rows: Vec<AnyRow> = sqlx::query(
            "SELECT key, column_name, message, operation FROM rejected_rows \
             WHERE run_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(to_i64(offset))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(rejected_from_row).collect()
    }

    /// Depth of the queue: runs ready for a worker now (runs waiting out a retry backoff are
    /// not counted, so autoscaling does not add workers that would find nothing), runs
    /// leased, and the creation time of the oldest ready run.
    pub async fn queue_stats(&self, now: Millis) -> Result<QueueStats> {
        let mut conn = self.pool.acquire().await?;
        let queued = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM runs \
             WHERE state = 'queued' AND not_before <= $1",
        )
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        let running = sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE state = 'running'")
            .fetch_one(&mut *conn)
            .await?;
        let count = |row: &AnyRow| -> Result<u64> {
            let n: i64 = row.try_get("n")?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(QueueStats {
            queued: count(&queued)?,
            running: count(&running)?,
            oldest_queued_at: queued.try_get("oldest")?,
        })
    }
}
