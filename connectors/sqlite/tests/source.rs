//! The SQLite source against real database files in a tempdir.

mod common;

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use backflow_connector_core::{Destination, ErrorKind, ReadOptions, Source, WriteMode};
use backflow_sqlite::{validate_source, SqliteSource};
use common::{destination, exec, raw, target};
use futures::StreamExt;
use serde_json::json;

fn source(path: &std::path::Path) -> SqliteSource {
    validate_source(&json!({ "path": path.to_str().unwrap() })).unwrap()
}

async fn read_all(
    source: &SqliteSource,
    sql: &str,
    batch_size: usize,
) -> (SchemaRef, Vec<RecordBatch>) {
    let mut stream = source.read(sql, ReadOptions { batch_size }).await.unwrap();
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        assert_eq!(b.schema(), schema);
        assert!(b.num_rows() <= batch_size);
        batches.push(b);
    }
    (schema, batches)
}

#[tokio::test]
async fn schema_from_declared_types_and_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    exec(
        &path,
        "CREATE TABLE t (
            i INTEGER, big BIGINT, r REAL, f FLOAT, d DOUBLE PRECISION, s TEXT, vc VARCHAR(20),
            c CHAR(3), b BLOB, ok BOOLEAN, n NUMERIC, dt DATETIME
         );
         INSERT INTO t VALUES (1, 9223372036854775807, 1.5, 2, 3.25, 'é', 'v', 'abc', x'00ff', 1, 12.5, '2024-01-02 03:04:05');
         INSERT INTO t VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL);",
    )
    .await;
    let src = source(&path);
    src.check().await.unwrap();
    let (schema, batches) = read_all(
        &src,
        "SELECT t.*, i + 1 AS expr_int, r * 2 AS expr_real, s || '!' AS expr_text, \
         NULL AS expr_null, x'01' AS expr_blob, \
         CASE WHEN i IS NULL THEN 7 END AS late_int, \
         CASE WHEN i IS NULL THEN 2.5 ELSE 1 END AS mixed FROM t ORDER BY i IS NULL, i",
        10,
    )
    .await;
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("i", &DataType::Int64),
            ("big", &DataType::Int64),
            ("r", &DataType::Float64),
            ("f", &DataType::Float64),
            ("d", &DataType::Float64),
            ("s", &DataType::Utf8),
            ("vc", &DataType::Utf8),
            ("c", &DataType::Utf8),
            ("b", &DataType::Binary),
            ("ok", &DataType::Boolean),
            // sqlx cannot tell NUMERIC from "no declared type": inferred from the values.
            ("n", &DataType::Float64),
            ("dt", &DataType::Utf8),
            ("expr_int", &DataType::Int64),
            ("expr_real", &DataType::Float64),
            ("expr_text", &DataType::Utf8),
            ("expr_null", &DataType::Utf8),
            ("expr_blob", &DataType::Binary),
            ("late_int", &DataType::Int64),
            ("mixed", &DataType::Float64),
        ]
    );
    let batch = concat_batches(&schema, &batches).unwrap();
    assert_eq!(batch.num_rows(), 2);
    let col = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
    assert_eq!(col("big").as_primitive::<Int64Type>().value(0), i64::MAX);
    assert_eq!(col("f").as_primitive::<Float64Type>().value(0), 2.0);
    assert_eq!(col("s").as_string::<i32>().value(0), "é");
    assert_eq!(col("b").as_binary::<i32>().value(0), &[0u8, 255]);
    let ok = col("ok");
    let ok = ok.as_any().downcast_ref::<BooleanArray>().unwrap();
    assert!(ok.value(0) && !ok.value(1));
    assert_eq!(col("n").as_primitive::<Float64Type>().value(0), 12.5);
    assert_eq!(col("late_int").as_primitive::<Int64Type>().value(1), 7);
    assert_eq!(col("mixed").as_primitive::<Float64Type>().value(0), 1.0);
    assert_eq!(col("dt").as_string::<i32>().value(0), "2024-01-02 03:04:05");
    assert_eq!(col("expr_text").as_string::<i32>().value(0), "é!");
    for name in ["i", "r", "s", "b", "n", "expr_int", "expr_null"] {
        assert!(col(name).is_null(1), "{name}");
    }
}

#[tokio::test]
async fn streams_batches_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    exec(
        &path,
        "CREATE TABLE n (id INTEGER PRIMARY KEY, label TEXT);
         WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 25000)
         INSERT INTO n SELECT x, 'row ' || x FROM seq;",
    )
    .await;
    let src = source(&path);
    let (_, batches) = read_all(&src, "SELECT id, label FROM n ORDER BY id", 1000).await;
    assert_eq!(batches.len(), 25);
    let total: i64 = batches
        .iter()
        .map(|b| {
            b.column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(total, 25000 * 25001 / 2);

    // An empty result still declares its schema.
    let (schema, batches) = read_all(&src, "SELECT id, label FROM n WHERE id < 0", 1000).await;
    assert_eq!(schema.fields().len(), 2);
    assert!(batches.is_empty());

    // Dropping the stream early stops the reader.
    let mut stream = src
        .read("SELECT * FROM n", ReadOptions { batch_size: 10 })
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().num_rows(), 10);
    drop(stream);

    let preview = src.preview("SELECT * FROM n ORDER BY id", 3).await.unwrap();
    assert_eq!(
        preview
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        3
    );
}

#[tokio::test]
async fn query_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    exec(&path, "CREATE TABLE t (id INTEGER)").await;
    let src = source(&path);

    let e = src
        .read("SELEC id FROM t", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("near \"SELEC\": syntax error"), "{e}");

    let e = src
        .read("SELECT * FROM missing", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("no such table: missing"), "{e}");

    // A source never writes.
    let e = src
        .read("DELETE FROM t", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");

    // A value that does not fit the column's type fails the read, naming the column.
    exec(&path, "INSERT INTO t VALUES (1), ('x')").await;
    let mut stream = src
        .read("SELECT id FROM t ORDER BY rowid", ReadOptions::default())
        .await
        .unwrap();
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Data);
    assert_eq!(e.column(), Some("id"));

    // A missing file is not created by a source.
    let missing = dir.path().join("missing.db");
    let e = source(&missing).check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!missing.exists());
    let e = source(&missing)
        .read("SELECT 1", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn reads_back_what_the_destination_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("f", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(Float64Array::from(vec![
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                None,
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
            Arc::new(StringArray::from(vec![
                Some(""),
                Some("ünï"),
                None,
                Some("x"),
            ])),
            Arc::new(BinaryArray::from(vec![
                Some(&b""[..]),
                Some(&[1u8][..]),
                None,
                Some(&[0u8][..]),
            ])),
        ],
    )
    .unwrap();
    let dest = destination(&path);
    let mut w = dest
        .open(&target("t", schema, &["id"], WriteMode::Upsert, true))
        .await
        .unwrap();
    w.write(&batch).await.unwrap();
    w.close().await.unwrap();
    // The destination leaves the file in WAL mode.
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");

    let (schema, batches) = read_all(&source(&path), "SELECT * FROM t ORDER BY id", 100).await;
    let out = concat_batches(&schema, &batches).unwrap();
    let f = out.column(1).as_primitive::<Float64Type>();
    assert!(f.value(0).is_nan());
    assert_eq!(f.value(1), f64::INFINITY);
    assert_eq!(f.value(2), f64::NEG_INFINITY);
    assert!(f.is_null(3));
    // Booleans are stored as INTEGER 0/1 and read back as such.
    let flag = out.column(2).as_primitive::<Int64Type>();
    assert_eq!(
        (flag.value(0), flag.value(1), flag.is_null(2)),
        (1, 0, true)
    );
    let s = out.column(3).as_string::<i32>();
    assert_eq!(
        (s.value(0), s.is_null(0), s.value(1), s.is_null(2)),
        ("", false, "ünï", true)
    );
    let b = out.column(4).as_binary::<i32>();
    assert_eq!(
        (b.value(0), b.is_null(0), b.is_null(2)),
        (&b""[..], false, true)
    );
}
