//! End-to-end tests of the `files` source over real Parquet, CSV and JSON files in a tempdir.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use backflow_connector_core::{ErrorKind, ReadOptions, Source};
use backflow_files::{validate_source, FilesSource};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::json;

fn scores_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("ltv", DataType::Float64, true),
        Field::new("segment", DataType::Utf8, true),
    ]))
}

fn scores_batch(ids: &[i64]) -> RecordBatch {
    let ltv: Vec<Option<f64>> = ids
        .iter()
        .map(|&i| {
            if i % 5 == 0 {
                None
            } else {
                Some(i as f64 * 1.5)
            }
        })
        .collect();
    let segment: Vec<Option<String>> = ids
        .iter()
        .map(|&i| {
            Some(if i % 2 == 0 {
                "even".to_string()
            } else {
                "odd".to_string()
            })
        })
        .collect();
    RecordBatch::try_new(
        scores_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Float64Array::from(ltv)),
            Arc::new(StringArray::from(segment)),
        ],
    )
    .unwrap()
}

fn write_parquet(path: &Path, batches: &[RecordBatch], row_group_size: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_size))
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batches[0].schema(),
        Some(props),
    )
    .unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
}

fn write_text(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Reads the whole result, asserting every batch carries the declared schema.
async fn query(
    source: &FilesSource,
    sql: &str,
    batch_size: usize,
) -> (SchemaRef, Vec<RecordBatch>) {
    let mut stream = source.read(sql, ReadOptions { batch_size }).await.unwrap();
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert_eq!(
            batch.schema(),
            schema,
            "batch schema differs from the declared one"
        );
        batches.push(batch);
    }
    (schema, batches)
}

async fn query_one(source: &FilesSource, sql: &str) -> RecordBatch {
    let (schema, batches) = query(source, sql, 8192).await;
    concat_batches(&schema, &batches).unwrap()
}

#[tokio::test]
async fn filters_and_joins_parquet_with_csv() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("scores.parquet"),
        &[scores_batch(&(1..=20).collect::<Vec<_>>())],
        1024,
    );
    write_text(
        &dir.path().join("customers.csv"),
        "customer_id,country\n1,FR\n2,DE\n3,FR\n4,US\n6,JP\n",
    );
    let source = validate_source(&json!({
        "base_dir": dir.path().to_str().unwrap(),
        "tables": { "scores": "scores.parquet", "customers": "customers.csv" }
    }))
    .unwrap();
    source.check().await.unwrap();

    let batch = query_one(
        &source,
        "SELECT s.customer_id, c.country, s.ltv, s.segment \
         FROM scores s JOIN customers c ON s.customer_id = c.customer_id \
         WHERE s.ltv > 2 ORDER BY s.customer_id",
    )
    .await;
    let ids: Vec<i64> = batch
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(ids, vec![2, 3, 4, 6]);
    let countries = arrow::compute::cast(batch.column(1), &DataType::Utf8).unwrap();
    let countries: Vec<&str> = countries
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(countries, vec!["DE", "FR", "US", "JP"]);
    let ltv = batch
        .column(2)
        .as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!(ltv.value(0), 3.0);
    // Parquet strings arrive as Utf8View; the engine canonicalises them.
    let segment = arrow::compute::cast(batch.column(3), &DataType::Utf8).unwrap();
    assert_eq!(segment.as_string::<i32>().value(0), "even");

    // NULLs survive: id 5 has a NULL ltv.
    let batch = query_one(
        &source,
        "SELECT count(*) AS n FROM scores WHERE ltv IS NULL",
    )
    .await;
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 4);

    // CTE names are not table references.
    let batch = query_one(
        &source,
        "WITH big AS (SELECT customer_id FROM scores WHERE ltv > 20) SELECT count(*) FROM big",
    )
    .await;
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 5);

    // Qualified references to the default schema resolve too.
    let batch = query_one(&source, "SELECT count(*) FROM public.scores").await;
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 20);
}

#[tokio::test]
async fn reads_a_glob_and_a_directory_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("scores");
    write_parquet(
        &parts.join("part-0.parquet"),
        &[scores_batch(&[1, 2, 3])],
        1024,
    );
    write_parquet(
        &parts.join("part-1.parquet"),
        &[scores_batch(&[4, 5])],
        1024,
    );
    write_parquet(
        &parts.join("part-2.parquet"),
        &[scores_batch(&[6, 7, 8, 9])],
        1024,
    );
    // Neither the glob nor the directory listing may pick these up.
    write_text(&parts.join("_SUCCESS"), "");
    write_text(&parts.join("notes.txt"), "not data");

    let source = validate_source(&json!({
        "tables": {
            "by_glob": format!("{}/scores/*.parquet", dir.path().display()),
            "by_dir": { "path": format!("{}/scores/", dir.path().display()), "format": "parquet" },
            "by_url": format!("file://{}/scores/part-1.parquet", dir.path().display()),
        }
    }))
    .unwrap();
    source.check().await.unwrap();
    for (table, expected) in [("by_glob", 9), ("by_dir", 9), ("by_url", 2)] {
        let batch = query_one(
            &source,
            &format!("SELECT count(*), sum(customer_id) FROM {table}"),
        )
        .await;
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>().value(0),
            expected,
            "{table}"
        );
    }
    let batch = query_one(&source, "SELECT sum(customer_id) FROM by_glob").await;
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 45);
}

#[tokio::test]
async fn csv_options_and_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    write_text(&dir.path().join("people.txt"), "1;Zoé;3.5\n2;Ümit;\n");
    write_text(
        &dir.path().join("events.ndjson"),
        "{\"id\": 1, \"kind\": \"open\"}\n{\"id\": 2, \"kind\": \"click\"}\n{\"id\": 3, \"kind\": null}\n",
    );
    let source = validate_source(&json!({
        "base_dir": dir.path().to_str().unwrap(),
        "tables": {
            "people": { "path": "people.txt", "format": "csv", "has_header": false, "delimiter": ";" },
            "events": "events.ndjson"
        }
    }))
    .unwrap();
    let batch = query_one(
        &source,
        "SELECT column_1, column_2 FROM people ORDER BY column_1",
    )
    .await;
    assert_eq!(batch.num_rows(), 2);
    let names = arrow::compute::cast(batch.column(1), &DataType::Utf8).unwrap();
    assert_eq!(names.as_string::<i32>().value(0), "Zoé");
    assert_eq!(names.as_string::<i32>().value(1), "Ümit");

    let batch = query_one(
        &source,
        "SELECT id, kind FROM events WHERE kind IS NOT NULL ORDER BY id",
    )
    .await;
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(1), 2);
}

#[tokio::test]
async fn declared_schema_matches_batches() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("s.parquet"),
        &[scores_batch(&(0..100).collect::<Vec<_>>())],
        10,
    );
    let source = validate_source(&json!({
        "tables": { "s": dir.path().join("s.parquet").to_str().unwrap() }
    }))
    .unwrap();
    // `query` asserts every batch's schema equals the declared one.
    let (schema, batches) = query(
        &source,
        "SELECT customer_id, ltv * 2 AS double_ltv, upper(segment) AS seg, \
         CAST(customer_id AS DECIMAL(10, 2)) AS d FROM s WHERE customer_id % 3 = 0",
        7,
    )
    .await;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["customer_id", "double_ltv", "seg", "d"]);
    assert_eq!(schema.field(3).data_type(), &DataType::Decimal128(10, 2));
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 34);
    assert!(batches.iter().all(|b| b.num_rows() <= 7));

    // Canonicalisation (what the engine does next) accepts DataFusion's types.
    for batch in &batches {
        let canonical = backflow_connector_core::types::canonicalize_batch(batch).unwrap();
        assert_eq!(canonical.schema().field(2).data_type(), &DataType::Utf8);
    }

    // An empty result still has the schema.
    let (schema, batches) = query(
        &source,
        "SELECT customer_id FROM s WHERE customer_id < 0",
        8,
    )
    .await;
    assert_eq!(schema.fields().len(), 1);
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
}

#[tokio::test]
async fn query_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("s.parquet"), &[scores_batch(&[1, 2])], 10);
    let source = validate_source(&json!({
        "tables": { "scores": dir.path().join("s.parquet").to_str().unwrap() }
    }))
    .unwrap();

    let e = source
        .read("SELEC customer_id FROM scores", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("SELEC"), "{e}");

    let e = source
        .read("SELECT nope FROM scores", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("nope"), "{e}");

    let e = source
        .read("SELECT * FROM customers", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("customers"), "{e}");
    assert!(
        e.message().contains("scores"),
        "lists the defined tables: {e}"
    );

    // A source only answers queries: no DDL, no COPY TO writing files.
    let e = source
        .read("CREATE TABLE t AS SELECT 1", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    let target = dir.path().join("out.csv");
    let e = source
        .read(
            &format!("COPY (SELECT * FROM scores) TO '{}'", target.display()),
            ReadOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(!target.exists());
}

#[tokio::test]
async fn missing_files_name_the_table_and_path() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("ok.parquet"), &[scores_batch(&[1])], 10);
    let missing = dir.path().join("missing.parquet");
    let source = validate_source(&json!({
        "tables": {
            "ok": dir.path().join("ok.parquet").to_str().unwrap(),
            "gone": missing.to_str().unwrap(),
            "empty_glob": format!("{}/*.csv", dir.path().display()),
            "no_dir": format!("{}/nowhere/*.parquet", dir.path().display()),
        }
    }))
    .unwrap();

    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("`empty_glob`") || e.message().contains("`gone`"),
        "{e}"
    );

    let e = source
        .read("SELECT * FROM gone", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("`gone`"), "{e}");
    assert!(e.message().contains(missing.to_str().unwrap()), "{e}");

    let e = source
        .read("SELECT * FROM empty_glob", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("`empty_glob`"), "{e}");

    let e = source
        .read("SELECT * FROM no_dir", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // A missing file in a table the query does not use does not matter.
    let batch = query_one(&source, "SELECT count(*) FROM ok").await;
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 1);
}

#[tokio::test]
async fn streams_a_large_result_in_bounded_batches() {
    const ROWS: i64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let chunks: Vec<RecordBatch> = (0..ROWS)
        .step_by(100_000)
        .map(|start| {
            let ids: Vec<i64> = (start..start + 100_000).collect();
            let values: Vec<f64> = ids.iter().map(|&i| i as f64 / 3.0).collect();
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("v", DataType::Float64, false),
                ])),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(Float64Array::from(values)),
                ],
            )
            .unwrap()
        })
        .collect();
    write_parquet(&path, &chunks, 100_000);
    drop(chunks);
    let source = validate_source(&json!({ "tables": { "big": path.to_str().unwrap() } })).unwrap();

    let batch_size = 10_000;
    let mut stream = source
        .read(
            "SELECT id, v FROM big WHERE id % 2 = 0",
            ReadOptions { batch_size },
        )
        .await
        .unwrap();
    let schema = stream.schema();
    let (mut batches, mut rows, mut sum) = (0usize, 0usize, 0i64);
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert_eq!(batch.schema(), schema);
        assert!(
            batch.num_rows() <= batch_size,
            "batch of {}",
            batch.num_rows()
        );
        batches += 1;
        rows += batch.num_rows();
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.null_count(), 0);
        sum += ids.values().iter().sum::<i64>();
    }
    assert_eq!(rows, (ROWS / 2) as usize);
    assert_eq!(sum, (0..ROWS).filter(|i| i % 2 == 0).sum::<i64>());
    assert!(batches >= 50, "only {batches} batches");

    // Dropping a stream half-way is fine (the engine does that on failure).
    let mut stream = source
        .read("SELECT * FROM big", ReadOptions { batch_size: 1000 })
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), 1000);
    drop(stream);
}

#[test]
fn validation_errors_name_the_field() {
    let e = validate_source(&json!({"tables": {"scores": {"path": "a.parquet", "format": "xml"}}}))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(e.field(), Some("tables.scores.format"));
    let e = validate_source(&json!({"tables": {"scores": "data/"}})).unwrap_err();
    assert_eq!(e.field(), Some("tables.scores.format"));
    let e = validate_source(&json!({"tables": {"scores": "a.csv"}, "bogus": true})).unwrap_err();
    assert!(e.message().contains("bogus"), "{e}");
}

#[tokio::test]
async fn preview_stops_early() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("s.parquet"),
        &[scores_batch(&(0..1000).collect::<Vec<_>>())],
        100,
    );
    let source = validate_source(&json!({
        "tables": { "s": dir.path().join("s.parquet").to_str().unwrap() }
    }))
    .unwrap();
    let preview = source
        .preview("SELECT * FROM s ORDER BY customer_id", 5)
        .await
        .unwrap();
    let rows: usize = preview.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 5);
    assert_eq!(preview.schema.fields().len(), 3);
}
