//! The BigQuery source against goccy's BigQuery emulator (`scripts/services.sh start`): type
//! mapping, both read paths (Storage Read API and the `getQueryResults` fallback), batching,
//! order, errors and lost connections.

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};
use backflow_connector_contract::source::FaultProxy;
use backflow_connector_core::types::is_json;
use backflow_connector_core::{ErrorKind, ReadOptions, Source};
use common::{read_all, unique, Emulator};
use futures::StreamExt;

/// One row of every type, then a row of NULLs.
///
/// The emulator's Storage Read API cannot serialize `TIME` ("unexpected builder type
/// *array.Time64Builder") nor `DATETIME` ("invalid timestamp string"), sends `BYTES` as the
/// bytes of their base64 text, and appends one list per element of an `ARRAY`, so the Storage
/// path is compared on [`STORAGE_TYPES`] (everything else) and this query runs on the REST
/// path.
const ALL_TYPES: &str = r#"
SELECT 1 AS id,
  CAST('-9223372036854775808' AS INT64) AS i64,
  CAST('-1.7976931348623157e308' AS FLOAT64) AS f64,
  NUMERIC '-99999999999999999999999999999.999999999' AS num,
  BIGNUMERIC '-12345678901234567890123456789012345678.12345678901234567890123456789012345678' AS big,
  TRUE AS b,
  'ünïcödé ✓ 🦀 "q" \\ \n' AS s,
  FROM_HEX('00ff10') AS y,
  DATE '2024-02-29' AS d,
  TIME '23:59:59.999999' AS t,
  DATETIME '1969-12-31 23:59:59.999999' AS dt,
  TIMESTAMP '2024-06-01 18:00:00.5+05:30' AS ts,
  JSON '{"a": [1, "two", null], "u": "ü"}' AS j,
  [3, 1, 2] AS arr,
  STRUCT(7 AS n, 'x' AS s, [DATE '2024-01-02'] AS ds, NUMERIC '1.50' AS num, FROM_HEX('ff') AS y) AS st,
  ST_GEOGPOINT(1, 2) AS g
UNION ALL
SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, [], NULL, NULL
ORDER BY id
"#;

/// [`ALL_TYPES`] without what the emulator's Storage Read API cannot serialize (`TIME`,
/// `DATETIME`, `BYTES`, `ARRAY`).
const STORAGE_TYPES: &str = r#"
SELECT 1 AS id,
  CAST('-9223372036854775808' AS INT64) AS i64,
  CAST('-1.7976931348623157e308' AS FLOAT64) AS f64,
  NUMERIC '-99999999999999999999999999999.999999999' AS num,
  BIGNUMERIC '-12345678901234567890123456789012345678.12345678901234567890123456789012345678' AS big,
  TRUE AS b,
  'ünïcödé ✓ 🦀 "q" \\ \n' AS s,
  DATE '2024-02-29' AS d,
  TIMESTAMP '2024-06-01 18:00:00.5+05:30' AS ts,
  JSON '{"a": [1, "two", null], "u": "ü"}' AS j,
  STRUCT(7 AS n, 'x' AS s, NUMERIC '1.50' AS num, TIMESTAMP '2024-01-02 03:04:05.5 UTC' AS seen) AS st,
  ST_GEOGPOINT(1, 2) AS g
UNION ALL
SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
ORDER BY id
"#;

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&batches[0].schema(), batches).expect("batches share the schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_in_its_canonical_form() {
    let em = Emulator::from_env();
    let (schema, batches) = read_all(&em.rest_source().await, ALL_TYPES, 8192)
        .await
        .expect("read");
    let batch = concat(&batches);
    assert_eq!(batch.schema(), schema);
    assert_eq!(batch.num_rows(), 2);
    let col = |name: &str| batch.column_by_name(name).expect(name).clone();
    let field = |name: &str| schema.field_with_name(name).expect(name).clone();

    assert_eq!(col("i64").as_primitive::<Int64Type>().value(0), i64::MIN);
    assert_eq!(col("f64").as_primitive::<Float64Type>().value(0), -f64::MAX);
    assert_eq!(field("num").data_type(), &DataType::Decimal128(38, 9));
    assert_eq!(
        col("num").as_primitive::<Decimal128Type>().value(0),
        -99_999_999_999_999_999_999_999_999_999_999_999_999i128
    );
    assert_eq!(field("big").data_type(), &DataType::Utf8);
    assert_eq!(
        col("big").as_string::<i32>().value(0),
        "-12345678901234567890123456789012345678.12345678901234567890123456789012345678"
    );
    assert!(col("b").as_boolean().value(0));
    assert_eq!(
        col("s").as_string::<i32>().value(0),
        "ünïcödé ✓ 🦀 \"q\" \\ \n"
    );
    assert_eq!(col("y").as_binary::<i32>().value(0), &[0x00, 0xff, 0x10]);
    assert_eq!(col("d").as_primitive::<Date32Type>().value(0), 19_782);
    assert_eq!(
        col("t").as_primitive::<Time64MicrosecondType>().value(0),
        86_399_999_999
    );
    assert_eq!(
        field("dt").data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        col("dt")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        -1
    );
    assert_eq!(
        field("ts").data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        col("ts")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_717_245_000_500_000
    );
    assert!(is_json(&field("j")));
    let j: serde_json::Value = serde_json::from_str(col("j").as_string::<i32>().value(0)).unwrap();
    assert_eq!(j, serde_json::json!({"a": [1, "two", null], "u": "ü"}));
    assert!(is_json(&field("arr")));
    assert_eq!(col("arr").as_string::<i32>().value(0), "[3,1,2]");
    assert_eq!(col("arr").as_string::<i32>().value(1), "[]");
    assert!(is_json(&field("st")));
    let st: serde_json::Value =
        serde_json::from_str(col("st").as_string::<i32>().value(0)).unwrap();
    assert_eq!(
        st,
        serde_json::json!({"n": 7, "s": "x", "ds": ["2024-01-02"], "num": "1.5", "y": "/w=="})
    );
    assert_eq!(field("g").data_type(), &DataType::Utf8);
    assert!(col("g").as_string::<i32>().value(0).starts_with("POINT"));

    for name in [
        "i64", "f64", "num", "big", "b", "s", "y", "d", "t", "dt", "ts", "j", "st", "g",
    ] {
        assert!(col(name).is_null(1), "{name} should be NULL in row 2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_read_paths_yield_identical_batches() {
    let em = Emulator::from_env();
    let (storage_schema, storage) = read_all(&em.storage_source(), STORAGE_TYPES, 8192)
        .await
        .expect("storage read");
    let (rest_schema, rest) = read_all(&em.rest_source().await, STORAGE_TYPES, 8192)
        .await
        .expect("rest read");
    assert_eq!(storage_schema, rest_schema);
    let (storage, rest) = (concat(&storage), concat(&rest));
    for (i, field) in storage_schema.fields().iter().enumerate() {
        assert_eq!(
            storage.column(i).as_ref(),
            rest.column(i).as_ref(),
            "column {}",
            field.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_table_streams_in_batches_of_the_requested_size() {
    let em = Emulator::from_env();
    let dataset = unique("bq_batches");
    em.create_dataset(&dataset).await.unwrap();
    em.run(&format!(
        "CREATE TABLE {dataset}.t AS SELECT x AS id, CONCAT('row-', CAST(x AS STRING)) AS name \
         FROM UNNEST(GENERATE_ARRAY(1, 2500)) AS x"
    ))
    .await
    .unwrap();
    let query = format!("SELECT id, name FROM {dataset}.t");
    for source in [em.storage_source(), em.rest_source().await] {
        let (_, batches) = read_all(&source, &query, 1000).await.expect("read");
        assert!(batches.iter().all(|b| b.num_rows() <= 1000));
        let mut ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=2500).collect::<Vec<_>>());
    }
    em.drop_dataset(&dataset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_query_keeps_its_order() {
    let em = Emulator::from_env();
    let query = "SELECT x AS id FROM UNNEST(GENERATE_ARRAY(1, 3000)) AS x ORDER BY x DESC";
    let (_, batches) = read_all(&em.storage_source(), query, 700)
        .await
        .expect("read");
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, (1..=3000).rev().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_declares_its_schema() {
    let em = Emulator::from_env();
    let query = "SELECT x AS id, CAST(x AS STRING) AS name FROM UNNEST(GENERATE_ARRAY(1, 3)) AS x \
                 WHERE x > 10";
    for source in [em.storage_source(), em.rest_source().await] {
        let (schema, batches) = read_all(&source, query, 100).await.expect("read");
        assert_eq!(schema.fields().len(), 2);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_error_carries_bigquery_message_and_reason() {
    let em = Emulator::from_env();
    let e = read_all(
        &em.storage_source(),
        "SELECT no_such_column FROM UNNEST([1]) AS x",
        100,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(!e.is_retryable());
    assert!(e.message().contains("no_such_column"), "{e}");
    // The emulator reports every failed query as `jobInternalError` (Google's service says
    // `invalidQuery`); the reason is carried as it comes.
    assert_eq!(e.code(), Some("jobInternalError"));

    let missing = unique("no_such_dataset");
    let e = read_all(
        &em.storage_source(),
        &format!("SELECT * FROM {missing}.t"),
        100,
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message().contains(&missing), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writing_statement_is_refused_before_it_runs() {
    let em = Emulator::from_env();
    let dataset = unique("bq_ddl");
    em.create_dataset(&dataset).await.unwrap();
    let ddl = format!("CREATE TABLE {dataset}.t (a INT64)");
    let e = read_all(&em.storage_source(), &ddl, 100).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("must be read-only"), "{e}");
    // No job ran: the table can still be created, which fails once it exists.
    em.run(&ddl).await.expect("the refused statement never ran");
    em.drop_dataset(&dataset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_and_an_unreachable_endpoint_is_retryable() {
    let em = Emulator::from_env();
    em.storage_source().check().await.expect("check");
    let source = backflow_bigquery::validate_source(&serde_json::json!({
        "project": "test",
        "api_endpoint": "http://127.0.0.1:1",
        "storage_endpoint": "http://127.0.0.1:1",
    }))
    .unwrap();
    let started = std::time::Instant::now();
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// 50,000 rows of 200 bytes: about 10 MiB, far more than the proxies let through.
const CUT_QUERY: &str = "SELECT x AS id, REPEAT('x', 200) AS payload \
                         FROM UNNEST(GENERATE_ARRAY(1, 50000)) AS x";

/// Reads `CUT_QUERY` with `source` and asserts it failed with a retryable connectivity
/// error, never ending successfully.
async fn assert_cut_read_fails(source: &dyn Source) {
    let mut rows = 0;
    let e = match source
        .read(CUT_QUERY, ReadOptions { batch_size: 1000 })
        .await
    {
        Err(e) => e,
        Ok(mut stream) => loop {
            match stream.next().await {
                Some(Ok(batch)) => rows += batch.num_rows(),
                Some(Err(e)) => break e,
                None => panic!("the read ended successfully after {rows} rows of 50000"),
            }
        },
    };
    assert!(rows < 50_000);
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_connection_cut_mid_stream_fails_retryable() {
    let em = Emulator::from_env();
    let proxy = FaultProxy::start(em.grpc, 256 * 1024).await.unwrap();
    let source = backflow_bigquery::validate_source(&em.config(proxy.addr())).unwrap();
    assert_cut_read_fails(&source).await;
    assert!(proxy.was_cut());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_connection_cut_between_pages_fails_retryable() {
    let em = Emulator::from_env();
    let api: std::net::SocketAddr = em
        .api
        .trim_start_matches("http://")
        .parse()
        .expect("the REST URL is http://host:port");
    let proxy = FaultProxy::start(api, 1024 * 1024).await.unwrap();
    let mut config = em.config(common::serve_without_bigquery().await);
    config["api_endpoint"] = serde_json::json!(format!("http://{}", proxy.addr()));
    let source = backflow_bigquery::validate_source(&config).unwrap();
    assert_cut_read_fails(&source).await;
    assert!(proxy.was_cut());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_stops_early_and_shares_the_schema() {
    let em = Emulator::from_env();
    let source: Arc<dyn Source> = Arc::new(em.storage_source());
    let preview = source
        .preview("SELECT x AS id FROM UNNEST(GENERATE_ARRAY(1, 100)) AS x", 5)
        .await
        .expect("preview");
    assert_eq!(
        preview
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        5
    );
    assert_eq!(preview.schema.field(0).data_type(), &DataType::Int64);
    assert!(preview
        .batches
        .iter()
        .all(|b| b.column(0).null_count() == 0));
}
