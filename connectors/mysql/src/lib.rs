//! MySQL and MariaDB source and destination for Backflow.
//!
//! # Config
//!
//! ```yaml
//! type: mysql
//! config:
//!   url: mysql://app@db.internal:3306/app   # mariadb:// is accepted too
//!   password: ${env:APP_DB_PASSWORD}         # optional; overrides the URL's password
//!   connect_timeout_secs: 10                  # optional; default 30
//! ```
//!
//! Secret references (`${env:NAME}`, `${file:/path}`) are allowed in `url` and `password`
//! and are resolved only when connecting. Passwords never appear in errors, logs or `Debug`.
//! Every session runs with `time_zone = '+00:00'`, utf8mb4 and a strict SQL mode, so a value
//! a column cannot hold is an error (a rejected row), never a silently truncated warning.
//!
//! # Writing: canonical Arrow → MySQL
//!
//! | canonical | `create_table` column type |
//! |---|---|
//! | `Int16` / `Int32` / `Int64` | `SMALLINT` / `INT` / `BIGINT` |
//! | `Decimal128(p,s)` | `DECIMAL(p,s)` (scale 0..=30) |
//! | `Float32` / `Float64` | `FLOAT` / `DOUBLE` (NaN and ±infinity are rejected rows) |
//! | `Boolean` | `BOOLEAN` (`TINYINT(1)`) |
//! | `Utf8` | `LONGTEXT`; `VARCHAR(255)` in the primary key |
//! | `Binary` | `LONGBLOB`; `VARBINARY(255)` in the primary key |
//! | `Date32` | `DATE` |
//! | `Time64(µs)` | `TIME(6)` |
//! | `Timestamp(µs)` | `DATETIME(6)` |
//! | `Timestamp(µs, UTC)` | `DATETIME(6) COMMENT 'UTC'`: the instant in UTC |
//! | JSON | `JSON` (MariaDB: `LONGTEXT` with a `JSON_VALID` check) |
//! | UUID | `BINARY(16)` |
//!
//! Created tables are `ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin` with
//! `PRIMARY KEY (pk)`: the binary collation makes key comparison exact, as in Arrow. An
//! existing table is used as it is: its columns may have other types (a UUID is written as
//! text into a `CHAR(36)` or MariaDB `UUID` column, as 16 bytes into `BINARY(16)`), the
//! primary key must match a unique index without prefix lengths, and a value the column or a
//! constraint refuses becomes a rejected row with the server's message. Zoned timestamps are
//! written in UTC; an existing `TIMESTAMP` column converts them with the session's UTC zone.
//!
//! `WriteTarget::object` is `table` or `database.table` (backticks allowed around a part).
//! Database, table and column names follow the server's rules ([`check_identifier`]: at most
//! 64 characters, no trailing space, no NUL, nothing outside the BMP), checked when a sync is
//! defined and by `check` before writing.
//!
//! # Reading: MySQL → canonical Arrow
//!
//! | MySQL | Arrow |
//! |---|---|
//! | `tinyint(1)` / `boolean` | `Boolean` (any non-zero is true) |
//! | `tinyint`, `smallint`, `year` / `mediumint`, `int` / `bigint` | `Int16` / `Int32` / `Int64` |
//! | unsigned integers | the next wider signed type; `bigint unsigned` → `Decimal128(20,0)` |
//! | `bit(n)` | `Int64` |
//! | `float` / `double` | `Float32` / `Float64` |
//! | `decimal(p,s)` | `Decimal128(p,s)` (p ≤ 38, else a schema error) |
//! | `char`, `varchar`, `*text`, `enum`, `set`, `inet4`, `inet6` | `Utf8` |
//! | `binary`, `varbinary`, `*blob` | `Binary` |
//! | `date` / `time` / `datetime` | `Date32` / `Time64(µs)` / `Timestamp(µs)` |
//! | `timestamp` | `Timestamp(µs, UTC)` |
//! | `json` (MySQL) | JSON (`Utf8` tagged `arrow.json`); MariaDB's JSON is `LONGTEXT` and reads as `Utf8` |
//! | `uuid` (MariaDB) | UUID |
//!
//! Other types (spatial types) are a schema error naming the column and suggesting a cast.
//! The query runs in a read-only session.

mod config;
mod connector;
mod destination;
mod error;
mod ident;
mod literal;
mod source;
mod statements;
mod table;
mod types;
mod validate;

use backflow_connector_core::ConnectorError;

pub use connector::MysqlConnector;
pub use destination::MysqlDestination;
pub use ident::{check_destination_names, check_identifier, MAX_IDENTIFIER_CHARS};
pub use source::MysqlSource;

/// The table `object` names on the connection `raw`, spelled one way (an unqualified table
/// gets the URL's database), so two syncs writing one table can be recognised; `None` when
/// the config or the object does not parse (their validation reports why).
pub fn object_key(raw: &serde_json::Value, object: &str) -> Option<String> {
    let config = config::MysqlConfig::validate(raw).ok()?;
    ident::object_key(object, config.default_database().as_deref())
}

/// Checks a source connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_source(raw: &serde_json::Value) -> Result<MysqlSource, ConnectorError> {
    config::MysqlConfig::validate(raw).map(MysqlSource::new)
}

/// Checks a destination connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_destination(raw: &serde_json::Value) -> Result<MysqlDestination, ConnectorError> {
    config::MysqlConfig::validate(raw).map(MysqlDestination::new)
}
