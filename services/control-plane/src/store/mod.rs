//! The control plane's durable state: connections, syncs, runs and rejected rows, in SQLite
//! (embedded, one process) or PostgreSQL (shared by several control-plane replicas).
//!
//! One implementation serves both databases through sqlx's `Any` driver; the few statements
//! that differ (row locks with `SKIP LOCKED`, the scheduler's advisory lock) are chosen by
//! [`Dialect`]. Every timestamp comes from the caller's `now` (the control plane's clock), never
//! from the database, so both backends behave the same and tests control time.
//!
//! The run queue lives here too: enqueueing coalesces with the active run (the database's
//! partial unique index guarantees one active run per sync), leasing hands the oldest ready run
//! to one worker, and every worker report is fenced by the lease id and attempt.

mod connections;
mod error;
mod lock;
mod migrations;
mod queue;
mod rows;
mod syncs;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};

pub use error::StoreError;
pub use lock::SchedulerLock;
pub use syncs::TargetCheck;

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database behind a [`Store`]: picks the statements that differ between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Embedded, single process: one pooled connection serialises every writer.
    Sqlite,
    /// Shared by replicas: row locks with `SKIP LOCKED` and an advisory lock coordinate them.
    Postgres,
}

impl Dialect {
    /// Recognises the dialect of a store URL, so a bad URL fails before any I/O.
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::FailedPrecondition(format!(
                "unsupported store URL scheme `{scheme}`: use `sqlite:PATH`, `sqlite::memory:` \
                 or `postgres://…`"
            )))
        }
    }

    /// The row-lock clause for a `SELECT` that is followed by an update in the same
    /// transaction. SQLite needs none: its single connection and `BEGIN IMMEDIATE` serialise
    /// writers.
    fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Like [`Self::for_update`], but rows another transaction holds are skipped rather than
    /// waited for, so replicas leasing at once each take a different run.
    fn for_update_skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// A lock that keeps a referenced row (a connection) from being deleted until commit.
    fn for_share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
        }
    }
}

/// Handle on the control plane's database. Cheap to clone: clones share one pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

/// Connections in a PostgreSQL store's pool: enough for the API, the queue and the scheduler
/// of one replica without starving the database shared by several replicas.
const POSTGRES_POOL_SIZE: u32 = 10;

static INSTALL_DRIVERS: Once = Once::new();

impl Store {
    /// Opens a pool on `url` without touching the schema, so a deployment can migrate from one
    /// process (`backflow migrate`) while the others only connect.
    ///
    /// `sqlite:PATH` / `sqlite://PATH` create the file when missing; `sqlite::memory:` is a
    /// private in-memory database that lives as long as the store; `postgres://…` and
    /// `postgresql://…` connect to PostgreSQL.
    pub async fn connect(url: &str) -> Result<Store> {
        INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
        let dialect = Dialect::from_url(url)?;
        let pool = match dialect {
            Dialect::Sqlite => {
                let options = AnyConnectOptions::from_str(&sqlite_url(url))?;
                AnyPoolOptions::new()
                    // One connection serialises writers (no SQLITE_BUSY within the process) and
                    // keeps an in-memory database alive: it must never be closed while idle.
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(Duration::from_secs(60))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA busy_timeout = 5000",
                                "PRAGMA foreign_keys = ON",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Dialect::Postgres => {
                let options = AnyConnectOptions::from_str(url)?;
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?
            }
        };
        tracing::debug!(dialect = ?dialect, "store connected");
        Ok(Store { pool, dialect })
    }

    /// Connects and brings the schema up to date: what a single-process deployment and the
    /// tests want.
    pub async fn connect_and_migrate(url: &str) -> Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations embedded in the binary that the database has not seen yet. On
    /// PostgreSQL sqlx holds an advisory lock meanwhile, so replicas starting together migrate
    /// once.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = migrations::migrator(self.dialect).await?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The database behind this store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes every pooled connection and waits for them, so a shutdown leaves no session
    /// (and no SQLite WAL) behind.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite `BEGIN IMMEDIATE` takes the write lock
    /// up front, so a transaction never fails half-way upgrading from a read lock.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }
}

/// Adds `mode=rwc` to a file URL that does not choose a mode, so a fresh deployment creates
/// its database file.
fn sqlite_url(url: &str) -> String {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path == ":memory:" || path.is_empty() || url.contains("mode=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(sqlite_url("sqlite:a.db"), "sqlite:a.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite:///tmp/a.db"),
            "sqlite:///tmp/a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite:a.db?cache=shared"),
            "sqlite:a.db?cache=shared&mode=rwc"
        );
        assert_eq!(sqlite_url("sqlite:a.db?mode=ro"), "sqlite:a.db?mode=ro");
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn dialect_follows_the_scheme() {
        assert_eq!(
            Dialect::from_url("sqlite::memory:").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Dialect::from_url("postgresql://u@h/db").unwrap(),
            Dialect::Postgres
        );
        let err = Dialect::from_url("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
