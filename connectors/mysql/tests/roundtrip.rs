//! Every canonical type written through the destination (into a table it creates) and read
//! back through the source comes back with the same values.

mod common;

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, TimeUnit, TimestampMicrosecondType};
use backflow_connector_core::types::{json_field, uuid_field};
use backflow_connector_core::{Destination, WriteMode, WriteOutcome};
use common::*;

const DAY: i64 = 86_400_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_canonical_type_round_trips() {
    let table = unique("types");
    let fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("dec", DataType::Decimal128(38, 9), true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("bytes", DataType::Binary, true),
        Field::new("day", DataType::Date32, true),
        Field::new("tod", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "instant",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        json_field("doc"),
        uuid_field("uid"),
    ];
    let s = schema(fields);
    let uuid_bytes: Vec<u8> = (0u8..16).map(|b| b * 17).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(7), None])),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(99_999_999_999_999_999_999_999_999_999_999_999_999i128),
                Some(-5),
                None,
            ])
            .with_precision_and_scale(38, 9)
            .unwrap(),
        ),
        Arc::new(Float32Array::from(vec![
            Some(1.234_567_8),
            Some(f32::MAX),
            None,
        ])),
        Arc::new(Float64Array::from(vec![
            Some(0.1 + 0.2),
            Some(f64::MIN_POSITIVE),
            None,
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(StringArray::from(vec![
            Some("it's a \\ back'slash 😀"),
            Some(""),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 39, 92, 255][..]),
            Some(&[][..]),
            None,
        ])),
        Arc::new(Date32Array::from(vec![
            Some(-354_285),
            Some(2_932_896),
            None,
        ])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            Some(DAY - 1),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(-30_610_224_000_000_000),
            Some(253_402_300_799_999_999),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(-1), Some(1_700_000_000_123_456), None])
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![
            Some(r#"{"a": [1, 2], "b": "it's"}"#),
            Some("[]"),
            None,
        ])),
        Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(uuid_bytes.clone()), Some(vec![0u8; 16]), None].into_iter(),
                16,
            )
            .unwrap(),
        ),
    ];
    let batch = RecordBatch::try_new(s.clone(), columns).unwrap();
    let mut w = destination()
        .open(&target(&table, s.clone(), &["id"], WriteMode::Upsert, true))
        .await
        .unwrap();
    assert_eq!(w.write(&batch).await.unwrap(), WriteOutcome::default());
    w.close().await.unwrap();

    let (read_schema, batches) = read_all(&format!("SELECT * FROM {table} ORDER BY id"), 2).await;
    assert_eq!(batches.len(), 2, "batch size 2 over 3 rows");
    let read = concat_batches(&read_schema, &batches).unwrap();
    // MariaDB stores JSON as text and BINARY(16) reads as bytes; zoned timestamps come back
    // as the UTC wall clock. Everything else keeps its Arrow type.
    let relaxed = ["doc", "uid", "instant"];
    for (i, field) in s.fields().iter().enumerate() {
        let got = read.column(i);
        if !relaxed.contains(&field.name().as_str()) {
            assert_eq!(
                got.data_type(),
                field.data_type(),
                "type of {}",
                field.name()
            );
        }
        let got: ArrayRef = if field.name() == "instant" {
            Arc::new(
                got.as_primitive::<TimestampMicrosecondType>()
                    .clone()
                    .with_timezone("UTC"),
            )
        } else {
            cast(got, field.data_type()).unwrap()
        };
        assert_eq!(
            got.to_data(),
            batch.column(i).to_data(),
            "values of {}",
            field.name()
        );
    }
    let mut conn = admin().await;
    let created = rows(
        &mut conn,
        &format!(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' \
             AND COLUMN_NAME IN ('dec', 'instant', 'uid', 'tod', 'flag')"
        ),
    )
    .await;
    assert_eq!(
        created,
        vec![
            "dec|decimal(38,9)",
            "flag|tinyint(1)",
            "instant|datetime(6)",
            "tod|time(6)",
            "uid|binary(16)"
        ]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuids_go_into_an_existing_char36_column_as_text() {
    let table = unique("uuidtext");
    let mut conn = admin().await;
    exec(
        &mut conn,
        &format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, uid CHAR(36))"),
    )
    .await;
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        uuid_field("uid"),
    ]);
    let bytes: Vec<u8> = (0u8..16).collect();
    let batch = RecordBatch::try_new(
        s.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(bytes)].into_iter(),
                    16,
                )
                .unwrap(),
            ),
        ],
    )
    .unwrap();
    let mut w = destination()
        .open(&target(&table, s, &["id"], WriteMode::Upsert, false))
        .await
        .unwrap();
    assert_eq!(w.write(&batch).await.unwrap(), WriteOutcome::default());
    w.close().await.unwrap();
    assert_eq!(
        rows(&mut conn, &format!("SELECT * FROM {table}")).await,
        vec!["1|00010203-0405-0607-0809-0a0b0c0d0e0f"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_is_a_rejected_row_naming_the_column() {
    let table = unique("nan");
    let s = schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
    ]);
    let batch = RecordBatch::try_new(
        s.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            Arc::new(Float64Array::from(vec![f64::NAN, 2.5])),
        ],
    )
    .unwrap();
    let mut w = destination()
        .open(&target(&table, s, &["id"], WriteMode::Upsert, true))
        .await
        .unwrap();
    let out = w.write(&batch).await.unwrap();
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].row, 0);
    assert_eq!(out.failed[0].column.as_deref(), Some("score"));
    w.close().await.unwrap();
    let mut conn = admin().await;
    assert_eq!(
        rows(&mut conn, &format!("SELECT * FROM {table}")).await,
        vec!["2|2.5"]
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}
