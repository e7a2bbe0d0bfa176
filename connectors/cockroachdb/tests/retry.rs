//! The 40001 retry path, with real serialization failures: a PostgreSQL statement trigger
//! raises SQLSTATE 40001 for the first N statements (counted by a sequence, which a rollback
//! does not undo), as CockroachDB does when a transaction must be restarted.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use backflow_cockroachdb::validate_destination;
use backflow_connector_core::{DestinationWriter, ErrorKind, WriteMode, WriteOutcome, WriteTarget};
use sqlx::{Connection, Executor, PgConnection};

fn url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "BACKFLOW_TEST_POSTGRES_URL is not set; run scripts/services.sh start and \
             eval \"$(scripts/services.sh env)\""
        )
    })
}

async fn admin() -> PgConnection {
    PgConnection::connect(&url()).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is unreachable ({e}); run scripts/services.sh start")
    })
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn rows(ids: &[i64]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

fn keys(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(ids.to_vec()))],
    )
    .unwrap()
}

/// A table whose first `failures` INSERT or DELETE statements fail with SQLSTATE 40001, and
/// an audit table recording every committed insert.
async fn flaky_table(conn: &mut PgConnection, failures: u32) -> String {
    let t = format!("retry_{:016x}", rand::random::<u64>());
    conn.execute(
        format!(
            "CREATE TABLE {t} (id int8 PRIMARY KEY, name text);
             CREATE TABLE {t}_landed (id int8);
             CREATE SEQUENCE {t}_attempts;
             CREATE FUNCTION {t}_flaky() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF nextval('{t}_attempts') <= {failures} THEN
                 RAISE EXCEPTION 'restart transaction: injected serialization failure'
                   USING ERRCODE = 'serialization_failure';
               END IF;
               RETURN NULL;
             END $$;
             CREATE FUNCTION {t}_audit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO {t}_landed VALUES (NEW.id); RETURN NULL; END $$;
             CREATE TRIGGER flaky BEFORE INSERT OR DELETE ON {t}
               FOR EACH STATEMENT EXECUTE FUNCTION {t}_flaky();
             CREATE TRIGGER audit AFTER INSERT ON {t}
               FOR EACH ROW EXECUTE FUNCTION {t}_audit();"
        )
        .as_str(),
    )
    .await
    .unwrap();
    t
}

async fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

async fn drop_table(conn: &mut PgConnection, t: &str) {
    conn.execute(
        format!(
            "DROP TABLE {t}; DROP TABLE {t}_landed; DROP SEQUENCE {t}_attempts; \
             DROP FUNCTION {t}_flaky(); DROP FUNCTION {t}_audit();"
        )
        .as_str(),
    )
    .await
    .unwrap();
}

fn target(table: &str) -> WriteTarget {
    WriteTarget {
        object: table.to_string(),
        schema: schema(),
        primary_key: vec!["id".into()],
        mode: WriteMode::Upsert,
        create_table: false,
        deletes: true,
        initial_load: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_are_retried_until_the_write_lands_once() {
    let mut conn = admin().await;
    let t = flaky_table(&mut conn, 3).await;
    let dest = validate_destination(&serde_json::json!({ "url": url() })).unwrap();
    let mut w = dest.open_writer(&target(&t)).await.unwrap();

    let out = w.write(&rows(&(1..=10).collect::<Vec<_>>())).await.unwrap();
    assert_eq!(out, WriteOutcome::default());
    assert_eq!(w.stats.serialization_retries, 3);
    assert_eq!(w.stats.statements, 1);
    assert_eq!(
        scalar(&mut conn, &format!("SELECT last_value FROM {t}_attempts")).await,
        4
    );
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM {t}")).await,
        10
    );
    // Each row was inserted by exactly one committed statement.
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT count(DISTINCT id) FROM {t}_landed")
        )
        .await,
        10
    );
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM {t}_landed")).await,
        10
    );

    // Deletes take the same path.
    conn.execute(format!("SELECT setval('{t}_attempts', 1, false)").as_str())
        .await
        .unwrap();
    let out = w.delete(&keys(&[1, 2, 3, 4, 5])).await.unwrap();
    assert_eq!(out, WriteOutcome::default());
    assert_eq!(w.stats.serialization_retries, 6);
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM {t}")).await,
        5
    );
    Box::new(w).close().await.unwrap();
    drop_table(&mut conn, &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_fail_the_run_with_a_retryable_error() {
    let mut conn = admin().await;
    let t = flaky_table(&mut conn, 1000).await;
    let dest =
        validate_destination(&serde_json::json!({ "url": url(), "max_retries": 2 })).unwrap();
    let mut w = dest.open_writer(&target(&t)).await.unwrap();
    let e = w.write(&rows(&[1, 2, 3])).await.unwrap_err();
    assert_eq!(e.code(), Some("40001"), "{e}");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(
        e.message().contains("injected serialization failure"),
        "{e}"
    );
    assert_eq!(w.stats.serialization_retries, 2);
    assert_eq!(
        scalar(&mut conn, &format!("SELECT last_value FROM {t}_attempts")).await,
        3
    );
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM {t}")).await,
        0
    );
    drop(w);
    drop_table(&mut conn, &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_split_into_bounded_statements() {
    let mut conn = admin().await;
    let t = flaky_table(&mut conn, 0).await;
    let dest =
        validate_destination(&serde_json::json!({ "url": url(), "batch_rows": 100 })).unwrap();
    let mut w = dest.open_writer(&target(&t)).await.unwrap();
    let out = w
        .write(&rows(&(1..=1050).collect::<Vec<_>>()))
        .await
        .unwrap();
    assert_eq!(out, WriteOutcome::default());
    assert_eq!(w.stats.statements, 11);
    assert_eq!(
        scalar(&mut conn, &format!("SELECT last_value FROM {t}_attempts")).await,
        11
    );
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM {t}")).await,
        1050
    );
    Box::new(w).close().await.unwrap();
    drop_table(&mut conn, &t).await;
}
