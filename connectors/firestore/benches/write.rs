//! Write throughput into the Firestore emulator: an initial load, then a 1% change.
//!
//!   eval "$(scripts/services.sh env)"
//!   cargo bench -p backflow-firestore --bench write [-- ROWS]
//!
//! Prints rows per second. The Node.js emulator, not the connector, is the bottleneck: it
//! copies a collection's document map for every new document, so creating documents slows
//! down as the collection grows (2,000 rows: ~2,400 rows/s; 20,000: ~140 rows/s) while
//! updating existing ones stays fast. The numbers say little about Google's service.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use backflow_connector_core::{Destination, WriteMode, WriteTarget};

const BATCH: usize = 5_000;

fn rows(ids: &[i64], version: &str) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("segment", DataType::Utf8, true),
        Field::new("ltv", DataType::Float64, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("{version}-{}", i % 17)),
            )),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|i| *i as f64 * 1.5),
            )),
        ],
    )
    .unwrap()
}

async fn run(
    destination: &dyn Destination,
    target: &WriteTarget,
    ids: &[i64],
    version: &str,
) -> f64 {
    let started = Instant::now();
    let mut writer = destination.open(target).await.unwrap();
    for chunk in ids.chunks(BATCH) {
        let outcome = writer.write(&rows(chunk, version)).await.unwrap();
        assert!(
            outcome.failed.is_empty() && outcome.skipped.is_empty(),
            "{outcome:?}"
        );
    }
    writer.close().await.unwrap();
    ids.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let host = std::env::var("BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST")
        .expect("BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST is not set; run scripts/services.sh start");
    let destination = backflow_firestore::validate_destination(&serde_json::json!({
        "project": "backflow-bench", "emulator_host": host
    }))
    .unwrap();
    let target = WriteTarget {
        object: format!("bench_{:016x}", rand::random::<u64>()),
        schema: rows(&[], "").schema(),
        primary_key: vec!["customer_id".into()],
        mode: WriteMode::Upsert,
        create_table: true,
        deletes: false,
        initial_load: true,
    };
    let all: Vec<i64> = (0..n).collect();
    let initial = run(&destination, &target, &all, "a").await;
    let changed: Vec<i64> = (0..n).step_by(100).collect();
    let change = run(&destination, &target, &changed, "b").await;
    println!("firestore emulator, {n} rows x 3 columns, batches of {BATCH}");
    println!("  initial load (upsert): {initial:>10.0} rows/s");
    println!(
        "  1% change (upsert):    {change:>10.0} rows/s ({} rows)",
        changed.len()
    );
}
