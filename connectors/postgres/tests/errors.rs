//! What `check` and `read` report when something is wrong, and that a connection lost
//! mid-stream is a retryable error, never a silent early end.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field};
use backflow_connector_core::{Destination, ErrorKind, ReadOptions, Source, WriteMode};
use backflow_postgres::{validate_destination, validate_source};
use common::*;
use futures::StreamExt;
use serde_json::json;

fn id_name_schema() -> arrow::datatypes::SchemaRef {
    schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ])
}

/// The test URL with its password replaced.
fn url_with_password(password: Option<&str>) -> String {
    let mut u = url::Url::parse(&url()).unwrap();
    u.set_password(password).unwrap();
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_without_create_table() {
    let t = target(
        &unique("nowhere"),
        id_name_schema(),
        &["id"],
        WriteMode::Upsert,
        false,
    );
    let dest = destination();
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("does not exist"), "{e}");
    assert!(e.message().contains("create_table: true"), "{e}");
    let e = dest.open(&t).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // With create_table the check passes and open creates it.
    let mut t = t;
    t.create_table = true;
    dest.check(&t).await.unwrap();
    let w = dest.open(&t).await.unwrap();
    w.close().await.unwrap();
    dest.check(&t).await.unwrap();
    let mut admin = admin().await;
    exec(&mut admin, &format!("DROP TABLE {}", t.object)).await;

    // A schema that does not exist cannot hold a created table.
    let t = target(
        &format!("{}.t", unique("noschema")),
        id_name_schema(),
        &["id"],
        WriteMode::Upsert,
        true,
    );
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("schema"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_column_is_named() {
    let mut admin = admin().await;
    let table = unique("cols");
    exec(
        &mut admin,
        &format!("CREATE TABLE {table} (id int8 PRIMARY KEY)"),
    )
    .await;
    let t = target(&table, id_name_schema(), &["id"], WriteMode::Upsert, true);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert_eq!(e.column(), Some("name"));
    assert!(e.message().contains("does not exist"), "{e}");
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_without_unique_index() {
    let mut admin = admin().await;
    let table = unique("nokey");
    exec(
        &mut admin,
        &format!(
            "CREATE TABLE {table} (a int8, b text, c int4); \
             CREATE UNIQUE INDEX ON {table} (a); \
             CREATE UNIQUE INDEX ON {table} (a, b) WHERE c > 0"
        ),
    )
    .await;
    let s = schema(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Utf8, false),
    ]);
    let t = target(&table, s.clone(), &["a", "b"], WriteMode::Upsert, false);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert!(e.message().contains("no unique index on (a, b)"), "{e}");
    // The single-column key is backed.
    let t = target(&table, s, &["a"], WriteMode::Upsert, false);
    destination().check(&t).await.unwrap();
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_column_type_names_both_types() {
    let mut admin = admin().await;
    let table = unique("types");
    exec(
        &mut admin,
        &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, payload int4)"),
    )
    .await;
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Binary, true),
    ]);
    let t = target(&table, s.clone(), &["id"], WriteMode::Upsert, false);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert_eq!(e.column(), Some("payload"));
    assert!(
        e.message().contains("integer") && e.message().contains("bytea"),
        "{e}"
    );
    // A compatible but different type (int8 into int4) is accepted; an out-of-range value is
    // then a rejected row, not a failed batch.
    let s2 = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Int64, true),
    ]);
    let t = target(&table, s2.clone(), &["id"], WriteMode::Upsert, false);
    let dest = destination();
    dest.check(&t).await.unwrap();
    let mut w = dest.open(&t).await.unwrap();
    let batch = RecordBatch::try_new(
        s2,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            Arc::new(Int64Array::from(vec![5, i64::MAX])),
        ],
    )
    .unwrap();
    let out = w.write(&batch).await.unwrap();
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].row, 1);
    assert!(
        out.failed[0].message.contains("out of range"),
        "{:?}",
        out.failed
    );
    w.close().await.unwrap();
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth_and_never_echoed() {
    let secret = "wr0ng-s3cret-pw";
    let bad = url_with_password(Some(secret));
    let source = validate_source(&json!({ "url": bad })).unwrap();
    assert!(!format!("{source:?}").contains(secret));
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.is_retryable());
    for rendered in [e.to_string(), format!("{e:?}")] {
        assert!(!rendered.contains(secret), "{rendered}");
    }

    // Through a reference in `password`, overriding the URL's.
    let var = format!("BACKFLOW_TEST_PG_PW_{:x}", rand::random::<u32>());
    std::env::set_var(&var, secret);
    let dest = validate_destination(&json!({
        "url": url_with_password(Some("also-not-it")),
        "password": format!("${{env:{var}}}"),
    }))
    .unwrap();
    let t = target(
        "whatever",
        id_name_schema(),
        &["id"],
        WriteMode::Upsert,
        true,
    );
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    for rendered in [e.to_string(), format!("{e:?}"), format!("{dest:?}")] {
        assert!(!rendered.contains(secret), "{rendered}");
        assert!(!rendered.contains("also-not-it"), "{rendered}");
    }

    // The right password through the reference works.
    let real = url::Url::parse(&url())
        .unwrap()
        .password()
        .unwrap_or("")
        .to_string();
    std::env::set_var(&var, real);
    let ok = validate_source(&json!({
        "url": url_with_password(None),
        "password": format!("${{env:{var}}}"),
        "connect_timeout_secs": 5,
    }))
    .unwrap();
    ok.check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_retryable_connectivity() {
    let source = validate_source(&json!({
        "url": "postgres://backflow:pw@127.0.0.1:9/backflow",
        "connect_timeout_secs": 5,
    }))
    .unwrap();
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    assert!(!e.to_string().contains(":pw@"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_keep_the_database_message() {
    let source = source();
    let e = source
        .read("SELEC 1 FROM nowhere", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert_eq!(e.code(), Some("42601"));
    assert!(e.message().contains("syntax error"), "{e}");

    let e = source
        .read(
            &format!("SELECT * FROM {}", unique("missing")),
            ReadOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert_eq!(e.code(), Some("42P01"));

    let e = source
        .read("SELECT nope FROM (SELECT 1 AS a) s", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("42703"), "{e}");

    // A query starting with a writing statement is refused before it reaches the server.
    let e = source
        .read("DELETE FROM nowhere RETURNING id", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("must be read-only"), "{e}");

    // One that writes where its first word cannot show it (a writing CTE) is refused by the
    // server: a source session is read-only.
    let mut admin = admin().await;
    let table = unique("ro");
    exec(&mut admin, &format!("CREATE TABLE {table} (id int4)")).await;
    let e = match source
        .read(
            &format!("WITH gone AS (DELETE FROM {table} RETURNING id) SELECT id FROM gone"),
            ReadOptions::default(),
        )
        .await
    {
        Err(e) => e,
        Ok(mut s) => s.next().await.unwrap().unwrap_err(),
    };
    assert_eq!(e.code(), Some("25006"), "{e}");
    exec(&mut admin, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_types_and_values_name_the_column() {
    let source = source();
    let e = source
        .read(
            "SELECT 1 AS id, interval '1 day' AS span",
            ReadOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert_eq!(e.column(), Some("span"));
    assert!(
        e.message().contains("interval") && e.message().contains("span::text"),
        "{e}"
    );

    let e = source
        .read("SELECT 1::numeric(40,0) AS wide", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert_eq!(e.column(), Some("wide"));

    for (query, column, needle) in [
        (
            "SELECT x::numeric AS n FROM (VALUES ('1'), ('NaN')) v(x)",
            "n",
            "NaN",
        ),
        ("SELECT 'infinity'::numeric AS n", "n", "Infinity"),
        (
            "SELECT 0.123456789012::numeric AS n",
            "n",
            "Decimal128(38,10)",
        ),
        ("SELECT 'infinity'::timestamptz AS t", "t", "infinity"),
        ("SELECT '-infinity'::date AS d", "d", "infinity"),
    ] {
        let mut stream = source.read(query, ReadOptions::default()).await.unwrap();
        let e = stream.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Data, "{query}: {e}");
        assert_eq!(e.column(), Some(column), "{query}: {e}");
        assert!(e.message().contains(needle), "{query}: {e}");
        assert!(
            stream.next().await.is_none(),
            "{query}: the stream ends after its error"
        );
    }

    // A cast in the query sets precision and scale, as the error messages suggest.
    let (schema, batches) = read_all("SELECT 0.123456789012::numeric(20,12) AS n;", 10).await;
    assert_eq!(schema.field(0).data_type(), &DataType::Decimal128(20, 12));
    assert_eq!(batches[0].num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connection_mid_stream_is_a_retryable_error() {
    let marker = unique("term");
    let query =
        format!("SELECT generate_series(1, 100000000) AS {marker}, repeat('x', 100) AS pad");
    let mut stream = source()
        .read(&query, ReadOptions { batch_size: 1000 })
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), 1000);

    let mut admin = admin().await;
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(format!("COPY (%{marker}%"))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(pids.len(), 1, "the streaming backend");
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(done);

    let started = std::time::Instant::now();
    let mut rows = first.num_rows();
    let error = loop {
        match stream.next().await {
            Some(Ok(batch)) => rows += batch.num_rows(),
            Some(Err(e)) => break e,
            None => panic!("the stream ended silently after {rows} rows"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no error after termination"
        );
    };
    assert!(rows < 100_000_000);
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.kind(), ErrorKind::Connectivity, "{error}");
    assert!(stream.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_errors_come_from_read_and_odd_shapes_work() {
    let mut admin = admin().await;
    let role = unique("nopriv");
    let table = unique("secret");
    exec(
        &mut admin,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'; CREATE TABLE {table} (id int4); \
             REVOKE ALL ON {table} FROM PUBLIC"
        ),
    )
    .await;
    let mut u = url::Url::parse(&url()).unwrap();
    u.set_username(&role).unwrap();
    u.set_password(Some(&format!("pw-{role}"))).unwrap();
    let source = validate_source(&json!({ "url": u.to_string() })).unwrap();
    source.check().await.unwrap();
    let e = source
        .read(&format!("SELECT id FROM {table}"), ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    assert_eq!(e.code(), Some("42501"));

    // The destination's check names the missing privilege.
    let dest = validate_destination(&json!({ "url": u.to_string() })).unwrap();
    exec(
        &mut admin,
        &format!("ALTER TABLE {table} ADD PRIMARY KEY (id)"),
    )
    .await;
    let s = schema(vec![Field::new("id", DataType::Int32, false)]);
    let e = dest
        .check(&target(
            &table,
            s.clone(),
            &["id"],
            WriteMode::Insert,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    assert!(e.message().contains("INSERT"), "{e}");

    // Upsert privileges suffice until the run may delete (mirror mode).
    exec(
        &mut admin,
        &format!("GRANT SELECT, INSERT, UPDATE ON {table} TO {role}"),
    )
    .await;
    let upsert = target(&table, s.clone(), &["id"], WriteMode::Upsert, false);
    dest.check(&upsert).await.unwrap();
    let mirror = backflow_connector_core::WriteTarget {
        deletes: true,
        ..upsert
    };
    let e = dest.check(&mirror).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    assert!(e.message().contains("DELETE"), "{e}");
    assert!(e.message().contains("mirror"), "{e}");
    exec(
        &mut admin,
        &format!("DROP TABLE {table}; DROP OWNED BY {role}; DROP ROLE {role}"),
    )
    .await;

    // No columns, and an empty result.
    let (schema, batches) = read_all("SELECT FROM generate_series(1, 3)", 2).await;
    assert_eq!(schema.fields().len(), 0);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    let (schema, batches) = read_all("SELECT 1 AS a WHERE false", 2).await;
    assert_eq!(schema.fields().len(), 1);
    assert!(batches.is_empty());
}
