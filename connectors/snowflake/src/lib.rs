//! Snowflake source for Backflow: Snowflake's own driver protocol (REST + Arrow IPC), written
//! with reqwest and arrow-ipc so the host is configurable and local emulators work.
//!
//! # Config
//!
//! ```yaml
//! type: snowflake
//! config:
//!   account: myorg-myaccount          # or a locator such as xy12345.us-east-1
//!   user: BACKFLOW
//!   warehouse: TRANSFORMING           # optional: the user's defaults otherwise
//!   database: ANALYTICS
//!   schema: MARTS
//!   role: REPORTER
//!   credential:
//!     key_pair:
//!       private_key_file: /secrets/snowflake/rsa_key.p8     # PKCS#8 PEM
//!       passphrase: ${env:SNOWFLAKE_KEY_PASSPHRASE}          # only for an encrypted key
//!   # or: credential: { password: ${env:SNOWFLAKE_PASSWORD} }
//!   # optional overrides (private link, local emulators):
//!   # host: 127.0.0.1
//!   # port: 58443
//!   # protocol: http                  # default https
//!   # chunk_concurrency: 4            # result chunks downloaded at once (1..=16)
//! ```
//!
//! The host defaults to `ACCOUNT.snowflakecomputing.com:443` over https. Secrets are
//! references (`${env:NAME}`, `${file:/path}`), resolved only when logging in; passwords,
//! tokens, JWTs and chunk keys never appear in errors, logs or `Debug` output.
//!
//! # Protocol
//!
//! Every answer is a JSON envelope `{"data", "code", "message", "success"}`.
//!
//! 1. **Login**: `POST /session/v1/login-request?warehouse=…&databaseName=…&schemaName=…&roleName=…&requestId=…`
//!    with `{"data": {"ACCOUNT_NAME", "LOGIN_NAME", "CLIENT_APP_ID", "CLIENT_APP_VERSION",
//!    "CLIENT_ENVIRONMENT", "SESSION_PARAMETERS", "PASSWORD"}}`, or instead of `PASSWORD`
//!    `"AUTHENTICATOR": "SNOWFLAKE_JWT", "TOKEN": <jwt>` (see [key-pair auth](#key-pair-auth)).
//!    `SESSION_PARAMETERS` is required (fakesnow reads it) and sets `ABORT_DETACHED_QUERY`,
//!    so a query whose client vanished is stopped by Snowflake. The answer's `data.token` is
//!    the session token (required); `data.masterToken`, `data.validityInSeconds` and
//!    `data.parameters` (heartbeat frequency) are used when present. Failure codes `390…`
//!    (for example 390100, incorrect username or password) are `Auth` errors.
//! 2. **Query**: `POST /queries/v1/query-request?requestId=…` with header
//!    `Authorization: Snowflake Token="<session token>"` and body `{"sqlText", "asyncExec":
//!    false, "sequenceId", "querySubmissionTime", "isInternal", "parameters"}`. The login
//!    identifies as the Go driver (`CLIENT_APP_ID`) because Snowflake picks Arrow results
//!    for the drivers it knows. The answer carries `rowtype` (column names and types, the
//!    declared schema), the first chunk inline as `rowsetBase64` (an Arrow IPC stream), and
//!    `chunks` (`url`, `rowCount`) with `chunkHeaders` or `qrmk` for the remaining ones, plus
//!    `total` rows. The answer is not buffered: the fields before `rowsetBase64` (`rowtype`
//!    comes first, in Snowflake's answers and fakesnow's) are parsed as soon as they arrived,
//!    the base64 rowset is decoded and its Arrow messages decoded as they stream in, and the
//!    fields after it (`chunks`, `total`) are read once it ended. So a result an emulator
//!    inlines whole (fakesnow never makes chunks) still reads in bounded memory.
//! 3. **Asynchronous queries**: code `333333` / `333334` means "still running"; the client
//!    polls `GET data.getResultUrl` (or `/queries/<queryId>/result`) with backoff up to 2 s
//!    until the answer is final.
//! 4. **Chunks**: `GET url` with the `chunkHeaders` (or the SSE-C headers
//!    `x-amz-server-side-encryption-customer-algorithm: AES256` and `…-customer-key: <qrmk>`),
//!    `chunk_concurrency` at a time, yielded in result order; gzip bodies (magic `1f 8b`) are
//!    inflated. Failures are retried 3 times, then fail the read as retryable.
//! 5. **Session upkeep**: during a read a heartbeat (`POST /session/heartbeat`) is sent every
//!    `CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY` seconds (at most ¾ of the token's
//!    validity). Code `390112` (session token expired) is answered by
//!    `POST /session/token-request` with the master token and
//!    `{"oldSessionToken", "requestType": "RENEW"}`, then the request is repeated once.
//! 6. **Cancellation and logout**: dropping a read before its end (a cancelled run) sends
//!    `POST /queries/v1/abort-request` with `{"sqlText", "requestId"}` of the query request;
//!    every read ends with `POST /session?delete=true`.
//!
//! Errors: transport failures, HTTP 5xx/429/408 and truncated or damaged chunks are retryable
//! `Connectivity` errors; a failed query carries Snowflake's message and code (`002003`
//! → `NotFound`, `003001` → `Permission`, others `Query`). A result is complete only when as
//! many rows as `total` (and each chunk's `rowCount`) were read, so a partial read can never
//! look like deleted rows.
//!
//! # Key-pair auth
//!
//! See the `auth` module: RS256 JWT with `iss` = `ACCOUNT.USER.SHA256:<fingerprint>`, `sub` =
//! `ACCOUNT.USER`, `iat`, `exp` = `iat` + 59 min, from a PKCS#8 key (plain or encrypted with
//! PBES2, decrypted with the `pkcs8` crate), signed with ring.
//!
//! # Reading: Snowflake → canonical Arrow
//!
//! | Snowflake (`rowtype.type`) | Arrow |
//! |---|---|
//! | `NUMBER(p,0)` (`INT`, `BIGINT`, … = `NUMBER(38,0)`) | `Int64` (a value beyond 64 bits is a data error naming the column) |
//! | `NUMBER(p,s)`, s > 0 | `Decimal128(p,s)`, exact, from scaled integers or decimals |
//! | `FLOAT` / `DOUBLE` / `REAL` | `Float64` |
//! | `VARCHAR` / `CHAR` / `STRING` / `TEXT`, `GEOGRAPHY`, `GEOMETRY` | `Utf8` |
//! | `BINARY` | `Binary` |
//! | `BOOLEAN` | `Boolean` |
//! | `DATE` | `Date32` |
//! | `TIME(s)` | `Time64(µs)` (nanoseconds truncate) |
//! | `TIMESTAMP_NTZ(s)` | `Timestamp(µs)` |
//! | `TIMESTAMP_LTZ(s)` / `TIMESTAMP_TZ(s)` | `Timestamp(µs, "UTC")`: the instant; the zone offset is dropped |
//! | `VARIANT` / `OBJECT` / `ARRAY` | JSON (`Utf8` tagged `arrow.json`) |
//!
//! Timestamps are read in each of Snowflake's encodings: an integer of 10^-scale seconds, a
//! struct `{epoch, fraction}` (seconds + nanoseconds), `{epoch, fraction, timezone}` and
//! `{epoch, timezone}`, or a plain Arrow timestamp. The integer width of a `NUMBER` may change
//! from chunk to chunk; every batch is converted to the type the `rowtype` declares. Other
//! types (`VECTOR`, …) are a schema error naming the column and suggesting a cast.

mod auth;
mod client;
mod config;
mod connector;
mod source;
mod types;

use backflow_connector_core::ConnectorError;

pub use connector::SnowflakeConnector;
pub use source::SnowflakeSource;

/// Checks a source connection's raw config without any I/O, so a typo fails when the
/// connection is defined rather than at the first run. Errors name the offending field.
pub fn validate_source(raw: &serde_json::Value) -> Result<SnowflakeSource, ConnectorError> {
    config::SnowflakeConfig::validate(raw).map(SnowflakeSource::new)
}
