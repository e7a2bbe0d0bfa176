//! The Firestore destination against the Node.js Firestore emulator: modes, key shapes, type
//! mapping, rejected rows and bad input.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use backflow_connector_core::types::{json_field, uuid_field};
use backflow_connector_core::{Destination, ErrorKind, WriteMode};
use backflow_firestore::validate_destination;
use common::*;
use googleapis_tonic_google_firestore_v1::google::firestore::v1::value::ValueType;
use googleapis_tonic_google_firestore_v1::google::firestore::v1::{ArrayValue, MapValue, Value};

fn scores(ids: &[i64], risks: &[&str]) -> arrow::array::RecordBatch {
    batch(
        vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("risk", DataType::Utf8, true),
        ],
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(risks.to_vec())),
        ],
    )
}

#[tokio::test]
async fn upsert_creates_and_updates_only_the_mapped_fields() {
    let collection = unique("upsert");
    seed(
        &collection,
        "1",
        vec![("risk", string("old")), ("owner_note", string("keep me"))],
    )
    .await;
    let rows = scores(&[1, 2], &["high", "low"]);
    let target = target(
        &collection,
        rows.schema(),
        &["customer_id"],
        WriteMode::Upsert,
    );
    let outcome = write(&target, &rows).await;
    assert_eq!(outcome, Default::default());
    let docs = documents(&collection).await;
    assert_eq!(docs.len(), 2);
    assert_eq!(docs["1"]["risk"], string("high"));
    assert_eq!(docs["1"]["customer_id"], int(1));
    assert_eq!(
        docs["1"]["owner_note"],
        string("keep me"),
        "fields other writers own survive"
    );
    assert_eq!(docs["2"]["risk"], string("low"));
}

#[tokio::test]
async fn insert_skips_existing_documents_and_leaves_them_alone() {
    let collection = unique("insert");
    seed(&collection, "1", vec![("risk", string("theirs"))]).await;
    let rows = scores(&[1, 2, 3], &["a", "b", "c"]);
    let target = target(
        &collection,
        rows.schema(),
        &["customer_id"],
        WriteMode::Insert,
    );
    let outcome = write(&target, &rows).await;
    assert_eq!(outcome.skipped, vec![0]);
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let docs = documents(&collection).await;
    assert_eq!(docs["1"]["risk"], string("theirs"));
    assert_eq!(docs["2"]["risk"], string("b"));
    assert_eq!(docs["3"]["risk"], string("c"));
}

#[tokio::test]
async fn update_never_creates_and_masks_the_mapped_fields() {
    let collection = unique("update");
    seed(
        &collection,
        "2",
        vec![("risk", string("old")), ("owner_note", string("keep"))],
    )
    .await;
    let rows = scores(&[1, 2], &["x", "y"]);
    let target = target(
        &collection,
        rows.schema(),
        &["customer_id"],
        WriteMode::Update,
    );
    let outcome = write(&target, &rows).await;
    assert_eq!(outcome.skipped, vec![0]);
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let docs = documents(&collection).await;
    assert_eq!(docs.len(), 1, "update mode created a document: {docs:?}");
    assert_eq!(docs["2"]["risk"], string("y"));
    assert_eq!(docs["2"]["owner_note"], string("keep"));
}

#[tokio::test]
async fn mirror_deletes_and_reports_missing_keys_skipped() {
    let collection = unique("mirror");
    let rows = scores(&[1, 2, 3], &["a", "b", "c"]);
    let target = target(
        &collection,
        rows.schema(),
        &["customer_id"],
        WriteMode::Upsert,
    );
    write(&target, &rows).await;
    let keys = batch(
        vec![Field::new("customer_id", DataType::Int64, false)],
        vec![Arc::new(Int64Array::from(vec![1, 3, 99]))],
    );
    let outcome = delete(&target, &keys).await;
    assert_eq!(outcome.skipped, vec![2], "key 99 was never written");
    assert!(outcome.failed.is_empty());
    let docs = documents(&collection).await;
    assert_eq!(docs.keys().collect::<Vec<_>>(), vec!["2"]);
}

#[tokio::test]
async fn composite_and_text_keys_become_escaped_document_ids() {
    let collection = unique("keys");
    let rows = batch(
        vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
            Field::new("n", DataType::Int32, true),
        ],
        vec![
            Arc::new(StringArray::from(vec!["eu/west", "us|east", "50%"])),
            Arc::new(Date32Array::from(vec![19_000, 19_001, 0])),
            Arc::new(Int32Array::from(vec![1, 2, 3])),
        ],
    );
    let target = target(
        &collection,
        rows.schema(),
        &["region", "day"],
        WriteMode::Upsert,
    );
    assert_eq!(write(&target, &rows).await, Default::default());
    let docs = documents(&collection).await;
    let ids: Vec<_> = docs.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        vec![
            "50%25|1970-01-01",
            "eu%2Fwest|2022-01-08",
            "us%7Ceast|2022-01-09"
        ]
    );
    assert_eq!(docs["eu%2Fwest|2022-01-08"]["region"], string("eu/west"));
    // Deleting by the same key finds the same document.
    let keys = rows.project(&[0, 1]).unwrap();
    let outcome = delete(&target, &keys).await;
    assert!(
        outcome.skipped.is_empty() && outcome.failed.is_empty(),
        "{outcome:?}"
    );
    assert!(documents(&collection).await.is_empty());
}

#[tokio::test]
async fn every_canonical_type_maps_to_its_documented_value() {
    let collection = unique("types");
    let ts = 1_700_000_000_123_456i64;
    let uuid = [
        0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("bytes", DataType::Binary, true),
        Field::new("amount", DataType::Decimal128(12, 3), true),
        Field::new("day", DataType::Date32, true),
        Field::new("at", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new(
            "local",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "instant",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        json_field("doc"),
        uuid_field("uid"),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(Int16Array::from(vec![Some(-7), None])),
        Arc::new(Int32Array::from(vec![Some(70_000), None])),
        Arc::new(Float32Array::from(vec![Some(1.5), None])),
        Arc::new(Float64Array::from(vec![Some(-2.25), None])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(StringArray::from(vec![Some("héllo"), None])),
        Arc::new(BinaryArray::from(vec![Some(&[0u8, 255][..]), None])),
        Arc::new(
            Decimal128Array::from(vec![Some(123_456_789_012), None])
                .with_precision_and_scale(12, 3)
                .unwrap(),
        ),
        Arc::new(Date32Array::from(vec![Some(19_000), None])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(3_723_000_004),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(ts), None])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(ts), None]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![
            Some(r#"{"tags": ["a", 1, null], "nested": {"ok": true, "x": 0.5}}"#),
            None,
        ])),
        Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(uuid), None].into_iter(),
                16,
            )
            .unwrap(),
        ),
    ];
    let rows = batch(fields, columns);
    let target = target(&collection, rows.schema(), &["id"], WriteMode::Upsert);
    assert_eq!(write(&target, &rows).await, Default::default());
    let docs = documents(&collection).await;
    let v = |t: ValueType| Value {
        value_type: Some(t),
    };
    let stamp = v(ValueType::TimestampValue(prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 123_456_000,
    }));
    let one = &docs["1"];
    assert_eq!(one["i16"], int(-7));
    assert_eq!(one["i32"], int(70_000));
    assert_eq!(one["f32"], v(ValueType::DoubleValue(1.5)));
    assert_eq!(one["f64"], v(ValueType::DoubleValue(-2.25)));
    assert_eq!(one["flag"], v(ValueType::BooleanValue(true)));
    assert_eq!(one["text"], string("héllo"));
    assert_eq!(one["bytes"], v(ValueType::BytesValue(vec![0, 255])));
    assert_eq!(one["amount"], string("123456789.012"));
    assert_eq!(one["day"], string("2022-01-08"));
    assert_eq!(one["at"], string("01:02:03.000004"));
    assert_eq!(one["local"], stamp);
    assert_eq!(one["instant"], stamp);
    assert_eq!(one["uid"], string("12345678-9abc-def0-0102-030405060708"));
    let tags = v(ValueType::ArrayValue(ArrayValue {
        values: vec![string("a"), int(1), null()],
    }));
    let nested = v(ValueType::MapValue(MapValue {
        fields: [
            ("ok".to_string(), v(ValueType::BooleanValue(true))),
            ("x".to_string(), v(ValueType::DoubleValue(0.5))),
        ]
        .into(),
    }));
    let doc = v(ValueType::MapValue(MapValue {
        fields: [("tags".to_string(), tags), ("nested".to_string(), nested)].into(),
    }));
    assert_eq!(one["doc"], doc);
    let two = &docs["2"];
    assert_eq!(two.len(), 15, "NULLs are stored as null fields: {two:?}");
    assert!(two
        .iter()
        .filter(|(k, _)| *k != "id")
        .all(|(_, value)| *value == null()));
}

#[tokio::test]
async fn oversize_and_unrepresentable_rows_are_rejected_and_the_rest_written() {
    let collection = unique("rejects");
    let big = "x".repeat(1 << 20);
    let rows = batch(
        vec![Field::new("id", DataType::Int64, false), json_field("doc")],
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec![
                format!(r#""{big}""#),
                "[[1, 2]]".to_string(),
                "{not json".to_string(),
                r#"{"fine": [1]}"#.to_string(),
            ])),
        ],
    );
    let target = target(&collection, rows.schema(), &["id"], WriteMode::Upsert);
    let outcome = write(&target, &rows).await;
    let rejected: Vec<_> = outcome.failed.iter().map(|f| f.row).collect();
    assert_eq!(rejected, vec![0, 1, 2], "{outcome:?}");
    assert!(outcome.failed[0].message.contains("1 MiB"), "{outcome:?}");
    assert_eq!(outcome.failed[1].column.as_deref(), Some("doc"));
    assert!(outcome.failed[1].message.contains("array"), "{outcome:?}");
    assert!(outcome.failed[2].message.contains("JSON"), "{outcome:?}");
    let docs = documents(&collection).await;
    assert_eq!(docs.keys().collect::<Vec<_>>(), vec!["4"]);
}

#[tokio::test]
async fn null_keys_are_rejected_rows() {
    let collection = unique("nullkey");
    let rows = batch(
        vec![Field::new("id", DataType::Utf8, true)],
        vec![Arc::new(StringArray::from(vec![Some("a"), None]))],
    );
    let target = target(&collection, rows.schema(), &["id"], WriteMode::Upsert);
    let outcome = write(&target, &rows).await;
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].row, 1);
    assert_eq!(outcome.failed[0].column.as_deref(), Some("id"));
}

#[tokio::test]
async fn more_than_one_commit_of_writes_lands_in_full() {
    let collection = unique("many");
    let n = 1_234i64;
    let ids: Vec<i64> = (0..n).collect();
    let risks: Vec<String> = ids.iter().map(|i| format!("r{i}")).collect();
    let risks: Vec<&str> = risks.iter().map(String::as_str).collect();
    let rows = scores(&ids, &risks);
    let target = target(
        &collection,
        rows.schema(),
        &["customer_id"],
        WriteMode::Insert,
    );
    assert_eq!(write(&target, &rows).await, Default::default());
    let docs = documents(&collection).await;
    assert_eq!(docs.len(), n as usize);
    assert_eq!(docs["1233"]["risk"], string("r1233"));
}

#[tokio::test]
async fn bad_targets_fail_naming_the_problem() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Float64, false),
        Field::new("__name__", DataType::Utf8, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let d = destination();
    let e = d
        .check(&target(
            "users/u1",
            schema.clone(),
            &["v"],
            WriteMode::Upsert,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("collection"), "{e}");
    let only = |cols: &[usize]| Arc::new(schema.project(cols).unwrap());
    let e = d
        .check(&target("c", only(&[0, 2]), &["id"], WriteMode::Upsert))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.column()),
        (ErrorKind::Schema, Some("id")),
        "{e}"
    );
    let e = d
        .check(&target("c", only(&[1, 2]), &["v"], WriteMode::Upsert))
        .await
        .unwrap_err();
    assert_eq!(e.column(), Some("__name__"), "{e}");
    let e = d
        .check(&target("c", only(&[2]), &["missing"], WriteMode::Upsert))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.column()),
        (ErrorKind::Config, Some("missing")),
        "{e}"
    );
    d.check(&target(
        &unique("ok"),
        only(&[2]),
        &["v"],
        WriteMode::Upsert,
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unreachable_emulator_is_a_retryable_connectivity_error() {
    let d = validate_destination(&serde_json::json!({
        "project": PROJECT, "emulator_host": "127.0.0.1:1"
    }))
    .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
    let e = d
        .check(&target("c", schema, &["v"], WriteMode::Upsert))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
}
