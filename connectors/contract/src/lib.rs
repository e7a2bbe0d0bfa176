//! The destination contract suite: one set of cases, instantiated per destination. The
//! source contract suite lives in [`source`].
//!
//! Every destination promises the engine the same things (see `backflow_connector_core::
//! destination`): the four sync modes behave the same way, every canonical Arrow type round
//! trips, a refused row comes back as a [`RowFailure`](backflow_connector_core::RowFailure)
//! with the database's own message while the rest of the batch lands, a run that was aborted
//! and re-run converges, and bad input fails early with an error naming what is wrong. This
//! crate checks those promises once, for every destination, the way Quickwit's
//! `metastore_test_suite!` checks every metastore.
//!
//! # Instantiating the suite
//!
//! A destination's test file implements [`Harness`] for its test server and expands the
//! suite with [`destination_contract_suite!`]; each case becomes one `#[tokio::test]`:
//!
//! ```ignore
//! // connectors/<system>/tests/contract.rs
//! struct MyHarness { /* admin connection, server URL, … */ }
//!
//! #[async_trait::async_trait]
//! impl backflow_connector_contract::Harness for MyHarness { /* … */ }
//!
//! async fn harness() -> MyHarness { /* read BACKFLOW_TEST_<NAME>_URL, panic if missing */ }
//!
//! backflow_connector_contract::destination_contract_suite!(harness().await);
//! ```
//!
//! The expression is evaluated inside each test (in an async context, so it may `.await`).
//! The test crate needs `tokio` (features `macros`, `rt-multi-thread`) and `async-trait` as
//! dev-dependencies, plus this crate.
//!
//! # What the cases use
//!
//! Every case creates its own object (named by [`Harness::unique_object`]) through the
//! destination itself, with `create_table: true`, so a harness never has to know the suite's
//! schemas up front. Cases check what they wrote by reading the object back with
//! [`Harness::read`], which returns rows as maps of column name → JSON value in the
//! *canonical value forms* below; the suite normalises both sides per column type before
//! comparing, so small representation differences (a decimal's trailing zeros, `T` or a space
//! in a timestamp, upper-case hex) do not matter.
//!
//! | canonical type | canonical value form returned by [`Harness::read`] |
//! |---|---|
//! | `Int16`, `Int32`, `Int64` | JSON integer (an integer in a string is accepted) |
//! | `Float32`, `Float64` | JSON number (a numeric string is accepted); `Float32` is compared after rounding to `f32` |
//! | `Decimal128(p, s)` | string with the exact decimal (`"-12.340"`); a JSON number is accepted but loses digits |
//! | `Boolean` | JSON bool (`0` / `1` accepted) |
//! | `Utf8` | string |
//! | `Binary` | hex string, any case (see [`hex`]) |
//! | `Date32` | `"YYYY-MM-DD"` (a timestamp at midnight UTC is accepted) |
//! | `Time64(µs)` | `"HH:MM:SS[.ffffff]"` |
//! | `Timestamp(µs, None)` | `"YYYY-MM-DD[T ]HH:MM:SS[.ffffff]"`; a zone suffix (`Z`, `+00`, `+00:00`) is read as UTC |
//! | `Timestamp(µs, "UTC")` | the same, with or without a zone suffix (no suffix means UTC) |
//! | JSON (`Utf8` + `arrow.json`) | the JSON value itself (object, array, …) or its text in a string |
//! | UUID (`FixedSizeBinary(16)` + `arrow.uuid`) | `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"`, any case, hyphens optional |
//! | NULL | `null`; a column missing from a row (a document without the field) counts as `null` |
//!
//! The values the suite writes stay within what every supported database stores: dates and
//! timestamps between 1900 and 2100, no float NaN or infinity, JSON numbers that are
//! integers or non-integral decimals (never `2.0`), no arrays nested directly in arrays,
//! strings without NUL characters.
//!
//! # The contract, case by case
//!
//! See [`cases`]: each public function there is one test, and its doc says what it asserts.
//! The promises that every destination must keep, beyond the core trait docs:
//!
//! - `upsert` and `update` applied to an existing key count as applied even when nothing
//!   changed (a skipped row is kept out of the snapshot and would be re-sent forever).
//! - `insert` reports every existing key as skipped and leaves it as it was; `update` reports
//!   every missing key as skipped and never creates it.
//! - Columns the sync does not write keep their values (a sync may map fewer columns than
//!   the object has; other writers own the rest).
//! - `delete` of a missing key is not a failure; it is reported as skipped when the database
//!   can tell ([`Harness::delete_reports_missing_keys`]).
//! - A batch whose Arrow types do not match the target schema is an `Err`, never a panic.
//! - A writer dropped without `close`, even while a `write` is in flight, leaves nothing
//!   behind that blocks or corrupts the next run.

pub mod cases;
pub mod fixtures;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod source;
mod values;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
pub use backflow_connector_core::TimestampPrecision;
use backflow_connector_core::{Connector, Destination, WriteTarget};

pub use source::server_url;
pub use values::{hex, unique_name};

/// One row (or document) read back from an object: column name → canonical JSON value.
pub type Row = BTreeMap<String, serde_json::Value>;

/// The error a harness returns: anything, since a harness failure fails the test with its
/// message. `anyhow::Error`, driver errors and strings all convert with `?` or `.into()`.
pub type HarnessError = Box<dyn std::error::Error + Send + Sync>;

/// Result of a harness operation.
pub type HarnessResult<T> = Result<T, HarnessError>;

/// How a prepared object refuses rows, returned by [`Harness::prepare_rejection`].
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The value of the `payload` column (`Utf8`) that the object refuses. Every row the suite
    /// writes with this payload must be refused by the database; every other row (payloads
    /// like `ok-3`, short, ASCII and distinct per row) must land. It may be large (Firestore:
    /// a string over 1 MiB makes the document too big).
    pub poison: String,
    /// A fragment of the database's own message for the refusal (for example `violates check
    /// constraint`, `E11000`, `exceeds the maximum`): each failure's message must contain it.
    pub message_contains: String,
}

/// What happens when the destination is given a wrong credential.
#[derive(Debug, Clone)]
pub enum CredentialCase {
    /// The server checks credentials: `check` and `open` on `destination` must fail with a
    /// non-retryable `Auth` error, and neither the error nor the destination's `Debug` may
    /// contain `secret`.
    Refused {
        /// A destination configured like [`Harness::destination`] but with a wrong password
        /// (or key, or token).
        destination: Arc<dyn Destination>,
        /// The wrong secret as configured, which must never be echoed.
        secret: String,
    },
    /// The test server does not check credentials (an emulator). The reason is asserted
    /// non-empty so the gap is stated in the test file, not silently skipped.
    NotEnforced {
        /// Why, e.g. "the Firestore emulator accepts any credentials".
        reason: &'static str,
    },
}

/// What a destination's test file provides so the contract cases can run against its test
/// server. Implementations panic or return an error only for harness failures (a broken test
/// server), never to hide a destination failure.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The connection type under test: the suite reads its capabilities (schemaless, decimal
    /// and timestamp precision) from the connector's own description, so what a connector
    /// claims over the API is what its suite holds it to.
    fn connector(&self) -> &'static dyn Connector;

    /// Short name of the destination for failure messages (`"postgres"`).
    fn name(&self) -> &'static str {
        self.connector().type_name()
    }

    /// Whether `delete` can tell a missing key from a deleted one. When false the suite
    /// accepts a missing key either skipped or applied; it must still never be a failure.
    fn delete_reports_missing_keys(&self) -> bool {
        true
    }

    /// The destination under test, configured for the test server. Called once or more per
    /// case; each call may return the same destination.
    fn destination(&self) -> Arc<dyn Destination>;

    /// A fresh object name (as `WriteTarget::object` takes it) that no other test uses and
    /// that does not exist yet. `prefix` is short, lowercase ASCII and `_`; the result should
    /// contain it (for example `public.upsert_3f2a…`). [`unique_name`] helps.
    fn unique_object(&self, prefix: &str) -> String;

    /// Every row (document) of `object` in canonical value forms (see the crate docs), in any
    /// order. Each row must hold at least the columns of `schema` (a missing column counts as
    /// NULL); extra columns are ignored. `primary_key` names the key columns, for harnesses
    /// that store the key elsewhere (MongoDB's `_id`) and must put it back under the column
    /// names. An object that does not exist reads as no rows.
    async fn read(
        &self,
        object: &str,
        schema: &SchemaRef,
        primary_key: &[String],
    ) -> HarnessResult<Vec<Row>>;

    /// Makes the existing `object` (written by the suite with `target`'s schema: `id` Int64
    /// key, `name` Utf8, `payload` Utf8) refuse every row whose `payload` is the returned
    /// poison: a CHECK constraint (PostgreSQL, MySQL), a unique index plus a document that
    /// already holds the poison (MongoDB; give it a negative `id`, the suite ignores rows with
    /// negative ids in this case), an oversized value (Firestore). Called after the suite's
    /// first rows landed, before the batch with poisoned rows is written.
    async fn prepare_rejection(
        &self,
        object: &str,
        target: &WriteTarget,
    ) -> HarnessResult<Rejection>;

    /// The wrong-credential case for this destination.
    fn wrong_credential(&self) -> CredentialCase;

    /// A destination pointing at a server that does not answer (a closed loopback port such
    /// as `127.0.0.1:1`), with a short connect timeout if the config has one: `check` and
    /// `open` must fail with a retryable `Connectivity` error within a minute.
    fn unreachable(&self) -> Arc<dyn Destination>;

    /// Removes `object` after a case passed; best effort (a missing object is not an error).
    async fn drop_object(&self, object: &str) -> HarnessResult<()>;
}

/// Expands to one `#[tokio::test]` per contract case, each running against the harness that
/// `$harness` (an expression, evaluated in each test's async body, so it may `.await`)
/// produces. Invoke it once, at the top level of a test file.
///
/// ```ignore
/// backflow_connector_contract::destination_contract_suite!(PgHarness::new().await);
/// ```
#[macro_export]
macro_rules! destination_contract_suite {
    ($harness:expr) => {
        $crate::destination_contract_suite!(@cases $harness;
            upsert_inserts_new_updates_changed_and_keeps_the_rest,
            insert_creates_new_keys_only_and_skips_existing_ones,
            update_changes_existing_keys_only_and_skips_missing_ones,
            mirror_upserts_and_deletes_removed_keys,
            composite_keys_upsert_and_delete,
            large_batches_land_completely,
            canonical_types_round_trip,
            rejected_rows_are_isolated_in_upsert,
            rejected_rows_are_isolated_in_update,
            writer_dropped_mid_run_then_rerun_converges,
            failed_batch_then_rerun_converges,
            unknown_column_in_existing_object,
            wrong_type_in_existing_object,
            primary_key_outside_the_schema_is_a_config_error,
            wrong_credential_is_an_auth_error,
            unreachable_server_is_a_retryable_connectivity_error
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::cases::$case(&harness).await;
            }
        )*
    };
}
