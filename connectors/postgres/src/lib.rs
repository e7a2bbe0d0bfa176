//! PostgreSQL source and destination for Backflow.
//!
//! Both directions use PostgreSQL's binary `COPY`, the fastest way in and out of the server:
//! the source streams `COPY (query) TO STDOUT (FORMAT binary)` and decodes it incrementally
//! into Arrow batches; the destination encodes Arrow batches into binary `COPY FROM STDIN`
//! into a temporary staging table and applies the write mode with one statement per batch.
//!
//! # Config
//!
//! ```yaml
//! type: postgres
//! config:
//!   url: postgres://app@db.internal:5432/app?sslmode=require
//!   password: ${env:APP_DB_PASSWORD}   # optional; overrides the URL's password
//!   connect_timeout_secs: 10            # optional; default 30
//! ```
//!
//! Secret references (`${env:NAME}`, `${file:/path}`) are allowed in `url` and `password`
//! and are resolved only when connecting. Passwords never appear in errors, logs or `Debug`.
//! Source sessions are read-only (`default_transaction_read_only`); destination sessions run
//! in UTC so casts between `timestamp` and `timestamptz` are unambiguous.
//!
//! # Reading: PostgreSQL → canonical Arrow
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | `int2` / `int4` / `int8` | `Int16` / `Int32` / `Int64` |
//! | `float4` / `float8` | `Float32` / `Float64` (NaN and ±Infinity kept) |
//! | `numeric(p,s)` | `Decimal128(p,s)` (p ≤ 38, 0 ≤ s ≤ p, else a schema error) |
//! | `numeric` (unconstrained) | `Decimal128(38,10)` |
//! | `bool` | `Boolean` |
//! | `text`, `varchar`, `bpchar`, `name` | `Utf8` |
//! | `bytea` | `Binary` |
//! | `date` | `Date32` |
//! | `time` | `Time64(µs)` |
//! | `timestamp` | `Timestamp(µs, None)` |
//! | `timestamptz` | `Timestamp(µs, "UTC")` |
//! | `json`, `jsonb` | JSON (`Utf8` tagged `arrow.json`) |
//! | `uuid` | UUID (`FixedSizeBinary(16)` tagged `arrow.uuid`) |
//! | arrays of any type above | JSON text (`Utf8` tagged `arrow.json`), as `to_jsonb` renders it in UTC |
//!
//! Any other type is a schema error naming the column and its type and suggesting a cast in
//! the query (`col::text`). Values that have no Arrow form are data errors naming the column:
//! a numeric NaN or ±Infinity, a numeric that does not fit its `Decimal128` without losing
//! digits, and ±infinity dates and timestamps.
//!
//! # Writing: canonical Arrow → PostgreSQL
//!
//! | canonical | native type (staging, `create_table`) |
//! |---|---|
//! | `Int16` / `Int32` / `Int64` | `int2` / `int4` / `int8` |
//! | `Decimal128(p,s)` | `numeric(p,s)` |
//! | `Float32` / `Float64` | `float4` / `float8` |
//! | `Boolean` | `bool` |
//! | `Utf8` | `text` |
//! | `Binary` | `bytea` |
//! | `Date32` | `date` |
//! | `Time64(µs)` | `time` |
//! | `Timestamp(µs)` / `Timestamp(µs, UTC)` | `timestamp` / `timestamptz` |
//! | JSON | `jsonb` |
//! | UUID | `uuid` |
//!
//! An existing table may use other column types: values are staged in their native type and
//! cast to the column's type (`NULL::native::column_type` must be a valid cast, which `check`
//! verifies); a value the cast or a constraint refuses becomes a rejected row.
//!
//! `WriteTarget::object` is `table` or `schema.table`; names are exact (case-sensitive) and
//! a part may be double-quoted to contain a dot. PostgreSQL truncates identifiers over 63
//! bytes, so a schema, table or column name over 63 bytes (or empty, or holding NUL) is
//! refused ([`check_destination_names`]) when a sync is defined and by `check` before writing.

mod codec;
mod config;
mod connector;
mod destination;
mod error;
mod ident;
mod numeric;
pub mod shared;
mod source;
mod statements;
mod table;
mod types;
mod validate;

use backflow_connector_core::ConnectorError;

pub use connector::PostgresConnector;
pub use destination::PostgresDestination;
pub use ident::{check_destination_names, check_identifier, object_key, MAX_IDENTIFIER_BYTES};
pub use source::PostgresSource;

/// Checks a source connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_source(raw: &serde_json::Value) -> Result<PostgresSource, ConnectorError> {
    config::PostgresConfig::validate(raw).map(PostgresSource::new)
}

/// Checks a destination connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_destination(
    raw: &serde_json::Value,
) -> Result<PostgresDestination, ConnectorError> {
    config::PostgresConfig::validate(raw).map(PostgresDestination::new)
}
