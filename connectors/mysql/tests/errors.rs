//! Bad input and bad targets fail early with a specific error naming what is wrong, and
//! secrets never appear in messages.

mod common;

use arrow::datatypes::{DataType, Field};
use backflow_connector_core::{Destination, ErrorKind, Source, WriteMode};
use backflow_mysql::{validate_destination, validate_source};
use common::*;

fn simple() -> arrow::datatypes::SchemaRef {
    schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let url = url();
    let parsed = url::Url::parse(&url).unwrap();
    let bad = format!(
        "mysql://{}:{}@{}:{}{}",
        parsed.username(),
        "sup3r-s3cret-pw",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(3306),
        parsed.path()
    );
    let e = validate_source(&serde_json::json!({ "url": bad }))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("sup3r-s3cret-pw"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_retryable_connectivity() {
    let e = validate_source(&serde_json::json!({
        "url": "mysql://u:pw@127.0.0.1:1/db", "connect_timeout_secs": 5
    }))
    .unwrap()
    .check()
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_without_create_is_not_found() {
    let t = target(
        &unique("absent"),
        simple(),
        &["id"],
        WriteMode::Upsert,
        false,
    );
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("create_table"), "{e}");
    let t = target("no_such_db.t", simple(), &["id"], WriteMode::Upsert, true);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_tables_are_checked_against_the_sync() {
    let table = unique("shape");
    let mut conn = admin().await;
    exec(
        &mut conn,
        &format!("CREATE TABLE {table} (id BIGINT, name TEXT, at DATE)"),
    )
    .await;
    let dest = destination();
    // No unique index on the key.
    let e = dest
        .check(&target(&table, simple(), &["id"], WriteMode::Upsert, false))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert!(e.message().contains("no unique index"), "{e}");
    exec(
        &mut conn,
        &format!("ALTER TABLE {table} ADD PRIMARY KEY (id), ADD extra INT NOT NULL"),
    )
    .await;
    // A NOT NULL column without default that the sync does not write.
    let e = dest
        .check(&target(&table, simple(), &["id"], WriteMode::Upsert, false))
        .await
        .unwrap_err();
    assert_eq!(e.column(), Some("extra"), "{e}");
    // …which update mode does not mind.
    dest.check(&target(&table, simple(), &["id"], WriteMode::Update, false))
        .await
        .unwrap();
    // A column that is not there, and one whose type cannot take the values.
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("nope", DataType::Utf8, true),
    ]);
    let e = dest
        .check(&target(&table, s, &["id"], WriteMode::Update, false))
        .await
        .unwrap_err();
    assert_eq!(e.column(), Some("nope"), "{e}");
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("at", DataType::Binary, true),
    ]);
    let e = dest
        .check(&target(&table, s, &["id"], WriteMode::Update, false))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.column()),
        (ErrorKind::Schema, Some("at")),
        "{e}"
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_privileges_are_permission_errors() {
    let table = unique("privs");
    let user = unique("ro");
    let mut conn = admin().await;
    exec(
        &mut conn,
        &format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)"),
    )
    .await;
    exec(
        &mut conn,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"),
    )
    .await;
    exec(
        &mut conn,
        &format!("GRANT SELECT, INSERT ON backflow.{table} TO '{user}'@'%'"),
    )
    .await;
    let parsed = url::Url::parse(&url()).unwrap();
    let dest = validate_destination(&serde_json::json!({
        "url": format!(
            "mysql://{user}:pw@{}:{}/backflow",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(3306)
        )
    }))
    .unwrap();
    dest.check(&target(&table, simple(), &["id"], WriteMode::Insert, false))
        .await
        .unwrap();
    let e = dest
        .check(&target(&table, simple(), &["id"], WriteMode::Upsert, false))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    assert!(e.message().contains("UPDATE"), "{e}");
    let mut t = target(&table, simple(), &["id"], WriteMode::Insert, false);
    t.deletes = true;
    let e = dest.check(&t).await.unwrap_err();
    assert!(e.message().contains("DELETE"), "{e}");
    exec(&mut conn, &format!("DROP USER '{user}'@'%'")).await;
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[test]
fn bad_definitions_name_the_field() {
    let e = validate_destination(&serde_json::json!({ "url": "postgres://h/db" })).unwrap_err();
    assert_eq!(e.field(), Some("url"));
    let e =
        validate_destination(&serde_json::json!({ "url": "mysql://h/db", "x": 1 })).unwrap_err();
    assert!(e.message().contains("unknown field"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_are_refused_before_connecting() {
    let unreachable = validate_destination(&serde_json::json!({
        "url": "mysql://u@127.0.0.1:1/db", "connect_timeout_secs": 1
    }))
    .unwrap();
    let e = unreachable
        .check(&target("a.b.c", simple(), &["id"], WriteMode::Upsert, true))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("table"));
    let e = unreachable
        .check(&target("t", simple(), &[], WriteMode::Upsert, true))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("primary_key"));
    let e = unreachable
        .check(&target("t", simple(), &["nope"], WriteMode::Upsert, true))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("primary_key"));
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "span",
            DataType::Duration(arrow::datatypes::TimeUnit::Second),
            true,
        ),
    ]);
    let e = unreachable
        .check(&target("t", s, &["id"], WriteMode::Upsert, true))
        .await
        .unwrap_err();
    assert_eq!(e.column(), Some("span"));
}
