//! Write modes (upsert, insert, update, delete), skipped rows, no rewrite of unchanged rows,
//! and rejected rows isolated among good ones.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, SchemaRef};
use backflow_connector_core::{Destination, DestinationWriter, WriteMode, WriteOutcome};
use common::*;
use sqlx::PgConnection;

fn people_schema() -> SchemaRef {
    schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Int32, true),
    ])
}

fn people(rows: &[(i64, Option<&str>, Option<i32>)]) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    ));
    let names: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
    ));
    let scores: ArrayRef = Arc::new(Int32Array::from(
        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(people_schema(), vec![ids, names, scores]).unwrap()
}

fn keys(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(vec![Field::new("id", DataType::Int64, false)]),
        vec![Arc::new(Int64Array::from(ids.to_vec()))],
    )
    .unwrap()
}

async fn open(table: &str, mode: WriteMode) -> Box<dyn DestinationWriter> {
    let t = target(table, people_schema(), &["id"], mode, false);
    let dest = destination();
    dest.check(&t)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    dest.open(&t).await.unwrap_or_else(|e| panic!("open: {e}"))
}

async fn xmin(conn: &mut PgConnection, table: &str, id: i64) -> String {
    sqlx::query_scalar(&format!("SELECT xmin::text FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn create_people(conn: &mut PgConnection) -> String {
    let table = unique("people");
    exec(
        conn,
        &format!("CREATE TABLE public.{table} (id int8 PRIMARY KEY, name text, score int4, note text DEFAULT 'untouched')"),
    )
    .await;
    table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_inserts_updates_and_leaves_unchanged_rows_alone() {
    let mut admin = admin().await;
    let table = create_people(&mut admin).await;
    let object = format!("public.{table}");
    let mut w = open(&object, WriteMode::Upsert).await;
    let out = w
        .write(&people(&[
            (1, Some("ann"), Some(10)),
            (2, Some("bob"), None),
        ]))
        .await
        .unwrap();
    assert_eq!(out, WriteOutcome::default());
    let x1 = xmin(&mut admin, &table, 1).await;
    let x2 = xmin(&mut admin, &table, 2).await;

    let out = w
        .write(&people(&[
            (1, Some("ann"), Some(10)), // unchanged
            (2, Some("bob"), Some(7)),  // changed (NULL → 7)
            (3, Some("cy"), Some(1)),   // new
        ]))
        .await
        .unwrap();
    assert_eq!(out, WriteOutcome::default());
    assert_eq!(
        xmin(&mut admin, &table, 1).await,
        x1,
        "unchanged row rewritten"
    );
    assert_ne!(
        xmin(&mut admin, &table, 2).await,
        x2,
        "changed row not rewritten"
    );
    w.close().await.unwrap();
    assert_eq!(
        rows(
            &mut admin,
            &format!("SELECT id, name, score, note FROM {table}")
        )
        .await,
        vec![
            "(1,ann,10,untouched)",
            "(2,bob,7,untouched)",
            "(3,cy,1,untouched)"
        ]
    );
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_skips_existing_keys() {
    let mut admin = admin().await;
    let table = create_people(&mut admin).await;
    exec(
        &mut admin,
        &format!("INSERT INTO {table} VALUES (1, 'ann', 10), (2, 'bob', 20)"),
    )
    .await;
    let mut w = open(&table, WriteMode::Insert).await;
    let out = w
        .write(&people(&[
            (5, Some("eve"), Some(5)),
            (2, Some("BOB"), Some(99)),
            (4, Some("dan"), None),
            (1, Some("ANN"), Some(0)),
        ]))
        .await
        .unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.skipped, vec![1, 3]);
    assert_eq!(out.applied(4), 2);
    w.close().await.unwrap();
    assert_eq!(
        rows(&mut admin, &format!("SELECT id, name, score FROM {table}")).await,
        vec!["(1,ann,10)", "(2,bob,20)", "(4,dan,)", "(5,eve,5)"]
    );
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_never_creates_and_reports_missing_keys() {
    let mut admin = admin().await;
    let table = create_people(&mut admin).await;
    exec(
        &mut admin,
        &format!("INSERT INTO {table} VALUES (1, 'ann', 10), (2, 'bob', 20)"),
    )
    .await;
    let x2 = xmin(&mut admin, &table, 2).await;
    let mut w = open(&table, WriteMode::Update).await;
    let out = w
        .write(&people(&[
            (9, Some("zed"), Some(9)),
            (1, Some("ANN"), Some(11)),
            (2, Some("bob"), Some(20)), // unchanged
        ]))
        .await
        .unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.skipped, vec![0]);
    assert_eq!(
        xmin(&mut admin, &table, 2).await,
        x2,
        "unchanged row rewritten"
    );
    w.close().await.unwrap();
    assert_eq!(
        rows(&mut admin, &format!("SELECT id, name, score FROM {table}")).await,
        vec!["(1,ANN,11)", "(2,bob,20)"]
    );
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_keys_and_ignores_missing_ones() {
    let mut admin = admin().await;
    let table = create_people(&mut admin).await;
    exec(
        &mut admin,
        &format!("INSERT INTO {table} VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 30)"),
    )
    .await;
    let mut w = open(&table, WriteMode::Upsert).await;
    let out = w.delete(&keys(&[42, 1, 3])).await.unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(
        out.skipped,
        vec![0],
        "the missing key is reported, not failed"
    );
    // Writes after deletes still work on the same connection.
    let out = w.write(&people(&[(1, Some("back"), None)])).await.unwrap();
    assert_eq!(out, WriteOutcome::default());
    w.close().await.unwrap();
    assert_eq!(
        rows(&mut admin, &format!("SELECT id, name FROM {table}")).await,
        vec!["(1,back)", "(2,bob)"]
    );
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_and_key_only_tables() {
    let mut admin = admin().await;
    let table = unique("pairs");
    exec(
        &mut admin,
        &format!("CREATE TABLE {table} (a int8, b text, PRIMARY KEY (b, a))"),
    )
    .await;
    let s = schema(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Utf8, false),
    ]);
    let batch = RecordBatch::try_new(
        s.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2])),
            Arc::new(StringArray::from(vec!["x", "y", "x"])),
        ],
    )
    .unwrap();
    let t = target(&table, s, &["a", "b"], WriteMode::Upsert, false);
    let dest = destination();
    dest.check(&t).await.unwrap();
    let mut w = dest.open(&t).await.unwrap();
    assert_eq!(w.write(&batch).await.unwrap(), WriteOutcome::default());
    assert_eq!(w.write(&batch).await.unwrap(), WriteOutcome::default());
    let del = RecordBatch::try_new(
        batch.schema(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["y"])),
        ],
    )
    .unwrap();
    assert_eq!(w.delete(&del).await.unwrap(), WriteOutcome::default());
    w.close().await.unwrap();
    assert_eq!(
        rows(&mut admin, &format!("SELECT a, b FROM {table}")).await,
        vec!["(1,x)", "(2,x)"]
    );
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

/// Constraints of every kind refuse a few rows of a batch; exactly those come back as
/// failures with the database's message, and every other row is written.
async fn rejected_rows(mode: WriteMode, initial_load: bool) {
    let mut admin = admin().await;
    let parent = unique("parent");
    let child = unique("child");
    exec(
        &mut admin,
        &format!("CREATE TABLE {parent} (id int8 PRIMARY KEY)"),
    )
    .await;
    exec(&mut admin, &format!("INSERT INTO {parent} VALUES (1), (2)")).await;
    // With initial_load every column has its native type, so the direct COPY is tried first
    // (and fails, being all or nothing); the length limit is then a CHECK on a text column.
    let code = if initial_load {
        "text CONSTRAINT code_length CHECK (char_length(code) <= 3)"
    } else {
        "varchar(3)"
    };
    exec(
        &mut admin,
        &format!(
            "CREATE TABLE {child} (id int8 PRIMARY KEY, name text NOT NULL, \
             score int4 CHECK (score >= 0), parent_id int8 REFERENCES {parent}(id), \
             code {code})"
        ),
    )
    .await;
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Int32, true),
        Field::new("parent_id", DataType::Int64, true),
        Field::new("code", DataType::Utf8, true),
    ]);
    type Row = (i64, Option<&'static str>, i32, i64, &'static str);
    let data: Vec<Row> = vec![
        (0, Some("a"), 1, 1, "ok"),
        (1, Some("b"), 1, 2, "ok"),
        (2, None, 1, 1, "ok"), // NOT NULL
        (3, Some("d"), 1, 1, "ok"),
        (4, Some("e"), 1, 1, "ok"),
        (5, Some("f"), -1, 1, "ok"), // CHECK
        (6, Some("g"), 1, 1, "ok"),
        (7, Some("h"), 1, 99, "ok"),        // FOREIGN KEY
        (8, Some("i"), 1, 1, "toolong"),    // varchar(3)
        (9, Some("nul\0byte"), 1, 1, "ok"), // refused by the COPY itself
        (10, Some("k"), 1, 2, "ok"),
    ];
    let batch = RecordBatch::try_new(
        s.clone(),
        vec![
            Arc::new(Int64Array::from(
                data.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                data.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(
                data.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                data.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                data.iter().map(|r| r.4).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let mut t = target(&child, s, &["id"], mode, false);
    t.initial_load = initial_load;
    let dest = destination();
    dest.check(&t).await.unwrap();
    let mut w = dest.open(&t).await.unwrap();
    let out = w.write(&batch).await.unwrap();
    w.close().await.unwrap();

    let failed: Vec<usize> = out.failed.iter().map(|f| f.row).collect();
    assert_eq!(failed, vec![2, 5, 7, 8, 9], "{:#?}", out.failed);
    assert!(out.skipped.is_empty());
    let f = &out.failed;
    assert!(
        f[0].message.contains("violates not-null constraint"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].column.as_deref(), Some("name"));
    assert!(
        f[1].message.contains("violates check constraint"),
        "{}",
        f[1].message
    );
    assert!(
        f[2].message.contains("violates foreign key constraint"),
        "{}",
        f[2].message
    );
    let too_long = if initial_load {
        "code_length"
    } else {
        "value too long"
    };
    assert!(f[3].message.contains(too_long), "{}", f[3].message);
    assert!(f[4].message.contains("0x00"), "{}", f[4].message);
    assert_eq!(
        rows(&mut admin, &format!("SELECT id FROM {child}")).await,
        vec!["(0)", "(1)", "(10)", "(3)", "(4)", "(6)"]
    );
    exec(
        &mut admin,
        &format!("DROP TABLE {child}; DROP TABLE {parent}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_isolated_in_upsert() {
    rejected_rows(WriteMode::Upsert, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_isolated_in_insert() {
    rejected_rows(WriteMode::Insert, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_isolated_after_a_failed_direct_copy() {
    rejected_rows(WriteMode::Upsert, true).await;
}
