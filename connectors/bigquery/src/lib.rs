//! Google BigQuery source for Backflow.
//!
//! # Config
//!
//! ```yaml
//! type: bigquery
//! config:
//!   project: acme-analytics            # the project jobs run (and are billed) in
//!   location: EU                       # optional; BigQuery infers it from the tables read
//!   dataset: marts                     # optional default dataset for unqualified table names
//!   credentials: ${file:/etc/backflow/bigquery-key.json}   # service-account JSON key
//!   max_read_streams: 4                # optional; Storage Read streams read at once (1..=64)
//!   # api_endpoint: http://127.0.0.1:9050       # optional overrides (an emulator, a private
//!   # storage_endpoint: http://127.0.0.1:9060   # endpoint); both set = credentials optional
//! ```
//!
//! `credentials` must be a secret reference (`${file:…}` or `${env:…}`) to a service-account
//! JSON key; it is resolved only when a run connects and exchanged for an OAuth2 token (scope
//! `https://www.googleapis.com/auth/bigquery`) with the JWT-bearer grant, through
//! `backflow-google-auth`. Without credentials both endpoints must be set (an emulator) and
//! requests carry no `Authorization` header.
//!
//! # How a query is read
//!
//! 1. **Job.** `jobs.insert` starts the query (standard SQL) under a client-made job id, then
//!    `jobs.get` is polled (100 ms growing to 2 s) until the job is `DONE`. A job whose
//!    `errorResult` has a transient reason (`backendError`, `rateLimitExceeded`,
//!    `internalError`, `jobRateLimitExceeded`, `jobBackendError`) is run again as a new job,
//!    up to 3 times, as Google's clients do. Every REST call is retried with exponential
//!    backoff on connection failures, HTTP 429/5xx and the same transient reasons; a retried
//!    `jobs.insert` that answers `409 duplicate` means the first attempt got through. If the
//!    read is dropped while the job runs (the run was cancelled), the job is cancelled with
//!    `jobs.cancel`.
//! 2. **Storage Read API.** `CreateReadSession` (gRPC, Arrow format, server-chosen stream
//!    count, a single stream when the query has `ORDER BY`) on the job's destination table
//!    (an anonymous table for a plain query); `tables.get` on it gives the result schema and
//!    row count (the REST schema decides every column's canonical type on both read paths,
//!    and exists for an empty result, which has no streams); then `ReadRows` on up to
//!    `max_read_streams` streams at once; each response is an Arrow IPC record batch, decoded
//!    with the session's IPC schema and converted to the canonical types. A stream that fails
//!    transiently resumes at its row offset. The read succeeds only if every stream ended and
//!    the rows add up to the table's row count.
//! 3. **Fallback.** When `CreateReadSession` is refused with `PERMISSION_DENIED` (no
//!    `bigquery.readsessions.create`, API not enabled) or `UNIMPLEMENTED`, or the query was a
//!    script (no destination table), rows are read from `jobs.getQueryResults` pages (20,000
//!    rows at most, `formatOptions.useInt64Timestamp=true`) fetched one ahead and sliced into
//!    batches, and the total is checked against `totalRows`.
//!
//! Batches flow through a bounded channel, so memory holds a few responses whatever the
//! result size; a dropped connection is a retryable error, never a short successful read.
//! Rows from several streams arrive in no particular order.
//!
//! # Types: BigQuery → canonical Arrow
//!
//! | BigQuery | Arrow |
//! |---|---|
//! | `INT64` | `Int64` |
//! | `FLOAT64` | `Float64` (NaN and ±infinity kept) |
//! | `NUMERIC` | `Decimal128(38, 9)`, exact |
//! | `BIGNUMERIC` | `Utf8`: the exact decimal text (`-1.5`, up to 76 digits); the canonical set has no decimal wider than 38 digits, so text is the only lossless form. `CAST(x AS NUMERIC)` in the query gives a `Decimal128(38, 9)` when the values fit |
//! | `BOOL` | `Boolean` |
//! | `STRING` | `Utf8` |
//! | `BYTES` | `Binary` |
//! | `DATE` | `Date32` |
//! | `TIME` | `Time64(µs)` |
//! | `DATETIME` | `Timestamp(µs)` (no zone: wall clock) |
//! | `TIMESTAMP` | `Timestamp(µs, "UTC")` |
//! | `JSON` | JSON (`Utf8` tagged `arrow.json`), BigQuery's text |
//! | `ARRAY<…>`, `STRUCT<…>` | JSON text: arrays as JSON arrays, structs as objects keyed by field name |
//! | `GEOGRAPHY` | `Utf8`, WKT (`POINT(1 2)`) |
//! | `INTERVAL`, `RANGE` | rejected with a schema error naming the column (cast them to `STRING`) |
//!
//! Inside `ARRAY` and `STRUCT` values: `INT64` is a JSON number, `FLOAT64` a number (`"NaN"`,
//! `"Infinity"`, `"-Infinity"` as strings), `NUMERIC` and `BIGNUMERIC` exact decimal strings,
//! `BYTES` base64 strings, `DATE` / `TIME` / `DATETIME` ISO text (`2024-01-02`, `03:04:05.5`,
//! `2024-01-02T03:04:05.5`), `TIMESTAMP` RFC 3339 in UTC (`2024-01-02T03:04:05.5Z`), `JSON`
//! the value itself, `GEOGRAPHY` WKT. Both read paths render the same text, so a row hashes
//! the same whichever path read it.
//!
//! # Errors
//!
//! A failed job's error carries BigQuery's message and its `reason` as the error code
//! (`invalidQuery`, `notFound`, …). HTTP 401 and gRPC `UNAUTHENTICATED` are `auth` errors,
//! 403 `accessDenied` and `PERMISSION_DENIED` are `permission` errors, and connection
//! failures, 429, 5xx and transient reasons are retryable `connectivity` errors.

mod auth;
mod config;
mod connector;
mod convert;
mod error;
mod job;
mod pages;
mod pump;
mod rest;
mod rows;
mod schema;
mod source;
mod storage;
mod values;

use backflow_connector_core::ConnectorError;

pub use connector::BigQueryConnector;
pub use source::BigQuerySource;

/// Checks a source connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_source(raw: &serde_json::Value) -> Result<BigQuerySource, ConnectorError> {
    config::BigQueryConfig::validate(raw).map(BigQuerySource::new)
}
