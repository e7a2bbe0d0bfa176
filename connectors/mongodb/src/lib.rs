//! MongoDB destination for Backflow, over the plain MongoDB protocol.
//!
//! Every write is a raw command (`insert`, `update`, `delete`) that MongoDB 3.6+, Atlas and
//! MongoDB-compatible servers accept, so the connector works unchanged against all of them.
//! Tested against FerretDB 1.24.2 on its PostgreSQL backend (see `docs/connectors/mongodb.md`).
//!
//! # Config
//!
//! ```yaml
//! type: mongodb
//! config:
//!   url: mongodb+srv://app@cluster0.example.net/?retryWrites=true
//!   database: shop                      # optional when the URL path names one
//!   password: ${env:MONGO_PASSWORD}     # optional; overrides the URL's password
//!   connect_timeout_secs: 10            # optional; default 30
//!   primary_key_as_id: true             # optional; default true
//!   decimals: decimal128                # optional; decimal128 (default) | string | double
//! ```
//!
//! Secret references (`${env:NAME}`, `${file:/path}`) are allowed in `url` and `password`
//! and are resolved only when connecting. Passwords never appear in errors, logs or `Debug`.
//! The sync's destination object is the collection (`collection:` in a sync definition;
//! `table:` is accepted as an alias); it is created when a writer opens and `create_table` is set.
//!
//! # Documents and keys
//!
//! One document per primary key. With `primary_key_as_id: true` a single-column key is the
//! document's `_id` and a composite key is an `_id` sub-document with the key columns in key
//! order (`{_id: {region: "eu", id: 7}}`); key columns are not repeated as fields. With
//! `primary_key_as_id: false` the key columns are ordinary fields, the server generates `_id`,
//! and the key must be backed by a unique index (created with the collection when
//! `create_table` is set; `check` fails otherwise).
//!
//! # Modes
//!
//! | mode | per row | reported |
//! |---|---|---|
//! | `upsert` | `update` statement `{q: key, u: {$set: fields}, upsert: true}` | applied |
//! | `insert` | `insert` of the document; on a duplicate key, `{q: key, u: {$setOnInsert: fields}, upsert: true}` | applied if created, else skipped |
//! | `update` | `{q: key, u: {$set: fields}, upsert: false}` | applied if matched, else skipped |
//! | `mirror` | `upsert`, then a `find` of which keys exist and one `delete` statement per existing key | deleted, or skipped if missing |
//!
//! A first run (`initial_load`) into an empty collection in `upsert`/`mirror` mode inserts
//! whole documents instead of upserting them; a key another writer created meanwhile
//! (duplicate key) goes through its upsert statement instead. `$set` names only the mapped
//! fields, so fields that other writers own survive every mode. Statements are `multi: true`
//! (a key matches at most one document; FerretDB 1.x deadlocks on many matched `multi: false`
//! statements in one command) and go in unordered commands of up to 1 000 statements and
//! under 16 MiB, up to four commands in flight per writer. A statement the server refuses
//! (`writeErrors`) is a rejected row with the server's message and code; a command refused as a
//! whole for a data reason, or whose reply does not say what became of each statement, is
//! re-run in halves until the offending rows stand alone (statements are idempotent). An
//! upsert refused with a duplicate key (a concurrent writer created the key first) gets one
//! more try. A document over 16 MiB is a rejected row.
//!
//! # Types: canonical Arrow → BSON
//!
//! | canonical | BSON |
//! |---|---|
//! | `Int16` / `Int32` | int32 |
//! | `Int64` | int64 |
//! | `Decimal128(p,s)` | decimal128 (exact; a value with more than 34 significant digits is a rejected row); or, with `decimals`, its text (`"123.45"`) or a double |
//! | `Float32` / `Float64` | double |
//! | `Boolean` | bool |
//! | `Utf8` | string |
//! | `Binary` | binData, subtype 0 |
//! | UUID | binData, subtype 4 |
//! | `Date32` | date, midnight UTC |
//! | `Time64(µs)` | string `HH:MM:SS[.ffffff]` (BSON has no time of day) |
//! | `Timestamp(µs)` / `Timestamp(µs, UTC)` | date (UTC; BSON dates hold milliseconds, so microseconds are truncated) |
//! | JSON | the parsed value: objects become embedded documents, arrays arrays, integers int32 or int64, other numbers doubles; invalid JSON is a rejected row |
//! | NULL | null |
//!
//! Column names become field names verbatim; a name MongoDB cannot take as a top-level field
//! (empty, starting with `$`, containing `.` or NUL) is a config error naming the column. The
//! collection must be a name MongoDB keeps as written: not empty, no `$` or NUL, no
//! `system.` prefix, and `database.collection` at most 255 bytes ([`check_destination_names`],
//! applied when a sync is defined and by `check` before writing).

mod config;
mod connector;
mod destination;
mod encode;
mod error;
mod plan;
mod reply;
mod rows;
mod writer;

use backflow_connector_core::ConnectorError;

pub use connector::MongoConnector;
pub use destination::MongoDestination;
pub use plan::{check_destination_names, MAX_NAMESPACE_BYTES};

/// The database the connection `raw` writes into (its `database`, else the URL's path), so
/// names can be checked against the namespace limit; `None` when the config does not parse.
pub fn database_of(raw: &serde_json::Value) -> Option<String> {
    config::MongoConfig::validate(raw)
        .ok()
        .map(|c| c.database().to_owned())
}

/// Checks a destination connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_destination(
    config: &serde_json::Value,
) -> Result<MongoDestination, ConnectorError> {
    config::MongoConfig::validate(config).map(MongoDestination::new)
}
