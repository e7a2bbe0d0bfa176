//! Amazon Redshift source for Backflow.
//!
//! Redshift speaks PostgreSQL's wire protocol with its own limits: it has no binary
//! `COPY … TO STDOUT` (the PostgreSQL source's fast path), it keeps a query's whole result on
//! the leader node unless the client reads it through a cursor, and several of its types
//! (`SUPER`, `VARBYTE`) are unknown to PostgreSQL drivers. This source therefore:
//!
//! 1. describes the query through an empty temporary table (`CREATE TEMP TABLE … AS SELECT *
//!    FROM (query) AS q LIMIT 0`, in a transaction that is rolled back) and the catalog
//!    (`pg_attribute`, `pg_type`), so `NUMERIC(p,s)` keeps its precision and scale;
//! 2. streams the query with a server-side cursor in a read-only transaction: `BEGIN READ
//!    ONLY`, `DECLARE … CURSOR FOR query`, then `FETCH FORWARD n` until a fetch comes back
//!    short, `CLOSE`, `COMMIT`;
//! 3. sends every statement over the simple query protocol (values as text), so the driver
//!    never queries the catalog about types it does not know.
//!
//! A lost connection mid-stream is a retryable connectivity error item, never an early end.
//!
//! # Config
//!
//! ```yaml
//! type: redshift
//! config:
//!   url: redshift://analyst@cluster.abc123.eu-west-1.redshift.amazonaws.com:5439/dev?sslmode=require
//!   password: ${env:REDSHIFT_PASSWORD}   # a secret reference (or in the URL)
//!   connect_timeout_secs: 10              # optional; default 30
//!   fetch_size: 10000                     # optional; rows per FETCH, default 10000
//!   auth: password                        # optional; `iam` is refused as not supported yet
//! ```
//!
//! `url` takes `redshift://`, `postgres://` or `postgresql://` (give the port: Redshift
//! listens on 5439). URL, password, timeout, secret references (`${env:NAME}`,
//! `${file:/path}`) and their redaction are the PostgreSQL connector's, as are error kinds
//! (by SQLSTATE, with the warehouse's message and code). Sessions send only the startup
//! parameters Redshift accepts (no `options`); `TimeZone` is UTC, so `TIMESTAMPTZ` values
//! arrive as UTC instants. IAM authentication (`GetClusterCredentials`) is not implemented:
//! `auth: iam` fails validation with a config error naming the field.
//!
//! # Reading: Redshift → canonical Arrow
//!
//! | Redshift | Arrow |
//! |---|---|
//! | `SMALLINT` / `INTEGER` / `BIGINT` | `Int16` / `Int32` / `Int64` |
//! | `REAL` / `DOUBLE PRECISION` | `Float32` / `Float64` |
//! | `DECIMAL(p,s)` / `NUMERIC(p,s)` | `Decimal128(p,s)` (unconstrained: `Decimal128(38,10)`) |
//! | `BOOLEAN` | `Boolean` |
//! | `CHAR(n)`, `VARCHAR(n)` (up to `VARCHAR(65535)`), `TEXT` | `Utf8` |
//! | `VARBYTE` | `Binary` |
//! | `DATE` | `Date32` |
//! | `TIME` | `Time64(µs)` |
//! | `TIMESTAMP` | `Timestamp(µs, None)` |
//! | `TIMESTAMPTZ` | `Timestamp(µs, "UTC")` |
//! | `SUPER` | JSON (`Utf8` tagged `arrow.json`), as Redshift serialises it |
//!
//! Any other type (`TIMETZ`, `GEOMETRY`, `GEOGRAPHY`, `HLLSKETCH`, intervals) is a schema error
//! naming the column and suggesting a cast (`col::varchar`). Values without an Arrow form
//! (numeric NaN, BC dates) are data errors naming the column.
//!
//! # Testing
//!
//! The tests run against PostgreSQL, issuing only statements Redshift supports; they were
//! never run against a live Redshift cluster.

mod config;
mod connector;
mod source;
mod types;

use backflow_connector_core::ConnectorError;

pub use config::{Auth, RedshiftConfig};
pub use connector::RedshiftConnector;
pub use source::RedshiftSource;

/// Checks a Redshift connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_source(raw: &serde_json::Value) -> Result<RedshiftSource, ConnectorError> {
    RedshiftConfig::validate(raw).map(RedshiftSource::new)
}
