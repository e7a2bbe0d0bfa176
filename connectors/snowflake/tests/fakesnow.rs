//! The source against fakesnow's HTTP server: every Snowflake type to canonical Arrow,
//! batching, and the errors a user sees.

mod common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};
use backflow_connector_core::types::is_json;
use backflow_connector_core::{ErrorKind, Source};
use common::{read_all, source, unique};

#[tokio::test]
async fn every_type_round_trips_to_canonical_arrow() -> anyhow::Result<()> {
    let source = source();
    let table = unique("types");
    source
        .execute(&format!(
            "CREATE TABLE {table} (id INT, n NUMBER(38,10), small NUMBER(5,2), f FLOAT, \
             s VARCHAR, b BINARY, flag BOOLEAN, d DATE, t TIME, ts TIMESTAMP_NTZ, \
             tsl TIMESTAMP_LTZ, tstz TIMESTAMP_TZ, v VARIANT, o OBJECT, a ARRAY)"
        ))
        .await?;
    source
        .execute(&format!(
            "INSERT INTO {table} SELECT 1, 1234567890123456789012345678.0123456789, -123.45, \
             2.5, 'héllo ☃ 日本', TO_BINARY('00ff', 'HEX'), TRUE, '2024-01-02', \
             '12:34:56.789012', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456', \
             '2024-01-02 03:04:05.123456 +02:00'::TIMESTAMP_TZ, \
             PARSE_JSON('{{\"a\": [1, \"x\"]}}'), OBJECT_CONSTRUCT('k', 'v'), \
             ARRAY_CONSTRUCT(1, 'two')"
        ))
        .await?;
    source
        .execute(&format!("INSERT INTO {table} (id) VALUES (2)"))
        .await?;

    let (schema, batches) =
        read_all(&source, &format!("SELECT * FROM {table} ORDER BY id"), 1024).await?;
    let types: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let utc = Some("UTC".into());
    let expected = vec![
        ("ID", DataType::Int64),
        ("N", DataType::Decimal128(38, 10)),
        ("SMALL", DataType::Decimal128(5, 2)),
        ("F", DataType::Float64),
        ("S", DataType::Utf8),
        ("B", DataType::Binary),
        ("FLAG", DataType::Boolean),
        ("D", DataType::Date32),
        ("T", DataType::Time64(TimeUnit::Microsecond)),
        ("TS", DataType::Timestamp(TimeUnit::Microsecond, None)),
        (
            "TSL",
            DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
        ),
        ("TSTZ", DataType::Timestamp(TimeUnit::Microsecond, utc)),
        ("V", DataType::Utf8),
        ("O", DataType::Utf8),
        ("A", DataType::Utf8),
    ];
    let expected: Vec<(String, DataType)> = expected
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    assert_eq!(types, expected);
    for name in ["V", "O", "A"] {
        assert!(is_json(schema.field_with_name(name)?), "{name} is JSON");
    }
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.schema(), schema, "batches carry the declared schema");
    assert_eq!(batch.num_rows(), 2);
    let col = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();

    assert_eq!(col("ID").as_primitive::<Int64Type>().value(0), 1);
    assert_eq!(
        col("N").as_primitive::<Decimal128Type>().value_as_string(0),
        "1234567890123456789012345678.0123456789"
    );
    assert_eq!(
        col("SMALL")
            .as_primitive::<Decimal128Type>()
            .value_as_string(0),
        "-123.45"
    );
    assert_eq!(col("F").as_primitive::<Float64Type>().value(0), 2.5);
    assert_eq!(col("S").as_string::<i32>().value(0), "héllo ☃ 日本");
    assert_eq!(col("B").as_binary::<i32>().value(0), &[0x00, 0xff]);
    assert!(col("FLAG").as_boolean().value(0));
    assert_eq!(col("D").as_primitive::<Date32Type>().value(0), 19_724);
    assert_eq!(
        col("T").as_primitive::<Time64MicrosecondType>().value(0),
        (12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_012
    );
    let wall = 1_704_164_645_123_456i64; // 2024-01-02 03:04:05.123456
    assert_eq!(
        col("TS")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        wall
    );
    assert_eq!(
        col("TSL")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        wall
    );
    assert_eq!(
        col("TSTZ")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        wall - 2 * 3600 * 1_000_000,
        "a zoned timestamp is the instant in UTC"
    );
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(col(name).as_string::<i32>().value(0)).unwrap()
    };
    assert_eq!(json("V"), serde_json::json!({"a": [1, "x"]}));
    assert_eq!(json("O"), serde_json::json!({"k": "v"}));
    assert_eq!(json("A"), serde_json::json!([1, "two"]));

    for (i, field) in schema.fields().iter().enumerate().skip(1) {
        assert!(batch.column(i).is_null(1), "{} is NULL", field.name());
    }
    Ok(())
}

#[tokio::test]
async fn results_are_cut_into_batches_of_the_requested_size() -> anyhow::Result<()> {
    let source = source();
    let (schema, batches) = read_all(
        &source,
        "SELECT seq4() AS id, 'row ' || seq4() AS label FROM TABLE(GENERATOR(ROWCOUNT => 10000))",
        3000,
    )
    .await?;
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    // The batch size is a ceiling: a batch never spans two of Snowflake's IPC batches.
    assert!(batches
        .iter()
        .all(|b| b.num_rows() <= 3000 && b.num_rows() > 0));
    assert!(batches.len() >= 4);
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, (0..10_000).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn an_empty_result_has_its_schema_and_no_rows() -> anyhow::Result<()> {
    let source = source();
    let (schema, batches) = read_all(
        &source,
        "SELECT 'a' AS x, 1.5::NUMBER(4,2) AS y WHERE 1 = 0",
        100,
    )
    .await?;
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(4, 2));
    assert!(batches.iter().all(|b| b.num_rows() == 0));
    Ok(())
}

#[tokio::test]
async fn bad_sql_carries_snowflakes_message_and_code() {
    let source = source();
    let e = read_all(&source, "SELEC 1", 100).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert_eq!(e.code(), Some("001003"), "{e}");
    assert!(e.message().contains("Unexpected token"), "{e}");
    assert!(!e.is_retryable());

    let missing = unique("missing");
    let e = read_all(&source, &format!("SELECT * FROM {missing}"), 100)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.code(), Some("002003"), "{e}");
    assert!(e.message().contains(&missing), "{e}");
}

#[tokio::test]
async fn check_logs_in_and_runs_a_query() {
    source().check().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_host_is_a_retryable_connectivity_error() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = backflow_snowflake::validate_source(&common::config_for(&format!(
        "http://127.0.0.1:{port}"
    )))
    .unwrap();
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    assert!(!e.message().contains("fakesnow-ignores-it"), "{e}");
}
