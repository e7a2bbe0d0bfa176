//! Scheduler leadership: among control-plane replicas sharing one PostgreSQL store, only the
//! holder of a session advisory lock runs the scheduler. The lock belongs to one dedicated
//! connection, so it is released by the server as soon as that session ends (crash,
//! network loss), with no lease of our own to expire.

use sqlx::{AnyConnection, Connection};

use super::{Dialect, Result, Store};

/// The advisory lock key of the scheduler ("bf_sched" in ASCII), fixed so every replica of
/// every version contends for the same lock.
const SCHEDULER_LOCK_KEY: i64 = 0x6266_5f73_6368_6564;

/// Proof of scheduler leadership. Dropping it ends the session that holds the lock (so the
/// lock is released); [`SchedulerLock::release`] releases it explicitly first.
pub struct SchedulerLock {
    holder: Holder,
}

/// What holds the lock.
enum Holder {
    /// SQLite: one process owns the store and is always the leader.
    Process,
    /// PostgreSQL: the session holding the advisory lock.
    Session(AnyConnection),
    /// The session was lost, and the lock with it.
    Lost,
}

impl std::fmt::Debug for SchedulerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let holder = match self.holder {
            Holder::Process => "process",
            Holder::Session(_) => "session",
            Holder::Lost => "lost",
        };
        f.debug_struct("SchedulerLock")
            .field("holder", &holder)
            .finish()
    }
}

impl Store {
    /// Tries to become the scheduler: `Some` when this replica now holds the lock, `None`
    /// when another does. Never waits. On SQLite there is a single process, so it always
    /// succeeds.
    pub async fn try_acquire_scheduler_lock(&self) -> Result<Option<SchedulerLock>> {
        match self.dialect {
            Dialect::Sqlite => Ok(Some(SchedulerLock {
                holder: Holder::Process,
            })),
            Dialect::Postgres => {
                // A connection of its own, detached from the pool: returned to the pool, the
                // session (and the lock with it) would be shared with unrelated queries.
                let mut conn = self.pool.acquire().await?.detach();
                let obtained: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(SCHEDULER_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await?;
                if obtained {
                    tracing::info!("scheduler lock acquired");
                    Ok(Some(SchedulerLock {
                        holder: Holder::Session(conn),
                    }))
                } else {
                    // Best effort: the session is discarded either way.
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
        }
    }
}

impl SchedulerLock {
    /// Whether the lock is still held: the session that holds it still answers. A replica
    /// that finds it lost must stop scheduling and try to acquire it again.
    pub async fn is_held(&mut self) -> bool {
        let conn = match &mut self.holder {
            Holder::Process => return true,
            Holder::Lost => return false,
            Holder::Session(conn) => conn,
        };
        match sqlx::query("SELECT 1").execute(&mut *conn).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler lock session lost");
                self.holder = Holder::Lost;
                false
            }
        }
    }

    /// Gives up leadership now (rather than when the session ends), so another replica can
    /// take over at once, e.g. on a graceful shutdown. Cannot fail in a way the caller must
    /// handle: if the unlock does not get through, ending the session releases the lock.
    pub async fn release(self) {
        if let Holder::Session(mut conn) = self.holder {
            let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(SCHEDULER_LOCK_KEY)
                .fetch_one(&mut conn)
                .await;
            if let Err(e) = &unlocked {
                tracing::warn!(error = %e, "scheduler lock unlock failed; closing its session");
            }
            // Closing (or, failing that, dropping) the session releases the lock regardless.
            let _ = conn.close().await;
            tracing::info!("scheduler lock released");
        }
    }
}
