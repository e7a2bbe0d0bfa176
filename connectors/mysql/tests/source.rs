//! The source against a real MariaDB: streaming in batches, the type mapping of common MySQL
//! column types, and errors for bad queries.

mod common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type, TimeUnit};
use backflow_connector_core::{ErrorKind, ReadOptions, Source};
use common::*;
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_large_result_in_batches_of_the_requested_size() {
    let (_, batches) = read_all(
        "SELECT CAST(seq AS SIGNED) AS n, CONCAT('row ', seq) AS label FROM seq_1_to_25000",
        4096,
    )
    .await;
    let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes.len(), 7);
    assert!(sizes[..6].iter().all(|s| *s == 4096), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 25_000);
    let last = batches.last().unwrap();
    assert_eq!(
        last.column(0)
            .as_primitive::<Int64Type>()
            .value(last.num_rows() - 1),
        25_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_mysql_types_to_canonical_arrow() {
    let table = unique("srctypes");
    let mut conn = admin().await;
    exec(
        &mut conn,
        &format!(
            "CREATE TABLE {table} (u INT UNSIGNED, big BIGINT UNSIGNED, amount DECIMAL(12,2), \
             ok BOOLEAN, at TIMESTAMP(6) NULL, label VARCHAR(10), raw VARBINARY(4), y YEAR)"
        ),
    )
    .await;
    exec(
        &mut conn,
        &format!(
            "INSERT INTO {table} VALUES (4294967295, 18446744073709551615, -1234.56, 1, \
             '2024-05-06 07:08:09.123456', 'é', X'00FF', 2024), \
             (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ),
    )
    .await;
    let (schema, batches) = read_all(&format!("SELECT * FROM {table}"), 100).await;
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Decimal128(20, 0),
            DataType::Decimal128(12, 2),
            DataType::Boolean,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
            DataType::Binary,
            DataType::Int16,
        ]
    );
    let b = &batches[0];
    assert_eq!(
        b.column(0).as_primitive::<Int64Type>().value(0),
        4_294_967_295
    );
    assert_eq!(
        b.column(1).as_primitive::<Decimal128Type>().value(0),
        18_446_744_073_709_551_615
    );
    assert_eq!(
        b.column(2).as_primitive::<Decimal128Type>().value(0),
        -123_456
    );
    assert!(b.column(3).as_boolean().value(0));
    assert_eq!(
        b.column(4)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(0),
        1_714_979_289_123_456
    );
    assert_eq!(b.column(5).as_string::<i32>().value(0), "é");
    assert_eq!(b.column(6).as_binary::<i32>().value(0), &[0, 255]);
    for c in b.columns() {
        assert!(c.is_null(1));
    }
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_fail_with_the_servers_message() {
    let e = source()
        .read("SELEC 1", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.message().contains("SQL syntax"), "{e}");

    let e = source()
        .read("SELECT * FROM no_such_table_here", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let e = source()
        .read(
            "SELECT ST_GeomFromText('POINT(1 1)') AS shape",
            ReadOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert_eq!(e.column(), Some("shape"));

    let e = source()
        .read("  ;", ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_runs_read_only() {
    let table = unique("readonly");
    let mut conn = admin().await;
    exec(&mut conn, &format!("CREATE TABLE {table} (id INT)")).await;
    // A query that is not a SELECT cannot even be described.
    let e = source()
        .read(&format!("DELETE FROM {table}"), ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    let mut stream = source()
        .read(
            &format!("SELECT COUNT(*) AS n FROM {table}"),
            ReadOptions::default(),
        )
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}
