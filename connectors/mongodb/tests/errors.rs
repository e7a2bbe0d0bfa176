//! Bad input against a real server: bad URLs, wrong credentials, unreachable servers,
//! missing collections and keys without a unique index.

mod common;

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use backflow_connector_core::{Destination, ErrorKind, WriteMode};
use backflow_mongodb::validate_destination;
use common::*;
use mongodb::bson::doc;

fn rows() -> arrow::array::RecordBatch {
    batch(vec![
        (
            Field::new("id", DataType::Int64, true),
            Arc::new(Int64Array::from(vec![1])),
        ),
        (
            Field::new("name", DataType::Utf8, true),
            Arc::new(StringArray::from(vec!["a"])),
        ),
    ])
}

#[test]
fn bad_urls_fail_validation_naming_the_field() {
    for url in [
        "postgres://h/db",
        "mongodb://",
        "mongodb://h:99999/db",
        "mongodb://h/db?w=x&foo",
    ] {
        let e =
            validate_destination(&serde_json::json!({"url": url, "database": "d"})).expect_err(url);
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        assert_eq!(e.field(), Some("url"), "{url}: {e}");
    }
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_that_never_echoes_it() {
    let url = url().replacen("backflow:backflow@", "backflow:not-the-password@", 1);
    assert!(
        url.contains("not-the-password"),
        "the test URL must carry credentials"
    );
    let dest =
        validate_destination(&serde_json::json!({"url": url, "database": DATABASE})).unwrap();
    assert!(!format!("{dest:?}").contains("not-the-password"));
    let t = target(&unique("auth"), &rows(), &["id"], WriteMode::Upsert);
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    let e = dest.open(&t).await.err().expect("open must fail");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
}

#[tokio::test]
async fn password_reference_overrides_the_url() {
    std::env::set_var("BACKFLOW_TEST_MONGODB_WRONG_PASSWORD", "nope");
    let dest = destination_with(serde_json::json!({
        "password": "${env:BACKFLOW_TEST_MONGODB_WRONG_PASSWORD}"
    }));
    let t = target(&unique("pwref"), &rows(), &["id"], WriteMode::Upsert);
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_connectivity_error() {
    let dest = validate_destination(&serde_json::json!({
        "url": "mongodb://127.0.0.1:1/", "database": "d", "connect_timeout_secs": 1
    }))
    .unwrap();
    let t = target("c", &rows(), &["id"], WriteMode::Upsert);
    let started = std::time::Instant::now();
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn missing_collection_without_create_table_is_not_found() {
    let mut t = target(&unique("missing"), &rows(), &["id"], WriteMode::Upsert);
    t.create_table = false;
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("create_table"), "{e}");
}

#[tokio::test]
async fn keys_as_fields_need_a_unique_index() {
    let coll = unique("noindex");
    collection(&coll)
        .await
        .insert_one(doc! {"id": 1i64})
        .await
        .unwrap();
    let dest = destination_with(serde_json::json!({"primary_key_as_id": false}));
    let mut t = target(&coll, &rows(), &["id"], WriteMode::Upsert);
    t.create_table = false;
    let e = dest.check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
    assert!(e.message().contains("unique index"), "{e}");
    t.create_table = true;
    dest.check(&t).await.unwrap();
    let outcome = write_once(&dest, &t, &rows()).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    t.create_table = false;
    dest.check(&t).await.unwrap();
}

#[tokio::test]
async fn field_names_mongodb_cannot_take_are_config_errors() {
    let bad = batch(vec![
        (
            Field::new("id", DataType::Int64, true),
            Arc::new(Int64Array::from(vec![1])),
        ),
        (
            Field::new("a.b", DataType::Utf8, true),
            Arc::new(StringArray::from(vec!["a"])),
        ),
    ]);
    let t = target("c", &bad, &["id"], WriteMode::Upsert);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.column(), Some("a.b"));
    assert!(!e.is_retryable(), "{e}");
    let t = target("c", &rows(), &["nope"], WriteMode::Upsert);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.field(), Some("primary_key"));
}

#[tokio::test]
async fn collection_names_over_the_namespace_limit_are_config_errors() {
    // The test database's name plus `.` plus this is 256 bytes: one over MongoDB's limit.
    let prefix = unique("ns");
    let long = format!(
        "{prefix}_{}",
        "c".repeat(256 - DATABASE.len() - 1 - prefix.len() - 1)
    );
    assert_eq!(DATABASE.len() + 1 + long.len(), 256, "{long}");
    let t = target(&long, &rows(), &["id"], WriteMode::Upsert);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.field(), Some("destination.object"), "{e}");
    assert!(e.message().contains("256 bytes"), "{e}");
    assert!(!e.is_retryable(), "{e}");
    let e = destination().open(&t).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let t = target("system.backflow", &rows(), &["id"], WriteMode::Upsert);
    let e = destination().check(&t).await.unwrap_err();
    assert_eq!(e.field(), Some("destination.object"), "{e}");
}
