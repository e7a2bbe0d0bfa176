//! The MongoDB destination against a real server: modes, key shapes, types, rejected rows.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, TimeUnit};
use backflow_connector_core::types::{json_field, uuid_field};
use backflow_connector_core::{Destination, WriteMode};
use common::*;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn ids(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn strs(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn people(ids_: Vec<i64>, names: Vec<&str>) -> arrow::array::RecordBatch {
    batch(vec![
        (int("id"), ids(ids_)),
        (text("name"), strs(names.into_iter().map(Some).collect())),
    ])
}

#[tokio::test]
async fn upsert_creates_updates_and_keeps_other_writers_fields() {
    let coll = unique("upsert");
    let dest = destination();
    let first = people(vec![1, 2], vec!["ada", "bob"]);
    let t = target(&coll, &first, &["id"], WriteMode::Upsert);
    dest.check(&t).await.unwrap();
    let outcome = write_once(&dest, &t, &first).await;
    assert!(
        outcome.failed.is_empty() && outcome.skipped.is_empty(),
        "{outcome:?}"
    );
    collection(&coll)
        .await
        .update_one(doc! {"_id": 1i64}, doc! {"$set": {"owner": "crm"}})
        .await
        .unwrap();

    let second = people(vec![1, 3], vec!["ada lovelace", "cy"]);
    let outcome = write_once(&dest, &t, &second).await;
    assert_eq!(outcome.applied(2), 2, "{outcome:?}");
    assert_eq!(
        documents(&coll).await,
        vec![
            doc! {"_id": 1i64, "name": "ada lovelace", "owner": "crm"},
            doc! {"_id": 2i64, "name": "bob"},
            doc! {"_id": 3i64, "name": "cy"},
        ]
    );
}

#[tokio::test]
async fn insert_mode_never_updates() {
    let coll = unique("insert");
    let dest = destination();
    let first = people(vec![1], vec!["ada"]);
    let t = target(&coll, &first, &["id"], WriteMode::Insert);
    write_once(&dest, &t, &first).await;
    let second = people(vec![1, 2], vec!["changed", "bob"]);
    let outcome = write_once(&dest, &t, &second).await;
    assert_eq!(outcome.skipped, vec![0]);
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        documents(&coll).await,
        vec![
            doc! {"_id": 1i64, "name": "ada"},
            doc! {"_id": 2i64, "name": "bob"}
        ]
    );
}

#[tokio::test]
async fn update_mode_never_creates_and_sets_only_mapped_fields() {
    let coll = unique("update");
    let c = collection(&coll).await;
    c.insert_many([
        doc! {"_id": 1i64, "name": "old", "owner": "crm"},
        doc! {"_id": 2i64, "name": "old2"},
    ])
    .await
    .unwrap();
    let dest = destination();
    let rows = people(vec![1, 5, 2], vec!["new", "ghost", "new2"]);
    let t = target(&coll, &rows, &["id"], WriteMode::Update);
    let outcome = write_once(&dest, &t, &rows).await;
    assert_eq!(outcome.skipped, vec![1]);
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        documents(&coll).await,
        vec![
            doc! {"_id": 1i64, "name": "new", "owner": "crm"},
            doc! {"_id": 2i64, "name": "new2"},
        ]
    );
}

#[tokio::test]
async fn mirror_deletes_and_skips_missing_keys() {
    let coll = unique("mirror");
    let dest = destination();
    let rows = people(vec![1, 2, 3], vec!["a", "b", "c"]);
    let t = target(&coll, &rows, &["id"], WriteMode::Upsert);
    let mut writer = dest.open(&t).await.unwrap();
    writer.write(&rows).await.unwrap();
    let keys = batch(vec![(int("id"), ids(vec![2, 9, 3]))]);
    let outcome = writer.delete(&keys).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(outcome.skipped, vec![1]);
    assert!(outcome.failed.is_empty());
    assert_eq!(
        documents(&coll).await,
        vec![doc! {"_id": 1i64, "name": "a"}]
    );
}

#[tokio::test]
async fn composite_key_becomes_an_id_document() {
    let coll = unique("composite");
    let dest = destination();
    let rows = batch(vec![
        (text("region"), strs(vec![Some("eu"), Some("us")])),
        (int("id"), ids(vec![7, 7])),
        (text("name"), strs(vec![Some("x"), Some("y")])),
    ]);
    let t = target(&coll, &rows, &["region", "id"], WriteMode::Upsert);
    write_once(&dest, &t, &rows).await;
    write_once(&dest, &t, &rows).await;
    let docs = documents(&coll).await;
    assert_eq!(
        docs,
        vec![
            doc! {"_id": {"region": "eu", "id": 7i64}, "name": "x"},
            doc! {"_id": {"region": "us", "id": 7i64}, "name": "y"},
        ]
    );
    let mut writer = dest.open(&t).await.unwrap();
    let keys = batch(vec![
        (text("region"), strs(vec![Some("us")])),
        (int("id"), ids(vec![7])),
    ]);
    let outcome = writer.delete(&keys).await.unwrap();
    writer.close().await.unwrap();
    assert!(outcome.skipped.is_empty(), "{outcome:?}");
    assert_eq!(documents(&coll).await.len(), 1);
}

#[tokio::test]
async fn key_as_fields_uses_a_unique_index() {
    let coll = unique("fields");
    let dest = destination_with(serde_json::json!({"primary_key_as_id": false}));
    let rows = batch(vec![
        (text("region"), strs(vec![Some("eu"), Some("us")])),
        (int("id"), ids(vec![1, 1])),
        (text("name"), strs(vec![Some("x"), Some("y")])),
    ]);
    let t = target(&coll, &rows, &["region", "id"], WriteMode::Upsert);
    write_once(&dest, &t, &rows).await;
    let changed = batch(vec![
        (text("region"), strs(vec![Some("eu")])),
        (int("id"), ids(vec![1])),
        (text("name"), strs(vec![Some("x2")])),
    ]);
    write_once(&dest, &t, &changed).await;
    let mut docs = documents(&coll).await;
    for d in &mut docs {
        assert!(matches!(d.remove("_id"), Some(Bson::ObjectId(_))), "{d}");
    }
    docs.sort_by_key(|d| d.get_str("region").unwrap().to_string());
    assert_eq!(
        docs,
        vec![
            doc! {"region": "eu", "id": 1i64, "name": "x2"},
            doc! {"region": "us", "id": 1i64, "name": "y"},
        ]
    );
    let mut writer = dest.open(&t).await.unwrap();
    let outcome = writer
        .delete(&batch(vec![
            (text("region"), strs(vec![Some("us"), Some("xx")])),
            (int("id"), ids(vec![1, 1])),
        ]))
        .await
        .unwrap();
    writer.close().await.unwrap();
    assert_eq!(outcome.skipped, vec![1]);
    assert_eq!(documents(&coll).await.len(), 1);
    let update = target(&coll, &changed, &["region", "id"], WriteMode::Update);
    let outcome = write_once(&dest, &update, &changed).await;
    assert!(outcome.skipped.is_empty() && outcome.failed.is_empty());
}

#[tokio::test]
async fn types_map_to_bson() {
    let coll = unique("types");
    let dest = destination_with(serde_json::json!({"decimals": "string"}));
    let uuid = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    let rows = batch(vec![
        (int("id"), ids(vec![1, 2])),
        (
            Field::new("i16", DataType::Int16, true),
            Arc::new(Int16Array::from(vec![Some(-3), None])),
        ),
        (
            Field::new("i32", DataType::Int32, true),
            Arc::new(Int32Array::from(vec![Some(70000), None])),
        ),
        (
            Field::new("dec", DataType::Decimal128(10, 2), true),
            Arc::new(
                Decimal128Array::from(vec![Some(-12345), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        (
            Field::new("f32", DataType::Float32, true),
            Arc::new(Float32Array::from(vec![Some(1.5), None])),
        ),
        (
            Field::new("f64", DataType::Float64, true),
            Arc::new(Float64Array::from(vec![Some(-0.25), None])),
        ),
        (
            Field::new("b", DataType::Boolean, true),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
        ),
        (text("s"), strs(vec![Some("héllo"), None])),
        (
            Field::new("bin", DataType::Binary, true),
            Arc::new(BinaryArray::from(vec![Some(&[0u8, 255][..]), None])),
        ),
        (
            uuid_field("u"),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(uuid.as_bytes().to_vec()), None].into_iter(),
                    16,
                )
                .unwrap(),
            ),
        ),
        (
            Field::new("d", DataType::Date32, true),
            Arc::new(Date32Array::from(vec![Some(19_000), None])),
        ),
        (
            Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(3_723_000_500),
                None,
            ])),
        ),
        (
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_123_456),
                None,
            ])),
        ),
        (
            Field::new(
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(-1_500), None]).with_timezone("UTC"),
            ),
        ),
        (
            json_field("j"),
            strs(vec![
                Some(r#"{"tags":["a","b"],"n":{"x":1,"big":5000000000,"f":0.5}}"#),
                None,
            ]),
        ),
    ]);
    let t = target(&coll, &rows, &["id"], WriteMode::Upsert);
    let outcome = write_once(&dest, &t, &rows).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let docs = documents(&coll).await;
    assert_eq!(
        docs[0],
        doc! {
            "_id": 1i64,
            "i16": -3,
            "i32": 70000,
            "dec": "-123.45",
            "f32": 1.5,
            "f64": -0.25,
            "b": true,
            "s": "héllo",
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 255] },
            "u": Binary { subtype: BinarySubtype::Uuid, bytes: uuid.as_bytes().to_vec() },
            "d": DateTime::from_millis(19_000 * 86_400_000),
            "t": "01:02:03.000500",
            "ts": DateTime::from_millis(1_700_000_000_123),
            "tz": DateTime::from_millis(-2),
            "j": {"tags": ["a", "b"], "n": {"x": 1, "big": 5_000_000_000i64, "f": 0.5}},
        }
    );
    let nulls = &docs[1];
    for (k, v) in nulls {
        if k != "_id" {
            assert_eq!(v, &Bson::Null, "{k}");
        }
    }
}

/// Decimal128 is the default mapping (its encoding is unit-tested against the bson crate's
/// parser). FerretDB 1.x has no Decimal128 and drops the connection on one, so this test only
/// sends a value that cannot be a Decimal128: it is rejected before reaching the server.
#[tokio::test]
async fn decimals_beyond_decimal128_are_rejected_rows() {
    let coll = unique("decimal128");
    let dest = destination();
    let rows = batch(vec![
        (int("id"), ids(vec![1])),
        (
            Field::new("dec", DataType::Decimal128(38, 3), true),
            Arc::new(
                Decimal128Array::from(vec![Some(10i128.pow(36) + 1)])
                    .with_precision_and_scale(38, 3)
                    .unwrap(),
            ),
        ),
    ]);
    let t = target(&coll, &rows, &["id"], WriteMode::Upsert);
    let outcome = write_once(&dest, &t, &rows).await;
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    assert_eq!(outcome.failed[0].column.as_deref(), Some("dec"));
    assert!(outcome.failed[0].message.contains("34 significant digits"));
    assert!(documents(&coll).await.is_empty());
}

#[tokio::test]
async fn refused_statements_are_rejected_rows_with_the_servers_message() {
    let coll = unique("rejected");
    let c = collection(&coll).await;
    c.create_index(
        IndexModel::builder()
            .keys(doc! {"email": 1})
            .options(IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await
    .unwrap();
    let dest = destination();
    let rows = batch(vec![
        (int("id"), ids(vec![1, 2, 3, 4, 5])),
        (
            text("email"),
            strs(vec![
                Some("a@x"),
                Some("b@x"),
                Some("a@x"),
                None,
                Some("c@x"),
            ]),
        ),
        (
            json_field("j"),
            strs(vec![
                Some("{}"),
                Some("{}"),
                Some("{}"),
                Some("{}"),
                Some("{oops"),
            ]),
        ),
    ]);
    let t = target(&coll, &rows, &["id"], WriteMode::Upsert);
    let outcome = write_once(&dest, &t, &rows).await;
    // Rows 0 and 2 share an email: unordered statements may apply either first.
    let rows_failed: Vec<usize> = outcome.failed.iter().map(|f| f.row).collect();
    assert_eq!(rows_failed.len(), 2, "{outcome:?}");
    let duplicate = rows_failed[0];
    assert!(duplicate == 0 || duplicate == 2, "{outcome:?}");
    assert!(
        outcome.failed[0].message.contains("duplicate key"),
        "{}",
        outcome.failed[0].message
    );
    assert_eq!(outcome.failed[1].row, 4);
    assert_eq!(outcome.failed[1].column.as_deref(), Some("j"));
    assert!(outcome.failed[1].message.contains("invalid JSON"));
    let ids: Vec<Bson> = documents(&coll)
        .await
        .iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    let landed = if duplicate == 0 { 3 } else { 1 };
    let mut want = vec![Bson::Int64(landed), Bson::Int64(2), Bson::Int64(4)];
    want.sort_by_key(|b| b.as_i64());
    assert_eq!(ids, want);
}

#[tokio::test]
async fn null_keys_are_rejected_rows() {
    let coll = unique("nullkey");
    let dest = destination();
    let rows = batch(vec![
        (text("k"), strs(vec![Some("a"), None])),
        (text("v"), strs(vec![Some("1"), Some("2")])),
    ]);
    let t = target(&coll, &rows, &["k"], WriteMode::Upsert);
    let outcome = write_once(&dest, &t, &rows).await;
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].row, 1);
    assert_eq!(outcome.failed[0].column.as_deref(), Some("k"));
    assert_eq!(documents(&coll).await, vec![doc! {"_id": "a", "v": "1"}]);
}

#[tokio::test]
async fn large_batches_are_split_across_commands() {
    let coll = unique("large");
    let dest = destination();
    let n = 3_500i64;
    let payload = "x".repeat(700);
    let rows = batch(vec![
        (int("id"), ids((0..n).collect())),
        (
            text("p"),
            strs((0..n).map(|_| Some(payload.as_str())).collect()),
        ),
    ]);
    let t = target(&coll, &rows, &["id"], WriteMode::Upsert);
    let outcome = write_once(&dest, &t, &rows).await;
    assert!(outcome.failed.is_empty() && outcome.skipped.is_empty());
    let count = collection(&coll)
        .await
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(count, n as u64);
}

#[tokio::test]
async fn rewriting_many_existing_keys_in_one_batch_completes() {
    // FerretDB 1.x holds a backend connection per matched `multi: false` statement until the
    // command ends and hangs past its pool of 50; a batch of matched keys must still land.
    let coll = unique("rewrite");
    let dest = destination();
    let n = 600i64;
    let first = batch(vec![
        (int("id"), ids((0..n).collect())),
        (text("v"), strs((0..n).map(|_| Some("one")).collect())),
    ]);
    let t = target(&coll, &first, &["id"], WriteMode::Upsert);
    assert!(write_once(&dest, &t, &first).await.failed.is_empty());
    let second = batch(vec![
        (int("id"), ids((0..n).collect())),
        (text("v"), strs((0..n).map(|_| Some("two")).collect())),
    ]);
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        write_once(&dest, &t, &second),
    )
    .await
    .expect("rewriting existing keys hung");
    assert_eq!(outcome.applied(n as usize), n as usize, "{outcome:?}");
    let changed = collection(&coll)
        .await
        .count_documents(doc! {"v": "two"})
        .await
        .unwrap();
    assert_eq!(changed, n as u64);
}

#[tokio::test]
async fn initial_load_inserts_and_updates_keys_another_writer_created() {
    let coll = unique("initial");
    let dest = destination();
    let rows = people(vec![1, 2, 3], vec!["ada", "bob", "cy"]);
    let mut t = target(&coll, &rows, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    // The collection is empty when the writer opens, so it loads with `insert` commands; a
    // document another writer creates meanwhile turns that row into an upsert.
    let mut writer = dest.open(&t).await.unwrap();
    collection(&coll)
        .await
        .insert_one(doc! {"_id": 2i64, "name": "old", "owner": "crm"})
        .await
        .unwrap();
    let outcome = writer.write(&rows).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(outcome.applied(3), 3, "{outcome:?}");
    assert_eq!(
        documents(&coll).await,
        vec![
            doc! {"_id": 1i64, "name": "ada"},
            doc! {"_id": 2i64, "name": "bob", "owner": "crm"},
            doc! {"_id": 3i64, "name": "cy"},
        ]
    );
}
