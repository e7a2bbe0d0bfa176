//! The source contract cases. Each public function is one test of
//! [`source_contract_suite!`](crate::source_contract_suite); its doc says what it asserts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Field, SchemaRef};
use backflow_connector_core::types::{canonical_schema, canonicalize_batch};
use backflow_connector_core::{CanonicalType, ConnectorError, ErrorKind, ReadOptions, Source};
use futures::StreamExt;
use serde_json::Value;

use super::memory::{self, MemoryReport};
use super::values::{cell, integer, sample_columns, table_spec, SampleColumn};
use super::{
    Applies, FaultProxy, SeriesSpec, SourceHarness, TestTable, TypeSupport, CUT_RESULT_ROWS,
    MIN_LARGE_RESULT_ROWS, PAYLOAD_WIDTH,
};
use crate::{unique_name, Row};

/// How long any one read may take before the case fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Rows of the series read in many small batches by the schema case.
const SCHEMA_SERIES_ROWS: u64 = 20_000;

/// Server-to-client bytes the fault proxy forwards before it cuts.
const CUT_AFTER_BYTES: u64 = 1024 * 1024;

/// A source under test, named for messages.
fn who(h: &dyn SourceHarness) -> &'static str {
    h.name()
}

/// The sample columns the harness supports, with what each is expected to arrive as.
/// Unsupported ones must carry a reason.
fn supported_columns(h: &dyn SourceHarness) -> Vec<(SampleColumn, CanonicalType)> {
    let mut out = Vec::new();
    for column in sample_columns() {
        match h.type_support(&column.ty) {
            TypeSupport::Exact => {
                let ty = column.ty.clone();
                out.push((column, ty));
            }
            TypeSupport::As(other) => out.push((column, other)),
            TypeSupport::Unsupported { reason } => assert!(
                !reason.trim().is_empty(),
                "{}: {:?} is declared unsupported without a reason",
                who(h),
                column.ty
            ),
        }
    }
    out
}

/// Everything a successful read yielded.
struct Collected {
    declared: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// Reads `query` to its end; the first error (from `read` or the stream) fails the case.
async fn read_all(
    h: &dyn SourceHarness,
    source: &Arc<dyn Source>,
    query: &str,
    batch_size: usize,
) -> Collected {
    let read = async {
        let mut stream = source.read(query, ReadOptions { batch_size }).await?;
        let declared = stream.schema();
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        Ok::<_, ConnectorError>(Collected { declared, batches })
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected,
        Ok(Err(e)) => panic!("{}: reading {query:?} failed: {e}", who(h)),
        Err(_) => panic!("{}: reading {query:?} took over {READ_TIMEOUT:?}", who(h)),
    }
}

/// Asserts every batch has exactly the declared schema (names, types, nullability, metadata)
/// and that the declared schema canonicalises.
fn assert_batches_match(h: &dyn SourceHarness, collected: &Collected) -> SchemaRef {
    for (i, batch) in collected.batches.iter().enumerate() {
        assert_eq!(
            batch.schema().as_ref(),
            collected.declared.as_ref(),
            "{}: batch {i} does not have the schema the query declared",
            who(h)
        );
    }
    canonical_schema(&collected.declared)
        .unwrap_or_else(|e| panic!("{}: the declared schema has no canonical form: {e}", who(h)))
}

/// Asserts the declared schema names `expected` columns in order, each canonicalising to the
/// expected type.
fn assert_declared_columns(
    h: &dyn SourceHarness,
    canonical: &SchemaRef,
    expected: &[(String, CanonicalType)],
) {
    let names: Vec<&str> = canonical
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let want: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, want, "{}: declared column names", who(h));
    for (f, (name, ty)) in canonical.fields().iter().zip(expected) {
        let got = CanonicalType::of(f);
        assert_eq!(
            got.as_ref(),
            Some(ty),
            "{}: column `{name}` is declared as {} (canonical {got:?}), expected {ty:?}",
            who(h),
            f.data_type()
        );
    }
}

/// Rows of a canonicalised read keyed by `id`, each cell normalised as the spec's type.
fn read_rows(
    h: &dyn SourceHarness,
    collected: &Collected,
    spec_fields: &[Field],
) -> BTreeMap<i128, Row> {
    let precision = h.connector().capabilities().timestamp_precision;
    let mut rows = BTreeMap::new();
    for batch in &collected.batches {
        let batch = canonicalize_batch(batch)
            .unwrap_or_else(|e| panic!("{}: a batch does not canonicalise: {e}", who(h)));
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let id = integer(batch.column(0), i)
                .unwrap_or_else(|e| panic!("{}: id of row {i}: {e}", who(h)));
            let mut row = Row::new();
            for (f, spec_field) in schema.fields().iter().zip(spec_fields) {
                let column = batch
                    .column_by_name(f.name())
                    .expect("column of its schema");
                let value = cell(f, column, i)
                    .and_then(|v| crate::values::normalize(spec_field, Some(&v), precision))
                    .unwrap_or_else(|e| {
                        panic!("{}: column `{}` of id {id}: {e}", who(h), f.name())
                    });
                row.insert(f.name().clone(), value);
            }
            assert!(
                rows.insert(id, row).is_none(),
                "{}: id {id} was read twice",
                who(h)
            );
        }
    }
    rows
}

/// What a read that must fail produced.
enum Failure {
    /// `read` itself failed.
    AtStart(ConnectorError),
    /// The stream yielded `rows` rows, then the error.
    MidStream(u64, ConnectorError),
    /// The stream ended successfully after `rows` rows.
    Ended(u64),
}

/// Drains `stream` (after `already` rows) until an error or its end.
async fn drain(mut stream: backflow_connector_core::BatchStream, mut rows: u64) -> Failure {
    while let Some(item) = stream.next().await {
        match item {
            Ok(batch) => rows += batch.num_rows() as u64,
            Err(e) => return Failure::MidStream(rows, e),
        }
    }
    Failure::Ended(rows)
}

/// Asserts a lost connection surfaced as a retryable connectivity error, never as an end.
fn assert_lost_connection(h: &dyn SourceHarness, what: &str, failure: Failure, total: u64) {
    let e = match failure {
        Failure::AtStart(e) => e,
        Failure::MidStream(rows, e) => {
            assert!(
                rows < total,
                "{}: {what}: read all {total} rows, then {e}",
                who(h)
            );
            e
        }
        Failure::Ended(rows) if rows < total => panic!(
            "{}: {what}: the stream ended successfully after {rows} of {total} rows: a short \
             read that would look like deleted rows",
            who(h)
        ),
        Failure::Ended(rows) => panic!(
            "{}: {what}: the read still returned all {rows} rows, so the connection was not \
             lost mid-stream; the harness should declare this case not applicable",
            who(h)
        ),
    };
    assert_eq!(
        e.kind(),
        ErrorKind::Connectivity,
        "{}: {what}: expected a connectivity error, got {e}",
        who(h)
    );
    assert!(
        e.is_retryable(),
        "{}: {what}: the error must be retryable: {e}",
        who(h)
    );
}

/// Checks a canonicalised series batch: every `id` once, every payload of the right width.
struct SeriesCheck {
    rows: u64,
    width: usize,
    seen: Vec<u64>,
    count: u64,
}

impl SeriesCheck {
    fn new(spec: &SeriesSpec) -> Self {
        Self {
            rows: spec.rows,
            width: spec.payload_width,
            seen: vec![0; spec.rows.div_ceil(64) as usize],
            count: 0,
        }
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let batch = canonicalize_batch(batch).map_err(|e| e.to_string())?;
        let id = batch.column_by_name("id").ok_or("no `id` column")?;
        let payload = batch
            .column_by_name("payload")
            .ok_or("no `payload` column")?;
        let payload = payload
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("payload is {}, not text", payload.data_type()))?;
        for i in 0..batch.num_rows() {
            let v = integer(id, i)?;
            if v < 1 || v > i128::from(self.rows) {
                return Err(format!("id {v} outside 1..={}", self.rows));
            }
            let bit = (v - 1) as u64;
            let word = &mut self.seen[(bit / 64) as usize];
            if *word & (1 << (bit % 64)) != 0 {
                return Err(format!("id {v} read twice"));
            }
            *word |= 1 << (bit % 64);
            if payload.is_null(i) || payload.value(i).len() != self.width {
                return Err(format!(
                    "payload of id {v} is not {} bytes: {:?}",
                    self.width,
                    (!payload.is_null(i)).then(|| payload.value(i).len())
                ));
            }
        }
        self.count += batch.num_rows() as u64;
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        if self.count != self.rows {
            return Err(format!("read {} rows of {}", self.count, self.rows));
        }
        Ok(())
    }
}

fn series_spec(prefix: &str, rows: u64) -> SeriesSpec {
    SeriesSpec {
        name: unique_name(prefix),
        rows,
        payload_width: PAYLOAD_WIDTH,
    }
}

async fn create_series(h: &dyn SourceHarness, spec: &SeriesSpec) -> TestTable {
    h.series(spec)
        .await
        .unwrap_or_else(|e| panic!("{}: harness could not create {spec:?}: {e}", who(h)))
}

async fn cleanup(h: &dyn SourceHarness, table: &TestTable) {
    let _ = h.drop_table(table).await;
}

/// The schema a query declares (before any row) is exactly the schema of every batch it
/// yields, for the table of every supported type read two rows at a time and for a
/// generated series read in batches of 1,000; the declared schema has a canonical form, and
/// the series arrives complete.
pub async fn declared_schema_matches_every_batch(h: &dyn SourceHarness) {
    let columns = supported_columns(h);
    let samples: Vec<SampleColumn> = columns.iter().map(|(c, _)| c.clone()).collect();
    let spec = table_spec(unique_name("src_schema"), &samples, true);
    let table = h
        .create_table(&spec)
        .await
        .unwrap_or_else(|e| panic!("{}: harness could not create the table: {e}", who(h)));
    let collected = read_all(h, &table.source, &table.query, 2).await;
    assert_batches_match(h, &collected);
    let rows: usize = collected.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, spec.rows.len(), "{}: rows of the table", who(h));
    cleanup(h, &table).await;

    let series = series_spec("src_schema_series", SCHEMA_SERIES_ROWS);
    let table = create_series(h, &series).await;
    let collected = read_all(h, &table.source, &table.query, 1000).await;
    assert_batches_match(h, &collected);
    let mut check = SeriesCheck::new(&series);
    for batch in &collected.batches {
        check
            .push(batch)
            .unwrap_or_else(|e| panic!("{}: series: {e}", who(h)));
    }
    check
        .finish()
        .unwrap_or_else(|e| panic!("{}: series: {e}", who(h)));
    cleanup(h, &table).await;
}

/// A query with no rows still declares its columns, in order and with their types, and
/// yields no rows (empty batches, if any, have the declared schema).
pub async fn empty_result_declares_its_schema(h: &dyn SourceHarness) {
    let columns = supported_columns(h);
    let samples: Vec<SampleColumn> = columns.iter().map(|(c, _)| c.clone()).collect();
    let spec = table_spec(unique_name("src_empty"), &samples, false);
    let table = h
        .create_table(&spec)
        .await
        .unwrap_or_else(|e| panic!("{}: harness could not create the table: {e}", who(h)));
    let collected = read_all(h, &table.source, &table.query, 100).await;
    let canonical = assert_batches_match(h, &collected);
    let mut expected = vec![("id".to_string(), CanonicalType::Int64)];
    expected.extend(
        columns
            .iter()
            .map(|(c, ty)| (c.name.to_string(), ty.clone())),
    );
    assert_declared_id_and_columns(h, &canonical, &expected);
    let rows: usize = collected.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 0, "{}: an empty table yielded rows", who(h));
    cleanup(h, &table).await;
}

/// Like [`assert_declared_columns`], but the `id` column may be any integer or a decimal of
/// scale 0 (warehouses whose only integer is `NUMBER(38,0)` or `INT64`).
fn assert_declared_id_and_columns(
    h: &dyn SourceHarness,
    canonical: &SchemaRef,
    expected: &[(String, CanonicalType)],
) {
    let id = canonical.field(0);
    assert!(
        matches!(
            CanonicalType::of(id),
            Some(
                CanonicalType::Int16
                    | CanonicalType::Int32
                    | CanonicalType::Int64
                    | CanonicalType::Decimal { scale: 0, .. }
            )
        ),
        "{}: `id` is declared as {}, not an integer",
        who(h),
        id.data_type()
    );
    let mut fixed = expected.to_vec();
    fixed[0].1 = CanonicalType::of(id).expect("checked above");
    assert_declared_columns(h, canonical, &fixed);
}

/// Every supported canonical type round-trips: NULLs stay NULL (and empty strings and
/// binaries stay empty), unicode and control characters survive, decimals keep all 38
/// digits, timestamps without zone keep their wall clock, zoned timestamps keep their
/// instant, JSON keeps its structure, floats keep every bit. Each column is declared with its
/// expected canonical type ([`TypeSupport`]); types the harness declares unsupported must say
/// why.
pub async fn supported_types_round_trip(h: &dyn SourceHarness) {
    let columns = supported_columns(h);
    let samples: Vec<SampleColumn> = columns.iter().map(|(c, _)| c.clone()).collect();
    let spec = table_spec(unique_name("src_types"), &samples, true);
    let table = h
        .create_table(&spec)
        .await
        .unwrap_or_else(|e| panic!("{}: harness could not create the table: {e}", who(h)));
    let collected = read_all(h, &table.source, &table.query, 2).await;
    let canonical = assert_batches_match(h, &collected);
    let mut expected = vec![("id".to_string(), CanonicalType::Int64)];
    expected.extend(
        columns
            .iter()
            .map(|(c, ty)| (c.name.to_string(), ty.clone())),
    );
    assert_declared_id_and_columns(h, &canonical, &expected);

    let spec_schema = spec.schema();
    let spec_fields: Vec<Field> = spec_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let got = read_rows(h, &collected, &spec_fields);
    let precision = h.connector().capabilities().timestamp_precision;
    let mut mismatches = Vec::new();
    for (i, row) in spec.rows.iter().enumerate() {
        let id = i as i128 + 1;
        let Some(read) = got.get(&id) else {
            mismatches.push(format!("id {id}: row missing"));
            continue;
        };
        for f in &spec_fields {
            let want = crate::values::normalize(f, row.get(f.name()), precision)
                .expect("suite values normalise");
            let have = read.get(f.name()).cloned().unwrap_or(Value::Null);
            if want != have {
                mismatches.push(format!(
                    "id {id} column `{}`: wrote {want}, read {have}",
                    f.name()
                ));
            }
        }
    }
    assert_eq!(
        got.len(),
        spec.rows.len(),
        "{}: read {} rows, wrote {}",
        who(h),
        got.len(),
        spec.rows.len()
    );
    assert!(
        mismatches.is_empty(),
        "{}: values did not round-trip:\n{}",
        who(h),
        mismatches.join("\n")
    );
    cleanup(h, &table).await;
}

/// `preview` returns exactly the requested number of rows (of a larger result) with the
/// schema `read` declares.
pub async fn preview_returns_the_first_rows(h: &dyn SourceHarness) {
    let columns = supported_columns(h);
    let samples: Vec<SampleColumn> = columns.iter().map(|(c, _)| c.clone()).collect();
    let spec = table_spec(unique_name("src_preview"), &samples, true);
    let table = h
        .create_table(&spec)
        .await
        .unwrap_or_else(|e| panic!("{}: harness could not create the table: {e}", who(h)));
    let full = read_all(h, &table.source, &table.query, 100).await;
    let preview = tokio::time::timeout(READ_TIMEOUT, table.source.preview(&table.query, 2))
        .await
        .unwrap_or_else(|_| panic!("{}: preview took over {READ_TIMEOUT:?}", who(h)))
        .unwrap_or_else(|e| panic!("{}: preview failed: {e}", who(h)));
    assert_eq!(
        preview.schema.as_ref(),
        full.declared.as_ref(),
        "{}: preview schema differs from read's",
        who(h)
    );
    let rows: usize = preview.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 2, "{}: preview of 2 rows", who(h));
    for batch in &preview.batches {
        assert_eq!(batch.schema().as_ref(), preview.schema.as_ref());
    }
    cleanup(h, &table).await;
}

/// A query the warehouse refuses fails (from `read` or as the stream's first item) with a
/// non-retryable `Query` or `NotFound` error whose message holds the warehouse's own words
/// and whose code is the warehouse's code.
pub async fn query_errors_carry_the_warehouse_message_and_code(h: &dyn SourceHarness) {
    let bad = h
        .bad_queries()
        .await
        .unwrap_or_else(|e| panic!("{}: harness bad_queries: {e}", who(h)));
    assert!(!bad.is_empty(), "{}: give at least one bad query", who(h));
    for q in bad {
        let outcome = tokio::time::timeout(READ_TIMEOUT, async {
            match q.source.read(&q.query, ReadOptions::default()).await {
                Err(e) => Failure::AtStart(e),
                Ok(stream) => drain(stream, 0).await,
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{}: {:?} took over {READ_TIMEOUT:?}", who(h), q.query));
        let e = match outcome {
            Failure::AtStart(e) | Failure::MidStream(_, e) => e,
            Failure::Ended(rows) => panic!(
                "{}: {:?} succeeded with {rows} rows instead of failing",
                who(h),
                q.query
            ),
        };
        assert!(
            matches!(e.kind(), ErrorKind::Query | ErrorKind::NotFound),
            "{}: {:?}: expected a query error, got {e}",
            who(h),
            q.query
        );
        assert!(
            !e.is_retryable(),
            "{}: {:?}: a refused query is not retryable: {e}",
            who(h),
            q.query
        );
        assert!(
            e.message().contains(&q.message_contains),
            "{}: {:?}: the message should contain {:?}: {e}",
            who(h),
            q.query,
            q.message_contains
        );
        assert_eq!(
            e.code(),
            q.code.as_deref(),
            "{}: {:?}: the error should carry the warehouse's code: {e}",
            who(h),
            q.query
        );
    }
}

/// With the source's connection going through a [`FaultProxy`] that cuts every connection
/// after 1 MiB of answers (and refuses new ones), a read of a ~20 MiB result fails with a
/// retryable `Connectivity` error, from `read` or mid-stream, and never ends successfully.
pub async fn connection_cut_mid_stream_fails_retryable(h: &dyn SourceHarness) {
    let upstream = match h.capabilities().cut_connection {
        Applies::Yes(upstream) => upstream,
        Applies::No { reason } => {
            assert!(!reason.trim().is_empty(), "{}: say why", who(h));
            return;
        }
    };
    let series = series_spec("src_cut", CUT_RESULT_ROWS);
    let table = create_series(h, &series).await;
    let proxy = FaultProxy::start(upstream, CUT_AFTER_BYTES)
        .await
        .expect("start the fault proxy");
    let source = h
        .source_through(proxy.addr())
        .unwrap_or_else(|e| panic!("{}: harness source_through: {e}", who(h)));
    let outcome = tokio::time::timeout(READ_TIMEOUT, async {
        match source
            .read(&table.query, ReadOptions { batch_size: 1000 })
            .await
        {
            Err(e) => Failure::AtStart(e),
            Ok(stream) => drain(stream, 0).await,
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{}: the read hung for {READ_TIMEOUT:?} after its connection was cut",
            who(h)
        )
    });
    assert!(
        proxy.was_cut(),
        "{}: the proxy forwarded only {} bytes and never cut: does source_through use it?",
        who(h),
        proxy.downstream_bytes()
    );
    assert_lost_connection(h, "connection cut", outcome, series.rows);
    cleanup(h, &table).await;
}

/// A read whose server session is killed (from an admin connection) after its first batch
/// fails with a retryable `Connectivity` error and never ends successfully.
pub async fn killed_session_mid_stream_fails_retryable(h: &dyn SourceHarness) {
    let caps = h.capabilities();
    if let Applies::No { reason } = caps.kill_session {
        assert!(!reason.trim().is_empty(), "{}: say why", who(h));
        return;
    }
    let series = series_spec("src_kill", caps.large_result_rows);
    let table = create_series(h, &series).await;
    let outcome = tokio::time::timeout(READ_TIMEOUT, async {
        let mut stream = match table
            .source
            .read(&table.query, ReadOptions { batch_size: 1000 })
            .await
        {
            Err(e) => panic!("{}: the read failed before any kill: {e}", who(h)),
            Ok(stream) => stream,
        };
        let first = match stream.next().await {
            Some(Ok(batch)) => batch.num_rows() as u64,
            Some(Err(e)) => panic!("{}: the first batch failed before any kill: {e}", who(h)),
            None => panic!("{}: the series yielded no batch", who(h)),
        };
        h.kill_session(&table)
            .await
            .unwrap_or_else(|e| panic!("{}: harness kill_session: {e}", who(h)));
        drain(stream, first).await
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{}: the read hung for {READ_TIMEOUT:?} after its session was killed",
            who(h)
        )
    });
    assert_lost_connection(h, "session killed", outcome, series.rows);
    cleanup(h, &table).await;
}

/// Memory stays bounded whatever the result size: the large series is read twice, each
/// time in a fresh child process running only [`memory_probe`] (so parallel tests cannot
/// disturb the measurement), once with `large_result_rows` rows (about 100 MiB of Arrow data
/// by default) and once with twice as many. Peak resident memory may grow by a constant a
/// source needs (buffers, Parquet row groups read ahead), but doubling the result may add less
/// than a quarter of the added Arrow bytes (when it seems to, both are measured once more and
/// the lower peaks kept). Every row arrives exactly once. `module_path` and
/// `probe` name the probe test (the macro passes them).
pub async fn large_result_streams_in_bounded_memory(
    h: &dyn SourceHarness,
    module_path: &str,
    probe: &str,
) {
    if let Applies::No { reason } = h.capabilities().bounded_memory {
        assert!(!reason.trim().is_empty(), "{}: say why", who(h));
        return;
    }
    let mut small = memory::run_child(module_path, probe, 1).await;
    let mut large = memory::run_child(module_path, probe, 2).await;
    let too_much = |small: &MemoryReport, large: &MemoryReport| {
        let added = large.arrow_bytes - small.arrow_bytes;
        large.growth_bytes().saturating_sub(small.growth_bytes()) >= added / 4
    };
    if too_much(&small, &large) {
        // Scheduling on a loaded machine only ever adds to a peak (a reader thread that ran
        // ahead), never takes from it: measure both sizes once more and keep each lower peak.
        // A source whose memory follows the result fails both times.
        let again = memory::run_child(module_path, probe, 1).await;
        if again.growth_bytes() < small.growth_bytes() {
            small = again;
        }
        let again = memory::run_child(module_path, probe, 2).await;
        if again.growth_bytes() < large.growth_bytes() {
            large = again;
        }
    }
    let describe = |r: &MemoryReport| {
        format!(
            "{} rows ({} MiB of Arrow data) grew peak memory by {} MiB (from {} to {} MiB) in \
             {} ms",
            r.rows,
            r.arrow_bytes >> 20,
            r.growth_bytes() >> 20,
            r.baseline_bytes >> 20,
            r.peak_bytes >> 20,
            r.millis
        )
    };
    let report = format!("{}; {}", describe(&small), describe(&large));
    assert!(
        !too_much(&small, &large),
        "peak memory follows the result size (doubling the result may add at most {} MiB): \
         {report}",
        ((large.arrow_bytes - small.arrow_bytes) / 4) >> 20
    );
}

/// The memory case's child: creates the large series (as many rows as the parent asked),
/// resets the peak RSS, reads everything (checking every row), and reports the peak.
pub async fn memory_probe(h: &dyn SourceHarness) {
    let rows = h.capabilities().large_result_rows;
    assert!(
        rows >= MIN_LARGE_RESULT_ROWS,
        "{}: large_result_rows must be at least {MIN_LARGE_RESULT_ROWS}",
        who(h)
    );
    let rows = rows * memory::requested_scale();
    let series = series_spec("src_memory", rows);
    let table = create_series(h, &series).await;
    let mut check = SeriesCheck::new(&series);
    let started = Instant::now();
    let baseline = memory::reset_peak();
    let read = async {
        let mut stream = table
            .source
            .read(&table.query, ReadOptions::default())
            .await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            check
                .push(&batch)
                .map_err(|e| ConnectorError::internal(format!("series: {e}")))?;
        }
        Ok::<_, ConnectorError>(())
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("{}: the large read took over {READ_TIMEOUT:?}", who(h)))
        .unwrap_or_else(|e| panic!("{}: the large read failed: {e}", who(h)));
    let peak = memory::status_bytes("VmHWM");
    let millis = started.elapsed().as_millis() as u64;
    check
        .finish()
        .unwrap_or_else(|e| panic!("{}: series: {e}", who(h)));
    memory::write_report(MemoryReport {
        rows,
        arrow_bytes: series.arrow_bytes(),
        baseline_bytes: baseline,
        peak_bytes: peak,
        millis,
    });
    cleanup(h, &table).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_check_finds_duplicates_and_gaps() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Schema};
        let spec = SeriesSpec {
            name: "s".into(),
            rows: 3,
            payload_width: 2,
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("payload", DataType::Utf8, false),
        ]));
        let batch = |ids: Vec<i64>| {
            let payload: Vec<&str> = ids.iter().map(|_| "xx").collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(payload)),
                ],
            )
            .unwrap()
        };
        let mut check = SeriesCheck::new(&spec);
        check.push(&batch(vec![1, 3])).unwrap();
        assert!(check.finish().is_err());
        assert!(check.push(&batch(vec![3])).is_err());
        let mut check = SeriesCheck::new(&spec);
        check.push(&batch(vec![2, 1, 3])).unwrap();
        check.finish().unwrap();
    }

    #[test]
    fn suite_field_types_are_canonical() {
        use super::super::values::field;
        for column in sample_columns() {
            let f = field(column.name, &column.ty, true);
            assert_eq!(CanonicalType::of(&f), Some(column.ty));
        }
    }
}
