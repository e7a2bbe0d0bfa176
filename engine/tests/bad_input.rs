//! Bad input: each case is a clear error naming the problem, and nothing is written.

mod common;

use backflow_connector_core::ErrorKind;
use backflow_engine::{EngineError, Mapping, SyncMode};
use common::*;

async fn source(pool: &sqlx::PgPool) -> String {
    let src = unique("src");
    exec(
        pool,
        &format!(
            "CREATE TABLE {src} (customer_id int8, name text, score float8);
             INSERT INTO {src} SELECT g, 'n' || g, g FROM generate_series(1, 50) g;"
        ),
    )
    .await;
    src
}

async fn rows_in(pool: &sqlx::PgPool, table: &str) -> i64 {
    let exists = scalar(
        pool,
        &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"),
    )
    .await;
    if exists == 0 {
        return 0;
    }
    scalar(pool, &format!("SELECT count(*) FROM {table}")).await
}

async fn existing_destination(pool: &sqlx::PgPool, unique_key: bool) -> String {
    let dst = unique("dst");
    let key = if unique_key { "PRIMARY KEY" } else { "" };
    exec(
        pool,
        &format!("CREATE TABLE {dst} (customer_id int8 {key}, name text, score float8)"),
    )
    .await;
    dst
}

#[tokio::test]
async fn mapping_to_an_unknown_destination_column() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = existing_destination(&pool, true).await;
    let mut s = spec(
        "bad",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    s.create_table = false;
    s.mappings = vec![Mapping {
        from: "name".into(),
        to: "full_name".into(),
    }];
    let mut h = Harness::new(s, pg_source(), pg_destination());
    let e = h.run().await.unwrap_err();
    let EngineError::Destination(ref c) = e else {
        panic!("{e}")
    };
    assert_eq!(c.kind(), ErrorKind::Schema, "{e}");
    assert!(e.to_string().contains("full_name"), "{e}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn mapping_from_a_column_the_query_lacks() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = unique("dst");
    let mut s = spec(
        "bad",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    s.mappings = vec![Mapping {
        from: "nmae".into(),
        to: "name".into(),
    }];
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::Definition { field, .. } if field == "mappings[0].from"),
        "{e}"
    );
    assert!(e.to_string().contains("nmae"), "{e}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn primary_key_missing_from_the_query() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = unique("dst");
    let s = spec(
        "bad",
        &format!("SELECT name, score FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::Definition { field, .. } if field == "primary_key[0]"),
        "{e}"
    );
    assert!(e.to_string().contains("customer_id"), "{e}");
    assert!(e.to_string().contains("name, score"), "{e}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn duplicate_keys_name_a_sample_key() {
    let pool = pg().await;
    let src = source(&pool).await;
    exec(&pool, &format!("INSERT INTO {src} VALUES (7, 'again', 0)")).await;
    let dst = unique("dst");
    let mut s = spec(
        "bad",
        &format!("SELECT * FROM {src} ORDER BY customer_id"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    s.options.batch_size = 1000;
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::DuplicateKey { key } if key == "customer_id=7"),
        "{e}"
    );
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn null_keys_name_the_column() {
    let pool = pg().await;
    let src = source(&pool).await;
    exec(
        &pool,
        &format!("INSERT INTO {src} VALUES (NULL, 'nobody', 0)"),
    )
    .await;
    let dst = unique("dst");
    let mut s = spec(
        "bad",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    s.options.batch_size = 1000;
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::NullKey { column, .. } if column == "customer_id"),
        "{e}"
    );
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn missing_table_without_create_table() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = unique("dst");
    let mut s = spec(
        "bad",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    s.create_table = false;
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Destination(_)), "{e}");
    assert!(e.to_string().contains("create_table"), "{e}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn destination_without_a_unique_index_on_the_key() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = existing_destination(&pool, false).await;
    let mut s = spec(
        "bad",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    s.create_table = false;
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    let EngineError::Destination(ref c) = e else {
        panic!("{e}")
    };
    assert_eq!(c.kind(), ErrorKind::Schema, "{e}");
    assert!(e.to_string().contains("unique"), "{e}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn query_with_a_syntax_error() {
    let pool = pg().await;
    let dst = unique("dst");
    let s = spec(
        "bad",
        "SELEC customer_id FROM nowhere",
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    let e = Harness::new(s, pg_source(), pg_destination())
        .run()
        .await
        .unwrap_err();
    let EngineError::Source(ref c) = e else {
        panic!("{e}")
    };
    assert_eq!(c.kind(), ErrorKind::Query, "{e}");
    assert_eq!(c.code(), Some("42601"), "{e}");
    assert!(e.to_string().contains("syntax error"), "{e}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = unique("dst");
    let url = pg_url().replacen(":backflow@", ":NotThePassword42@", 1);
    assert_ne!(url, pg_url(), "test URL must carry a password");
    let source =
        backflow_connectors::source("postgres", &serde_json::json!({ "url": url })).unwrap();
    let s = spec(
        "bad",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Upsert,
    );
    let e = Harness::new(s, source, pg_destination())
        .run()
        .await
        .unwrap_err();
    let EngineError::Source(ref c) = e else {
        panic!("{e}")
    };
    assert_eq!(c.kind(), ErrorKind::Auth, "{e}");
    assert!(!format!("{e} {e:?}").contains("NotThePassword42"), "{e:?}");
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn an_empty_source_does_not_wipe_the_destination() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = unique("dst");
    let mut h = pg_sync(
        "guard",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Mirror,
    );
    h.ok().await;
    exec(&pool, &format!("DELETE FROM {src}")).await;
    let e = h.run().await.unwrap_err();
    assert!(
        matches!(e, EngineError::EmptySource { snapshot_rows: 50 }),
        "{e}"
    );
    assert_eq!(rows_in(&pool, &dst).await, 50);
    // Allowed explicitly, the mirror follows the source.
    h.spec.options.allow_empty_source = true;
    let r = h.ok().await;
    assert_eq!(r.counts.deleted, 50);
    assert_eq!(rows_in(&pool, &dst).await, 0);
}

#[tokio::test]
async fn mass_deletes_beyond_the_fraction_are_refused() {
    let pool = pg().await;
    let src = source(&pool).await;
    let dst = unique("dst");
    let mut h = pg_sync(
        "guard",
        &format!("SELECT * FROM {src}"),
        &["customer_id"],
        &dst,
        SyncMode::Mirror,
    );
    h.ok().await;
    exec(&pool, &format!("DELETE FROM {src} WHERE customer_id > 20")).await;
    let e = h.run().await.unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::TooManyDeletes {
                removed: 30,
                snapshot_rows: 50,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(rows_in(&pool, &dst).await, 50);
    h.spec.options.max_delete_fraction = 0.8;
    let r = h.ok().await;
    assert_eq!(r.counts.deleted, 30);
    assert_eq!(difference(&pool, &dst, &src).await, 0);
}
