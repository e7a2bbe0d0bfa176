//! The source contract suite: one set of cases, instantiated per source.
//!
//! Every source promises the engine the same things (see `backflow_connector_core::source`):
//! the schema a query declares is the schema of every batch it yields; every supported type
//! arrives in its canonical Arrow form with NULLs, unicode, full-precision decimals, zoned and
//! unzoned timestamps and JSON intact; a result of any size streams in bounded memory; a bad
//! query is a clear, non-retryable error carrying the warehouse's own message and code; and a
//! connection lost mid-stream is a retryable error item, never an early, successful end (a
//! partial read would look like deleted rows to the diff).
//!
//! # Instantiating the suite
//!
//! A source's test file implements [`SourceHarness`] for its test server and expands the
//! suite with [`source_contract_suite!`](crate::source_contract_suite); each case becomes one
//! `#[tokio::test]`:
//!
//! ```ignore
//! // connectors/<system>/tests/source_contract.rs
//! struct MyHarness { /* admin connection, server URL, … */ }
//!
//! #[async_trait::async_trait]
//! impl backflow_connector_contract::source::SourceHarness for MyHarness { /* … */ }
//!
//! async fn harness() -> MyHarness { /* read BACKFLOW_TEST_<NAME>_URL, panic if missing */ }
//!
//! backflow_connector_contract::source_contract_suite!(harness().await);
//! ```
//!
//! The expression is evaluated inside each test (in an async context, so it may `.await`).
//! The test crate needs `tokio` (features `macros`, `rt-multi-thread`) and `async-trait` as
//! dev-dependencies, plus this crate. Invoke the macro once per test binary (the memory case
//! re-runs the binary as a child process, see below).
//!
//! # What a harness does
//!
//! The suite never writes SQL. It describes tables as typed columns plus rows
//! ([`TableSpec`]), and the harness creates them in its warehouse however it can (`CREATE
//! TABLE` + `INSERT` over an admin connection, a Parquet file, a REST `insertAll`, a seeding
//! YAML) and answers with a [`TestTable`]: the source to read it with and the query that reads
//! it. Rows come in two equal forms so the harness picks the convenient one: canonical JSON
//! values ([`TableSpec::rows`], forms below) to render as literals, or an Arrow batch of the
//! canonical types ([`TableSpec::batch`]) to write as a file.
//!
//! | canonical type | value form in [`TableSpec::rows`] |
//! |---|---|
//! | `Int16`, `Int32`, `Int64` | JSON integer |
//! | `Float32`, `Float64` | JSON number (finite; `Float32` values are exact in `f32`) |
//! | `Decimal128(38, 9)` | string with the exact decimal, up to 38 digits (`"-12.340000000"`) |
//! | `Boolean` | JSON bool |
//! | `Utf8` | string (may be empty, hold quotes, backslashes, newlines and non-BMP unicode) |
//! | `Binary` | lowercase hex string without prefix (`"00ff10"`; `""` is the empty value) |
//! | `Date32` | `"YYYY-MM-DD"` |
//! | `Time64(µs)` | `"HH:MM:SS[.ffffff]"` |
//! | `Timestamp(µs, None)` | `"YYYY-MM-DDTHH:MM:SS[.ffffff]"`, a wall clock without zone |
//! | `Timestamp(µs, "UTC")` | `"YYYY-MM-DDTHH:MM:SS[.ffffff]±HH:MM"` or `…Z`: an instant; keep the instant, any zone |
//! | JSON (`Utf8` + `arrow.json`) | the JSON value itself (object, array, string, number) |
//! | UUID (`FixedSizeBinary(16)` + `arrow.uuid`) | `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"` |
//! | NULL | `null` (a SQL NULL; never a JSON `null` inside a JSON column) |
//!
//! Values stay within what every warehouse stores: dates and timestamps between 1900 and
//! 2100, no float NaN or infinity, JSON numbers that are integers or non-integral decimals.
//!
//! Types a source cannot produce are declared with [`SourceHarness::type_support`] (with a
//! reason), never skipped silently; types that arrive as another canonical type (BigQuery has
//! only `INT64`) are declared with [`TypeSupport::As`] and their values are still compared.
//!
//! # Reading what a source yields
//!
//! The suite reads like the engine: it canonicalises the declared schema and every batch with
//! `backflow_connector_core::types::{canonical_schema, canonicalize_batch}`, then compares
//! values per column type (decimals without trailing zeros, timestamps as instants, JSON
//! parsed, …), so a source may yield any Arrow type the engine canonicalises.
//!
//! # The memory case
//!
//! `large_result_streams_in_bounded_memory` re-runs the test binary as a child process that
//! executes only the ignored test `source_contract_memory_probe`, twice: once reading
//! [`SourceCapabilities::large_result_rows`] rows of the generated series (see
//! [`SeriesSpec`]) and once twice as many. Each child creates the series, resets its peak RSS
//! (`/proc/self/clear_refs`), reads the whole result, and reports how much its peak RSS
//! (`VmHWM`) grew. The parent asserts that doubling the result added less than a quarter of
//! the added Arrow bytes to that growth: a source may need a constant (buffers, Parquet row
//! groups read ahead) but not memory that follows the result.
//! Other tests running in parallel in the parent process cannot disturb the measurement.
//!
//! # The contract, case by case
//!
//! See [`cases`]: each public function there is one test, and its doc says what it asserts.

pub mod cases;
mod memory;
mod proxy;
mod server;
mod values;

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use backflow_connector_core::{CanonicalType, Source};

pub use memory::{memory_probe_requested, MemoryReport};
pub use proxy::FaultProxy;
pub use server::{server_url, through_proxy, upstream_of};
pub use values::{sample_columns, SampleColumn};

use crate::{HarnessResult, Row};

/// Rows of the large result when a harness does not say otherwise: with a
/// [`SeriesSpec::payload_width`] of 200 bytes, about 100 MiB of Arrow data (the memory case
/// also reads twice as many).
pub const DEFAULT_LARGE_RESULT_ROWS: u64 = 500_000;

/// The smallest [`SourceCapabilities::large_result_rows`] the suite accepts (about 33 MiB of
/// Arrow data): below that, allocator noise would dominate the memory measurement.
pub const MIN_LARGE_RESULT_ROWS: u64 = 160_000;

/// Rows of the table read through a [`FaultProxy`] in the connection-cut case (about 20 MiB,
/// far more than the proxy lets through before it cuts).
pub const CUT_RESULT_ROWS: u64 = 100_000;

/// Width in bytes of the `payload` column of every [`SeriesSpec`].
pub const PAYLOAD_WIDTH: usize = 200;

/// One column of a [`TableSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestColumn {
    /// The column name: lowercase ASCII letters, digits and `_`, safe unquoted everywhere.
    pub name: String,
    /// Its canonical type; the harness picks the warehouse's native type for it (for example
    /// `Decimal { precision: 38, scale: 9 }` → `NUMERIC(38,9)` / `NUMBER(38,9)`, `Json` →
    /// `jsonb` / `VARIANT` / `JSON` / `SUPER`).
    pub ty: CanonicalType,
}

/// A table the suite wants in the warehouse: typed columns and the rows to put in them.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// A fresh table name no other test uses: lowercase ASCII, digits and `_`, at most 40
    /// characters. The harness may qualify it (`public.<name>`, a dataset) or use it as a file
    /// name.
    pub name: String,
    /// The columns, in the order the query must return them. The first is always `id`
    /// (`Int64`, never NULL, unique); every other column is nullable.
    pub columns: Vec<TestColumn>,
    /// The rows, as maps of column name → canonical JSON value (see the module docs); every
    /// row holds every column (NULL as `null`). May be empty.
    pub rows: Vec<Row>,
    /// The same rows as one Arrow batch of the canonical types (JSON as `Utf8` tagged
    /// `arrow.json`, UUID as `FixedSizeBinary(16)` tagged `arrow.uuid`), for harnesses that
    /// write files or seed through an API taking typed values.
    pub batch: RecordBatch,
}

impl TableSpec {
    /// The Arrow schema of [`TableSpec::batch`].
    pub fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }
}

/// A large, generated table: `rows` rows of two columns, for the streaming, memory and
/// connection cases.
///
/// - `id`: a 64-bit integer (any integer type, or a decimal with scale 0, is accepted), every
///   value of `1..=rows` exactly once, in any order;
/// - `payload`: text of exactly `payload_width` ASCII bytes per row, any content (for example
///   `lpad(id::text, 200, 'x')` or `repeat('x', 200)`).
///
/// Generate it in the warehouse when possible (`generate_series`, `seq_1_to_N`, `range()`,
/// `GENERATE_ARRAY`), as a table or directly as the returned query, as long as the query is
/// recognisable for [`SourceHarness::kill_session`] (a unique table name, or [`SeriesSpec::name`]
/// as a column alias or comment).
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    /// A fresh name, as in [`TableSpec::name`].
    pub name: String,
    /// How many rows.
    pub rows: u64,
    /// Bytes of `payload` per row ([`PAYLOAD_WIDTH`]).
    pub payload_width: usize,
}

impl SeriesSpec {
    /// The Arrow size of the whole result in bytes: per row, 8 for `id`, the payload, and its
    /// 4-byte string offset. The memory case compares peak memory against it.
    pub fn arrow_bytes(&self) -> u64 {
        self.rows * (8 + self.payload_width as u64 + 4)
    }
}

/// What a harness created: the source that reads it and the query to run.
#[derive(Clone)]
pub struct TestTable {
    /// The source under test, configured to see this table (sources whose config lists
    /// tables, like `files`, get a source built for it; the others return the same one).
    pub source: Arc<dyn Source>,
    /// The query that returns the table's columns in [`TableSpec::columns`] order, under those
    /// exact names (row order does not matter; the suite sorts by `id`).
    pub query: String,
    /// The [`TableSpec::name`] or [`SeriesSpec::name`] it was created from, so
    /// [`SourceHarness::drop_table`] and [`SourceHarness::kill_session`] can find it.
    pub name: String,
}

impl std::fmt::Debug for TestTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTable")
            .field("query", &self.query)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How a source yields a column of a canonical type, per [`SourceHarness::type_support`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeSupport {
    /// After canonicalisation the column has exactly this type, and its values round-trip.
    Exact,
    /// After canonicalisation the column has this other canonical type (`Int16` → `Int64` in
    /// BigQuery, `Float32` → `Float64` in Snowflake, `Uuid` → `Text` where the warehouse has no
    /// UUID type); values must still equal the written ones when read as the original type.
    As(CanonicalType),
    /// The source cannot produce this type; the harness creates no column for it. The reason
    /// is asserted non-empty so the gap is stated in the test file, not silently skipped.
    Unsupported {
        /// Why, e.g. "BigQuery has no time-zone-less TIME with microseconds".
        reason: &'static str,
    },
}

/// Whether a case applies to a source, with the reason when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies<T> {
    /// The case runs, with what it needs.
    Yes(T),
    /// The case cannot apply; the reason is asserted non-empty.
    No {
        /// Why, e.g. "files are read locally: there is no connection to lose".
        reason: &'static str,
    },
}

/// What the suite may do to a source's server, so cases adapt honestly instead of skipping.
#[derive(Debug, Clone)]
pub struct SourceCapabilities {
    /// Rows of the large result in the memory case (which also reads twice as many) and the
    /// session-kill case; at least [`MIN_LARGE_RESULT_ROWS`]. Use
    /// [`DEFAULT_LARGE_RESULT_ROWS`] unless the test server is too slow to generate that many.
    pub large_result_rows: u64,
    /// The TCP address the source's server listens on. With `Yes(upstream)` the suite runs a
    /// [`FaultProxy`] in front of it, builds a source with [`SourceHarness::source_through`],
    /// and cuts every proxied connection after the proxy forwarded 1 MiB of answers: the read
    /// must fail retryable. Every networked source supports this.
    pub cut_connection: Applies<SocketAddr>,
    /// Whether [`SourceHarness::kill_session`] can end the server session of a running read
    /// (`pg_terminate_backend`, `KILL`). Say `No` when the server has no such thing or
    /// results arrive whole before the first batch is yielded (then killing after the first
    /// batch tests nothing).
    pub kill_session: Applies<()>,
    /// Whether the test server can show that memory stays bounded: `No` only when the server
    /// itself cannot stream a large result (an emulator that answers it in one message, or
    /// takes minutes per page), with that reason; the source's own streaming is then shown
    /// by its other tests and its benchmark.
    pub bounded_memory: Applies<()>,
}

/// A query the warehouse refuses, with what its error must carry.
#[derive(Clone)]
pub struct BadQuery {
    /// The source to run it with.
    pub source: Arc<dyn Source>,
    /// The query (a syntax error, an unknown table, …).
    pub query: String,
    /// The warehouse's own error code the error must carry in `ConnectorError::code` (a
    /// SQLSTATE, a MariaDB error number, a Snowflake error code, a BigQuery reason), or `None`
    /// when the warehouse has no codes (DataFusion).
    pub code: Option<String>,
    /// A fragment of the warehouse's own message the error's message must contain.
    pub message_contains: String,
}

impl std::fmt::Debug for BadQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BadQuery")
            .field("query", &self.query)
            .field("code", &self.code)
            .field("message_contains", &self.message_contains)
            .finish_non_exhaustive()
    }
}

/// What a source's test file provides so the contract cases can run against its test server.
/// Implementations return an error only for harness failures (a broken test server), never
/// to hide a source failure.
#[async_trait]
pub trait SourceHarness: Send + Sync {
    /// Short name of the source for failure messages (`"postgres"`).
    fn name(&self) -> &'static str;

    /// The connection type under test: the suite compares what it reads at the timestamp
    /// precision the connector describes for itself.
    fn connector(&self) -> &'static dyn backflow_connector_core::Connector;

    /// What the suite may do to the test server.
    fn capabilities(&self) -> SourceCapabilities;

    /// How the source yields a column of `ty`; defaults to [`TypeSupport::Exact`]. Asked for
    /// every type of [`sample_columns`] before [`SourceHarness::create_table`].
    fn type_support(&self, ty: &CanonicalType) -> TypeSupport {
        let _ = ty;
        TypeSupport::Exact
    }

    /// Creates `spec` (columns with native types for their canonical types, all rows) and
    /// returns the source and query that read it. Only types the harness declared supported
    /// appear in `spec`.
    async fn create_table(&self, spec: &TableSpec) -> HarnessResult<TestTable>;

    /// Creates (or describes as a query) the generated table of `spec`.
    async fn series(&self, spec: &SeriesSpec) -> HarnessResult<TestTable>;

    /// Queries the warehouse refuses (at least one), each with the code and message fragment
    /// its error must carry.
    async fn bad_queries(&self) -> HarnessResult<Vec<BadQuery>>;

    /// The source under test configured to reach its server at `proxy` (a loopback address)
    /// instead of the real one, with everything else as usual. Called only when
    /// [`SourceCapabilities::cut_connection`] is `Yes`.
    fn source_through(&self, proxy: SocketAddr) -> HarnessResult<Arc<dyn Source>> {
        let _ = proxy;
        Err(format!("{}: source_through is not implemented", self.name()).into())
    }

    /// Ends, from the server side, the session that is reading `table` (find it by the
    /// query text, which holds the table's name): `pg_terminate_backend`, MariaDB `KILL`.
    /// Called only when [`SourceCapabilities::kill_session`] is `Yes`, after the first batch
    /// of a read arrived. Returns once the server ended it.
    async fn kill_session(&self, table: &TestTable) -> HarnessResult<()> {
        let _ = table;
        Err(format!("{}: kill_session is not implemented", self.name()).into())
    }

    /// Removes what [`SourceHarness::create_table`] or [`SourceHarness::series`] created,
    /// after a case passed; best effort (a missing table is not an error).
    async fn drop_table(&self, table: &TestTable) -> HarnessResult<()>;
}

/// Expands to one `#[tokio::test]` per source contract case, each running against the
/// harness that `$harness` (an expression, evaluated in each test's async body, so it may
/// `.await`) produces. Invoke it once, at the top level of a test file (or inside one module
/// of it).
///
/// It also expands the ignored test `source_contract_memory_probe`, which the memory case runs
/// in a child process; run on its own it does nothing.
///
/// ```ignore
/// backflow_connector_contract::source_contract_suite!(PgSourceHarness::new().await);
/// ```
#[macro_export]
macro_rules! source_contract_suite {
    ($harness:expr) => {
        $crate::source_contract_suite!(@cases $harness;
            declared_schema_matches_every_batch,
            empty_result_declares_its_schema,
            supported_types_round_trip,
            preview_returns_the_first_rows,
            query_errors_carry_the_warehouse_message_and_code,
            connection_cut_mid_stream_fails_retryable,
            killed_session_mid_stream_fails_retryable
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn large_result_streams_in_bounded_memory() {
            let harness = $harness;
            $crate::source::cases::large_result_streams_in_bounded_memory(
                &harness,
                module_path!(),
                "source_contract_memory_probe",
            )
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "run by large_result_streams_in_bounded_memory in a child process"]
        async fn source_contract_memory_probe() {
            if $crate::source::memory_probe_requested() {
                let harness = $harness;
                $crate::source::cases::memory_probe(&harness).await;
            }
        }
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::source::cases::$case(&harness).await;
            }
        )*
    };
}
