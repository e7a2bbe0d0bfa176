//! CockroachDB destination for Backflow (`type: cockroachdb`).
//!
//! CockroachDB speaks PostgreSQL's wire protocol, so this crate shares the PostgreSQL
//! connector's connection config, secret handling, error classification and table checks
//! (`backflow_postgres::shared`), and replaces only the statements that move rows, with
//! CockroachDB's dialect in mind:
//!
//! - no temporary tables and no `COPY`: each statement carries its rows as one `text[]`
//!   parameter per column, expanded with `unnest` and cast to the column types;
//! - `INSERT … ON CONFLICT (pk) DO UPDATE … WHERE (…) IS DISTINCT FROM (…)` for `upsert`
//!   (unchanged rows are not rewritten), `… DO NOTHING` for `insert`, `UPDATE … FROM` for
//!   `update`, `DELETE … WHERE (pk) IN (…)` for `mirror` removals;
//! - at most `batch_rows` rows (default 500) and about 4 MiB of values per statement, each
//!   statement its own implicit transaction, well under CockroachDB's transaction limits;
//! - a statement refused with SQLSTATE 40001 (serialization failure, "restart transaction")
//!   is retried with exponential backoff and jitter (50 ms doubling to 5 s), up to
//!   `max_retries` times (default 8), as CockroachDB requires of clients; then the run fails
//!   with a retryable error;
//! - rows the database refuses (a constraint, a value) are isolated by splitting the
//!   statement's rows in halves and reported as rejected rows with the database's message.
//!
//! # Config
//!
//! ```yaml
//! type: cockroachdb
//! config:
//!   url: postgresql://app@crdb.internal:26257/app?sslmode=verify-full
//!   password: ${env:CRDB_PASSWORD}   # optional; overrides the URL's password
//!   connect_timeout_secs: 10         # optional; default 30
//!   batch_rows: 500                  # optional; rows per statement, 1..=10000
//!   max_retries: 8                   # optional; retries of a 40001 failure, 0..=100
//! ```
//!
//! Table and column names are held to PostgreSQL's 63-byte identifier limit
//! ([`check_destination_names`]), when a sync is defined and by `check` before writing.
//!
//! The type mapping is the PostgreSQL connector's (`int8`, `numeric(p,s)`, `float8`, `bool`,
//! `text`, `bytea`, `date`, `time`, `timestamp`, `timestamptz`, `jsonb`, `uuid`), all of
//! which CockroachDB accepts under those names.
//!
//! # What was tested against what
//!
//! This connector has **not been run against a live CockroachDB**: no CockroachDB server can
//! be installed where it was built. Its contract suite runs against PostgreSQL 15 with the
//! CockroachDB statement set above, and the 40001 retry path is tested by injecting real
//! serialization failures from a PostgreSQL trigger. Differences in CockroachDB's catalog
//! (`pg_catalog`, privilege functions) that `check` relies on are therefore untested.

mod config;
mod connector;
mod destination;
mod text;

use backflow_connector_core::{ConnectorError, NameError};

pub use connector::CockroachConnector;
pub use destination::{CockroachDestination, CockroachWriter, WriteStats};

/// Checks a sync's destination names without I/O: `table` or `schema.table` and every
/// destination column, each at most 63 bytes, not empty, without NUL.
///
/// CockroachDB itself keeps longer names, but this connector shares the PostgreSQL
/// connector's table handling and is tested against PostgreSQL, which truncates at 63 bytes;
/// holding names to PostgreSQL's limit keeps one definition meaning one table on both.
pub fn check_destination_names(object: &str, columns: &[&str]) -> Result<(), NameError> {
    backflow_postgres::check_destination_names(object, columns)
}

/// The table `object` names, spelled one way (`t` and `public.t` alike: `public` is
/// CockroachDB's default schema too), so two syncs writing one table can be recognised.
pub fn object_key(object: &str) -> Option<String> {
    backflow_postgres::object_key(object)
}

/// Checks a destination connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_destination(
    config: &serde_json::Value,
) -> Result<CockroachDestination, ConnectorError> {
    config::CockroachConfig::validate(config).map(CockroachDestination::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::NamePart;

    #[test]
    fn names_are_held_to_63_bytes() {
        assert!(check_destination_names(&"t".repeat(63), &["id"]).is_ok());
        let e = check_destination_names(&"t".repeat(64), &["id"]).unwrap_err();
        assert_eq!(e.part, NamePart::Object);
        let column = "c".repeat(64);
        let e = check_destination_names("t", &[&column]).unwrap_err();
        assert_eq!(e.part, NamePart::Column(column));
        assert_eq!(object_key("t"), object_key("public.t"));
    }
}
