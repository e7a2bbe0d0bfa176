//! The write modes against a real MariaDB: what each mode changes, what it skips (exactly),
//! rejected rows with the server's own message, deletes, and existing tables.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use backflow_connector_core::{Destination, WriteMode, WriteOutcome};
use common::*;

fn people() -> arrow::datatypes::SchemaRef {
    schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ])
}

fn batch(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
    RecordBatch::try_new(
        people(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

fn keys(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(vec![Field::new("id", DataType::Int64, false)]),
        vec![Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef],
    )
    .unwrap()
}

async fn seed(table: &str) {
    let mut w = destination()
        .open(&target(table, people(), &["id"], WriteMode::Upsert, true))
        .await
        .unwrap();
    let out = w
        .write(&batch(&[1, 2], &[Some("a"), Some("b")]))
        .await
        .unwrap();
    assert_eq!(out, WriteOutcome::default());
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_inserts_new_and_updates_existing_keys() {
    let table = unique("upsert");
    seed(&table).await;
    let mut w = destination()
        .open(&target(&table, people(), &["id"], WriteMode::Upsert, false))
        .await
        .unwrap();
    let out = w.write(&batch(&[2, 3], &[Some("B"), None])).await.unwrap();
    assert_eq!(out, WriteOutcome::default());
    w.close().await.unwrap();
    let mut conn = admin().await;
    assert_eq!(
        rows(&mut conn, &format!("SELECT id, name FROM {table}")).await,
        vec!["1|a", "2|B", "3|NULL"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_never_updates_and_reports_existing_keys_skipped() {
    let table = unique("insert");
    seed(&table).await;
    let mut w = destination()
        .open(&target(&table, people(), &["id"], WriteMode::Insert, false))
        .await
        .unwrap();
    let out = w
        .write(&batch(
            &[1, 3, 2, 4],
            &[Some("X"), Some("c"), Some("Y"), Some("d")],
        ))
        .await
        .unwrap();
    assert_eq!(out.skipped, vec![0, 2]);
    assert!(out.failed.is_empty());
    w.close().await.unwrap();
    let mut conn = admin().await;
    assert_eq!(
        rows(&mut conn, &format!("SELECT id, name FROM {table}")).await,
        vec!["1|a", "2|b", "3|c", "4|d"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_never_creates_and_reports_missing_keys_skipped() {
    let table = unique("update");
    seed(&table).await;
    let mut w = destination()
        .open(&target(&table, people(), &["id"], WriteMode::Update, false))
        .await
        .unwrap();
    let out = w
        .write(&batch(&[5, 2, 6], &[Some("e"), Some("B"), Some("f")]))
        .await
        .unwrap();
    assert_eq!(out.skipped, vec![0, 2]);
    assert!(out.failed.is_empty());
    w.close().await.unwrap();
    let mut conn = admin().await;
    assert_eq!(
        rows(&mut conn, &format!("SELECT id, name FROM {table}")).await,
        vec!["1|a", "2|B"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_mode_leaves_columns_it_does_not_own() {
    let table = unique("owned");
    let mut conn = admin().await;
    exec(
        &mut conn,
        &format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT, owner TEXT NOT NULL)"),
    )
    .await;
    exec(
        &mut conn,
        &format!("INSERT INTO {table} VALUES (1, 'a', 'crm')"),
    )
    .await;
    let mut w = destination()
        .open(&target(&table, people(), &["id"], WriteMode::Update, false))
        .await
        .unwrap();
    let out = w.write(&batch(&[1], &[Some("A")])).await.unwrap();
    assert_eq!(out, WriteOutcome::default());
    w.close().await.unwrap();
    assert_eq!(
        rows(&mut conn, &format!("SELECT * FROM {table}")).await,
        vec!["1|A|crm"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_keys_and_reports_missing_ones_skipped() {
    let table = unique("delete");
    seed(&table).await;
    let mut t = target(&table, people(), &["id"], WriteMode::Upsert, false);
    t.deletes = true;
    let mut w = destination().open(&t).await.unwrap();
    let out = w.delete(&keys(&[9, 1])).await.unwrap();
    assert_eq!(out.skipped, vec![0]);
    assert!(out.failed.is_empty());
    w.close().await.unwrap();
    let mut conn = admin().await;
    assert_eq!(
        rows(&mut conn, &format!("SELECT id, name FROM {table}")).await,
        vec!["2|b"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraint_rejects_only_the_bad_rows_with_mariadbs_message() {
    let table = unique("rejects");
    let mut conn = admin().await;
    exec(
        &mut conn,
        &format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(5), \
             CONSTRAINT name_not_bad CHECK (name <> 'bad'))"
        ),
    )
    .await;
    let mut w = destination()
        .open(&target(&table, people(), &["id"], WriteMode::Upsert, false))
        .await
        .unwrap();
    let ids: Vec<i64> = (0..100).collect();
    let names: Vec<Option<&str>> = ids
        .iter()
        .map(|i| match i {
            17 | 80 => Some("bad"),
            42 => Some("toolongforfive"),
            _ => Some("ok"),
        })
        .collect();
    let out = w.write(&batch(&ids, &names)).await.unwrap();
    let failed: Vec<usize> = out.failed.iter().map(|f| f.row).collect();
    assert_eq!(failed, vec![17, 42, 80]);
    assert!(
        out.failed[0]
            .message
            .contains("CONSTRAINT `name_not_bad` failed"),
        "{:?}",
        out.failed[0]
    );
    assert_eq!(out.failed[1].column.as_deref(), Some("name"));
    assert!(
        out.failed[1].message.contains("Data too long"),
        "{:?}",
        out.failed[1]
    );
    w.close().await.unwrap();
    let count = rows(&mut conn, &format!("SELECT COUNT(*) FROM {table}")).await;
    assert_eq!(count, vec!["97"]);
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_load_into_an_empty_table_then_a_repeat_converges() {
    let table = unique("initial");
    let mut t = target(&table, people(), &["id"], WriteMode::Upsert, true);
    t.initial_load = true;
    let dest = destination();
    let mut w = dest.open(&t).await.unwrap();
    let ids: Vec<i64> = (0..5000).collect();
    let names: Vec<Option<&str>> = ids.iter().map(|_| Some("v1")).collect();
    assert_eq!(
        w.write(&batch(&ids, &names)).await.unwrap(),
        WriteOutcome::default()
    );
    // An aborted run retried: the same keys again, now with changed values.
    let names: Vec<Option<&str>> = ids.iter().map(|_| Some("v2")).collect();
    assert_eq!(
        w.write(&batch(&ids, &names)).await.unwrap(),
        WriteOutcome::default()
    );
    w.close().await.unwrap();
    let mut conn = admin().await;
    assert_eq!(
        rows(
            &mut conn,
            &format!("SELECT COUNT(*), MIN(name), MAX(name) FROM {table}")
        )
        .await,
        vec!["5000|v2|v2"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_and_a_database_qualified_name() {
    let table = unique("composite");
    let s = schema(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]);
    let b = |tenants: &[&str], ids: &[i64], names: &[&str]| {
        RecordBatch::try_new(
            s.clone(),
            vec![
                Arc::new(StringArray::from(tenants.to_vec())) as ArrayRef,
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    };
    let object = format!("backflow.{table}");
    let mut t = target(
        &object,
        s.clone(),
        &["tenant", "id"],
        WriteMode::Upsert,
        true,
    );
    t.deletes = true;
    let mut w = destination().open(&t).await.unwrap();
    w.write(&b(&["a", "A", "a"], &[1, 1, 2], &["x", "y", "z"]))
        .await
        .unwrap();
    let key_schema = schema(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
    ]);
    let del = RecordBatch::try_new(
        key_schema,
        vec![
            Arc::new(StringArray::from(vec!["A", "b"])) as ArrayRef,
            Arc::new(Int64Array::from(vec![1, 1])),
        ],
    )
    .unwrap();
    let out = w.delete(&del).await.unwrap();
    assert_eq!(out.skipped, vec![1]);
    w.close().await.unwrap();
    let mut conn = admin().await;
    // utf8mb4_bin: `a` and `A` are different keys, as they are in Arrow.
    assert_eq!(
        rows(&mut conn, &format!("SELECT * FROM {table}")).await,
        vec!["a|1|x", "a|2|z"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_open_refuse_names_the_server_would_alter() {
    // A trailing space: MariaDB refuses it or strips it into another column's name.
    let spaced = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name ", DataType::Utf8, true),
    ]);
    let table = unique("spaced");
    let e = destination()
        .check(&target(
            &table,
            spaced.clone(),
            &["id"],
            WriteMode::Upsert,
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), backflow_connector_core::ErrorKind::Config, "{e}");
    assert_eq!(e.column(), Some("name "), "{e}");
    assert!(!e.is_retryable(), "{e}");
    let e = destination()
        .open(&target(&table, spaced, &["id"], WriteMode::Upsert, true))
        .await
        .err()
        .unwrap();
    assert_eq!(e.column(), Some("name "), "{e}");

    // 65 characters: over MySQL's and MariaDB's 64.
    let long = format!("{}_{}", unique("long"), "x".repeat(43));
    assert_eq!(long.chars().count(), 65);
    let e = destination()
        .check(&target(&long, people(), &["id"], WriteMode::Upsert, true))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), backflow_connector_core::ErrorKind::Config, "{e}");
    assert_eq!(e.field(), Some("destination.object"), "{e}");
    assert!(e.message().contains("65 characters long"), "{e}");

    let mut conn = admin().await;
    let created = rows(
        &mut conn,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME IN ('{table}', '{}')",
            &long[..64]
        ),
    )
    .await;
    assert_eq!(created, vec!["0"], "open created a table");
}
