//! The SQLite destination against real database files in a tempdir.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use backflow_connector_core::types::{json_field, uuid_field};
use backflow_connector_core::{Destination, ErrorKind, WriteMode};
use backflow_sqlite::validate_destination;
use common::{destination, exec, raw, target};
use serde_json::json;
use sqlx::Row;

fn all_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("dec38", DataType::Decimal128(38, 10), true),
        Field::new("dec", DataType::Decimal128(7, 2), true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("txt", DataType::Utf8, true),
        Field::new("bin", DataType::Binary, true),
        Field::new("day", DataType::Date32, true),
        Field::new("tod", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "tstz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        json_field("doc"),
        uuid_field("uid"),
    ]))
}

const UUID: [u8; 16] = [
    0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f, 0xe0, 0xc8,
];

fn all_types_batch() -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        Arc::new(Int16Array::from(vec![
            Some(i16::MIN),
            Some(i16::MAX),
            Some(0),
            None,
        ])),
        Arc::new(Int32Array::from(vec![
            Some(i32::MIN),
            Some(i32::MAX),
            Some(-1),
            None,
        ])),
        Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            Some(i64::MAX),
            Some(0),
            None,
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(10_i128.pow(38) - 1),
                Some(-(10_i128.pow(38) - 1)),
                Some(-12_340),
                None,
            ])
            .with_precision_and_scale(38, 10)
            .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(vec![Some(0), Some(12_345), Some(-5), None])
                .with_precision_and_scale(7, 2)
                .unwrap(),
        ),
        Arc::new(Float32Array::from(vec![
            Some(1.5),
            Some(f32::MAX),
            Some(-0.25),
            None,
        ])),
        Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            Some(true),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some(""),
            Some("héllo wörld 🌍 日本語"),
            Some("it's \"quoted\"\n"),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&b""[..]),
            Some(&[0u8, 255, 1, 0][..]),
            Some(&b"abc"[..]),
            None,
        ])),
        Arc::new(Date32Array::from(vec![
            Some(0),
            Some(19_000),
            Some(-719_162),
            None,
        ])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            Some(86_399_999_999),
            Some(1),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(0),
            Some(1_700_000_000_123_456),
            Some(-1),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(0),
                Some(1_700_000_000_123_456),
                Some(-1),
                None,
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![
            Some(r#"{"a":[1,2,{"b":null}]}"#),
            Some("null"),
            Some(r#""é""#),
            None,
        ])),
        Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(UUID), Some([0u8; 16]), Some([0xffu8; 16]), None].into_iter(),
                16,
            )
            .unwrap(),
        ),
    ];
    RecordBatch::try_new(all_types_schema(), columns).unwrap()
}

/// Every column of every row as SQLite's `typeof()` and its value rendered by `quote()`.
async fn stored(path: &std::path::Path, table: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let mut conn = raw(path).await;
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("typeof(\"{c}\") || ':' || coalesce(CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") ELSE CAST(\"{c}\" AS TEXT) END, 'NULL')"))
        .collect();
    let sql = format!("SELECT {} FROM \"{table}\" ORDER BY 1", select.join(", "));
    let rows = sqlx::query(&sql).fetch_all(&mut conn).await.unwrap();
    rows.iter()
        .map(|r| (0..columns.len()).map(|i| r.get::<String, _>(i)).collect())
        .collect()
}

#[tokio::test]
async fn every_canonical_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let dest = destination(&path);
    let schema = all_types_schema();
    let t = target(
        "main.all_types",
        schema.clone(),
        &["id"],
        WriteMode::Upsert,
        true,
    );
    dest.check(&t).await.unwrap();
    let mut writer = dest.open(&t).await.unwrap();
    let outcome = writer.write(&all_types_batch()).await.unwrap();
    assert_eq!(outcome, Default::default());
    // Writing the same rows again changes nothing and fails nothing (NaN compares equal as text).
    let outcome = writer.write(&all_types_batch()).await.unwrap();
    assert_eq!(outcome, Default::default());
    writer.close().await.unwrap();

    // The created table follows the documented mapping.
    let mut conn = raw(&path).await;
    let declared: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info('all_types')")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let types: Vec<&str> = declared.iter().map(|(_, t, _, _)| t.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "INTEGER", "INTEGER", "INTEGER", "INTEGER", "TEXT", "TEXT", "REAL", "REAL", "INTEGER",
            "TEXT", "BLOB", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT"
        ]
    );
    assert_eq!(
        (declared[0].2, declared[0].3),
        (1, 1),
        "id is NOT NULL PRIMARY KEY"
    );

    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let rows = stored(&path, "all_types", &names).await;
    let expect = |row: usize, col: &str, value: &str| {
        let i = names.iter().position(|n| *n == col).unwrap();
        assert_eq!(rows[row][i], value, "row {row} column {col}");
    };
    expect(0, "i16", "integer:-32768");
    expect(1, "i32", "integer:2147483647");
    expect(0, "i64", "integer:-9223372036854775808");
    expect(1, "i64", "integer:9223372036854775807");
    expect(0, "dec38", "text:9999999999999999999999999999.9999999999");
    expect(1, "dec38", "text:-9999999999999999999999999999.9999999999");
    expect(2, "dec38", "text:-0.0000012340");
    expect(0, "dec", "text:0.00");
    expect(1, "dec", "text:123.45");
    expect(2, "dec", "text:-0.05");
    expect(0, "f32", "real:1.5");
    expect(0, "f64", "text:NaN");
    expect(1, "f64", "real:Inf");
    expect(2, "f64", "real:-Inf");
    expect(0, "flag", "integer:1");
    expect(1, "flag", "integer:0");
    expect(0, "txt", "text:");
    expect(1, "txt", "text:héllo wörld 🌍 日本語");
    expect(2, "txt", "text:it's \"quoted\"\n");
    expect(0, "bin", "blob:");
    expect(1, "bin", "blob:00FF0100");
    expect(0, "day", "text:1970-01-01");
    expect(1, "day", "text:2022-01-08");
    expect(2, "day", "text:0001-01-01");
    expect(0, "tod", "text:00:00:00.000000");
    expect(1, "tod", "text:23:59:59.999999");
    expect(2, "tod", "text:00:00:00.000001");
    expect(1, "ts", "text:2023-11-14 22:13:20.123456");
    expect(2, "ts", "text:1969-12-31 23:59:59.999999");
    expect(1, "tstz", "text:2023-11-14T22:13:20.123456Z");
    expect(0, "tstz", "text:1970-01-01T00:00:00.000000Z");
    expect(0, "doc", r#"text:{"a":[1,2,{"b":null}]}"#);
    expect(1, "doc", "text:null");
    expect(0, "uid", "text:67e55044-10b1-426f-9247-bb680e5fe0c8");
    expect(1, "uid", "text:00000000-0000-0000-0000-000000000000");
    expect(2, "uid", "text:ffffffff-ffff-ffff-ffff-ffffffffffff");
    // The all-NULL row is NULL everywhere (an empty string or blob is not NULL).
    for (i, name) in names.iter().enumerate().skip(1) {
        assert_eq!(rows[3][i], "null:NULL", "column {name}");
    }

    // Exact float values, including the largest f32.
    let (f32_max, inf): (f64, f64) = sqlx::query_as("SELECT f32, f64 FROM all_types WHERE id = 2")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(f32_max, f64::from(f32::MAX));
    assert_eq!(inf, f64::INFINITY);
}

#[tokio::test]
async fn write_modes_report_skips_and_leave_unchanged_rows_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    exec(
        &path,
        "CREATE TABLE scores (id INTEGER PRIMARY KEY, name TEXT, score REAL);
         CREATE TABLE audit (updates INTEGER NOT NULL);
         INSERT INTO audit VALUES (0);
         CREATE TRIGGER count_updates AFTER UPDATE ON scores
         BEGIN UPDATE audit SET updates = updates + 1; END;",
    )
    .await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let batch = |ids: &[i64], names: &[Option<&str>], scores: &[Option<f64>]| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
                Arc::new(Float64Array::from(scores.to_vec())),
            ],
        )
        .unwrap()
    };
    let updates = || async {
        let mut conn = raw(&path).await;
        sqlx::query_scalar::<_, i64>("SELECT updates FROM audit")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let contents = || async {
        let mut conn = raw(&path).await;
        sqlx::query_as::<_, (i64, Option<String>, Option<f64>)>(
            "SELECT id, name, score FROM scores ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap()
    };
    let dest = destination(&path);

    // Upsert: new keys are inserted, changed ones updated, unchanged ones not touched.
    let t = target("scores", schema.clone(), &["id"], WriteMode::Upsert, false);
    dest.check(&t).await.unwrap();
    let mut w = dest.open(&t).await.unwrap();
    let o = w
        .write(&batch(
            &[1, 2, 3],
            &[Some("a"), Some("b"), None],
            &[Some(1.0), Some(2.0), None],
        ))
        .await
        .unwrap();
    assert_eq!(o, Default::default());
    assert_eq!(updates().await, 0);
    let o = w
        .write(&batch(
            &[1, 2, 3, 4],
            &[Some("a"), Some("B"), None, Some("d")],
            &[Some(1.0), Some(2.0), None, Some(4.0)],
        ))
        .await
        .unwrap();
    assert_eq!(
        o,
        Default::default(),
        "unchanged rows are applied, not skipped"
    );
    assert_eq!(updates().await, 1, "only the changed row was rewritten");
    // A value changing to NULL is a change (IS NOT, not !=).
    let o = w.write(&batch(&[1], &[None], &[Some(1.0)])).await.unwrap();
    assert_eq!(o.applied(1), 1);
    assert_eq!(updates().await, 2);
    w.close().await.unwrap();

    // Insert: existing keys are skipped and left as they are.
    let t = target("scores", schema.clone(), &["id"], WriteMode::Insert, false);
    let mut w = dest.open(&t).await.unwrap();
    let o = w
        .write(&batch(
            &[2, 5],
            &[Some("changed"), Some("e")],
            &[Some(9.0), Some(5.0)],
        ))
        .await
        .unwrap();
    assert_eq!(o.skipped, vec![0]);
    assert!(o.failed.is_empty());
    w.close().await.unwrap();
    assert_eq!(updates().await, 2);

    // Update: missing keys are skipped and never created; unchanged rows are not rewritten.
    let t = target("scores", schema.clone(), &["id"], WriteMode::Update, false);
    let mut w = dest.open(&t).await.unwrap();
    let o = w
        .write(&batch(
            &[2, 6, 4],
            &[Some("bee"), Some("f"), Some("d")],
            &[Some(2.5), Some(6.0), Some(4.0)],
        ))
        .await
        .unwrap();
    assert_eq!(o.skipped, vec![1]);
    assert!(o.failed.is_empty());
    assert_eq!(updates().await, 3, "row 4 was unchanged");
    w.close().await.unwrap();

    assert_eq!(
        contents().await,
        vec![
            (1, None, Some(1.0)),
            (2, Some("bee".into()), Some(2.5)),
            (3, None, None),
            (4, Some("d".into()), Some(4.0)),
            (5, Some("e".into()), Some(5.0)),
        ]
    );

    // Delete: a missing key is skipped.
    let t = target("scores", schema.clone(), &["id"], WriteMode::Upsert, false);
    let mut w = dest.open(&t).await.unwrap();
    let keys = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1, 99, 3]))],
    )
    .unwrap();
    let o = w.delete(&keys).await.unwrap();
    assert_eq!(o.skipped, vec![1]);
    assert!(o.failed.is_empty());
    w.close().await.unwrap();
    let ids: Vec<i64> = contents().await.into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, vec![2, 4, 5]);
}

#[tokio::test]
async fn composite_keys_on_a_unique_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    exec(
        &path,
        "CREATE TABLE m (\"Tenant\" TEXT NOT NULL, \"user id\" INTEGER NOT NULL, \"select\" TEXT);
         CREATE UNIQUE INDEX m_key ON m (\"user id\", \"Tenant\");",
    )
    .await;
    // Column names are matched case-insensitively, as SQLite does; keywords and spaces quoted.
    let schema = Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("user id", DataType::Int64, false),
        Field::new("select", DataType::Utf8, true),
    ]));
    let dest = destination(&path);
    let t = target(
        "m",
        schema.clone(),
        &["tenant", "user id"],
        WriteMode::Upsert,
        false,
    );
    dest.check(&t).await.unwrap();
    let mut w = dest.open(&t).await.unwrap();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "a", "b"])),
            Arc::new(Int64Array::from(vec![1, 2, 1])),
            Arc::new(StringArray::from(vec!["x", "y", "z"])),
        ],
    )
    .unwrap();
    assert_eq!(w.write(&batch).await.unwrap(), Default::default());
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(StringArray::from(vec!["Y"])),
        ],
    )
    .unwrap();
    assert_eq!(w.write(&batch).await.unwrap(), Default::default());
    let keys = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("user id", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["b", "b"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    assert_eq!(w.delete(&keys).await.unwrap().skipped, vec![1]);
    w.close().await.unwrap();
    let mut conn = raw(&path).await;
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT \"Tenant\", \"user id\", \"select\" FROM m ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![("a".into(), 1, "x".into()), ("a".into(), 2, "Y".into())]
    );
}

#[tokio::test]
async fn rejected_rows_carry_sqlite_message_and_the_rest_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    exec(
        &path,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         INSERT INTO parent VALUES (1);
         CREATE TABLE child (
             id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             qty INTEGER CHECK (qty >= 0),
             parent_id INTEGER REFERENCES parent (id)
         );
         CREATE TABLE late (
             id INTEGER PRIMARY KEY,
             parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
         );",
    )
    .await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("qty", DataType::Int64, true),
        Field::new("parent_id", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec![
                Some("ok"),
                None,
                Some("neg"),
                Some("orphan"),
                Some("ok too"),
            ])),
            Arc::new(Int64Array::from(vec![1, 1, -1, 1, 2])),
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(1),
                Some(1),
                Some(42),
                None,
            ])),
        ],
    )
    .unwrap();
    let dest = destination(&path);
    let t = target("child", schema.clone(), &["id"], WriteMode::Upsert, false);
    let mut w = dest.open(&t).await.unwrap();
    let o = w.write(&batch).await.unwrap();
    let failed: Vec<(usize, Option<&str>, &str)> = o
        .failed
        .iter()
        .map(|f| (f.row, f.column.as_deref(), f.message.as_str()))
        .collect();
    assert_eq!(
        failed,
        vec![
            (1, Some("name"), "NOT NULL constraint failed: child.name"),
            (2, None, "CHECK constraint failed: qty >= 0"),
            (3, None, "FOREIGN KEY constraint failed"),
        ]
    );
    assert!(o.skipped.is_empty());
    assert_eq!(o.applied(5), 2);

    // Deleting a referenced parent is refused per row as well.
    let parents = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let tp = target("parent", parents.clone(), &["id"], WriteMode::Upsert, false);
    let mut wp = dest.open(&tp).await.unwrap();
    let keys = RecordBatch::try_new(parents, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    let o = wp.delete(&keys).await.unwrap();
    assert_eq!(o.failed.len(), 1);
    assert_eq!(o.failed[0].message, "FOREIGN KEY constraint failed");
    wp.close().await.unwrap();
    w.close().await.unwrap();

    // A deferred foreign key fails at COMMIT; the writer isolates the offending row.
    let late = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("parent_id", DataType::Int64, true),
    ]));
    let tl = target("late", late.clone(), &["id"], WriteMode::Upsert, false);
    let mut wl = dest.open(&tl).await.unwrap();
    let batch = RecordBatch::try_new(
        late,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Int64Array::from(vec![1, 42, 1])),
        ],
    )
    .unwrap();
    let o = wl.write(&batch).await.unwrap();
    assert_eq!(o.failed.len(), 1);
    assert_eq!(o.failed[0].row, 1);
    assert!(
        o.failed[0].message.contains("FOREIGN KEY"),
        "{:?}",
        o.failed
    );
    wl.close().await.unwrap();

    let mut conn = raw(&path).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM child ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 5]);
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM late ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 3]);
    let parents: i64 = sqlx::query_scalar("SELECT count(*) FROM parent")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(parents, 1);
}

#[tokio::test]
async fn check_reports_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    exec(
        &path,
        "CREATE TABLE keyed (id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE unkeyed (id INTEGER, v TEXT);
         CREATE TABLE wide_key (id INTEGER, v TEXT, UNIQUE (id, v));
         CREATE TABLE partial_key (id INTEGER, v TEXT);
         CREATE UNIQUE INDEX partial_key_id ON partial_key (id) WHERE id > 0;",
    )
    .await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]));
    let dest = destination(&path);
    dest.check(&target(
        "keyed",
        schema.clone(),
        &["id"],
        WriteMode::Upsert,
        false,
    ))
    .await
    .unwrap();

    let e = dest
        .check(&target(
            "nope",
            schema.clone(),
            &["id"],
            WriteMode::Upsert,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("main.nope"), "{e}");
    let e = dest
        .open(&target(
            "nope",
            schema.clone(),
            &["id"],
            WriteMode::Upsert,
            false,
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    dest.check(&target(
        "nope",
        schema.clone(),
        &["id"],
        WriteMode::Upsert,
        true,
    ))
    .await
    .unwrap();

    let extra = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
        Field::new("churn_risk", DataType::Float64, true),
    ]));
    let e = dest
        .check(&target("keyed", extra, &["id"], WriteMode::Upsert, false))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert_eq!(e.column(), Some("churn_risk"));

    for table in ["unkeyed", "wide_key", "partial_key"] {
        let e = dest
            .check(&target(
                table,
                schema.clone(),
                &["id"],
                WriteMode::Upsert,
                false,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema, "{table}: {e}");
        assert!(e.message().contains("PRIMARY KEY or UNIQUE"), "{e}");
    }
    // The wide key is fine when the sync's key is exactly it.
    dest.check(&target(
        "wide_key",
        schema.clone(),
        &["v", "id"],
        WriteMode::Upsert,
        false,
    ))
    .await
    .unwrap();

    let e = dest
        .check(&target(
            "keyed",
            schema.clone(),
            &["missing"],
            WriteMode::Upsert,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert_eq!(e.column(), Some("missing"));

    let odd = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("span", DataType::Duration(TimeUnit::Second), true),
    ]));
    let e = dest
        .check(&target("keyed", odd, &["id"], WriteMode::Upsert, false))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert_eq!(e.column(), Some("span"));

    // A missing file: fine when it may be created with the table, not otherwise.
    let fresh = dir.path().join("fresh.db");
    let d = destination(&fresh);
    d.check(&target(
        "t",
        schema.clone(),
        &["id"],
        WriteMode::Upsert,
        true,
    ))
    .await
    .unwrap();
    assert!(!fresh.exists(), "check creates nothing");
    let e = d
        .check(&target(
            "t",
            schema.clone(),
            &["id"],
            WriteMode::Upsert,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let d =
        validate_destination(&json!({"path": fresh.to_str().unwrap(), "create_if_missing": false}))
            .unwrap();
    let e = d
        .check(&target(
            "t",
            schema.clone(),
            &["id"],
            WriteMode::Upsert,
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.field(), Some("path"));
    let e = d
        .open(&target("t", schema, &["id"], WriteMode::Upsert, true))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(!fresh.exists());
}

#[tokio::test]
async fn a_locked_database_is_a_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    exec(&path, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let dest =
        validate_destination(&json!({"path": path.to_str().unwrap(), "busy_timeout_ms": 50}))
            .unwrap();
    let mut w = dest
        .open(&target(
            "t",
            schema.clone(),
            &["id"],
            WriteMode::Upsert,
            false,
        ))
        .await
        .unwrap();

    let mut other = raw(&path).await;
    sqlx::Executor::execute(&mut other, "BEGIN IMMEDIATE")
        .await
        .unwrap();
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    let e = w.write(&batch).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    sqlx::Executor::execute(&mut other, "ROLLBACK")
        .await
        .unwrap();

    // Once the lock is gone the same writer works again.
    assert_eq!(w.write(&batch).await.unwrap(), Default::default());
    w.close().await.unwrap();
}

#[tokio::test]
async fn key_only_tables_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = |ids: Vec<i64>| {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
    };
    let dest = destination(&path);
    let mut w = dest
        .open(&target(
            "keys",
            schema.clone(),
            &["id"],
            WriteMode::Upsert,
            true,
        ))
        .await
        .unwrap();
    assert_eq!(
        w.write(&batch(vec![1, 2])).await.unwrap(),
        Default::default()
    );
    assert_eq!(
        w.write(&batch(vec![2, 3])).await.unwrap(),
        Default::default()
    );
    w.close().await.unwrap();
    let mut w = dest
        .open(&target(
            "keys",
            schema.clone(),
            &["id"],
            WriteMode::Insert,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(w.write(&batch(vec![3, 4])).await.unwrap().skipped, vec![0]);
    w.close().await.unwrap();
    let mut w = dest
        .open(&target(
            "keys",
            schema.clone(),
            &["id"],
            WriteMode::Update,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(w.write(&batch(vec![4, 5])).await.unwrap().skipped, vec![1]);
    w.close().await.unwrap();
    let mut conn = raw(&path).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM keys ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}
