//! The `sqlite` connector: Backflow's embedded default destination, and a source, through
//! sqlx's SQLite driver.
//!
//! With it, `backflow standalone` syncs into a local file with nothing else installed, and tests
//! exercise the whole write path against a real database. Config:
//!
//! ```yaml
//! type: sqlite
//! config:
//!   path: ./app.db             # required; the database file
//!   create_if_missing: true    # default; a destination may create the file (a source never does)
//!   busy_timeout_ms: 5000      # default; how long to wait on another writer's lock
//! ```
//!
//! As a destination, the target is a table (`table` or `main.table`). Each batch is one
//! transaction of per-row statements: upsert is `INSERT … ON CONFLICT (pk) DO UPDATE … WHERE`
//! some column `IS NOT` its new value (unchanged rows are not rewritten, so triggers and
//! `changes()` see only real changes); insert is `ON CONFLICT (pk) DO NOTHING` (existing keys
//! are reported skipped); update is `UPDATE … WHERE pk` (missing keys are reported skipped). A
//! row refused by a constraint (NOT NULL, CHECK, UNIQUE, FOREIGN KEY with `foreign_keys` on) is
//! a row failure carrying SQLite's message; the batch's other rows commit. Busy, locked and I/O
//! failures fail the batch with a retryable connectivity error.
//!
//! # Type mapping
//!
//! | canonical type | column type | stored value |
//! |---|---|---|
//! | `Int16`, `Int32`, `Int64` | `INTEGER` | integer |
//! | `Boolean` | `INTEGER` | `0` / `1` |
//! | `Float32`, `Float64` | `REAL` | real; ±infinity as reals; NaN as the text `'NaN'` (SQLite stores a NaN real as NULL) |
//! | `Decimal(p, s)` | `TEXT` | exact decimal string |
//! | `Text`, `Json` | `TEXT` | text |
//! | `Binary` | `BLOB` | blob |
//! | `Date` | `TEXT` | `YYYY-MM-DD` |
//! | `Time` | `TEXT` | `HH:MM:SS.ffffff` |
//! | `Timestamp` | `TEXT` | `YYYY-MM-DD HH:MM:SS.ffffff` |
//! | `TimestampTz` | `TEXT` | `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 3339, UTC) |
//! | `Uuid` | `TEXT` | hyphenated lowercase |
//!
//! Created tables declare `PRIMARY KEY (pk)` with `NOT NULL` key columns.
//!
//! SQLite has no identifier length limit; an empty table or column name, or one holding NUL,
//! is refused ([`check_destination_names`]) when a sync is defined and by `check`.

mod config;
mod connector;
mod destination;
mod encode;
mod error;
mod source;
mod table;

use backflow_connector_core::ConnectorError;

pub use config::SqliteConfig;
pub use connector::SqliteConnector;
pub use destination::SqliteDestination;
pub use source::SqliteSource;
pub use table::{check_destination_names, object_key};

/// Validates a raw `sqlite` source config without any I/O; errors name the field.
pub fn validate_source(raw: &serde_json::Value) -> Result<SqliteSource, ConnectorError> {
    SqliteConfig::parse(raw).map(SqliteSource::new)
}

/// Validates a raw `sqlite` destination config without any I/O; errors name the field.
pub fn validate_destination(raw: &serde_json::Value) -> Result<SqliteDestination, ConnectorError> {
    SqliteConfig::parse(raw).map(SqliteDestination::new)
}
