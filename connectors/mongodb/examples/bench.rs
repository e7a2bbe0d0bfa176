//! Benchmark of writes into a MongoDB-protocol server: an initial load, then a 1% change.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo run --release -p backflow-mongodb --example bench -- [--rows 100000] [--batch 8192] [--no-direct]
//! ```
//!
//! `BACKFLOW_BENCH_ROWS` and `BACKFLOW_BENCH_BATCH` work too; `RUST_LOG=backflow_mongodb=debug`
//! shows each batch. The initial sync writes every
//! row into an empty collection (with `insert` commands; `--no-direct` forces upsert
//! statements), then a mirror-mode sync applies a 1% change: a third updated rows, a third new
//! rows, a third deleted keys. The server is `BACKFLOW_TEST_MONGODB_URL`; each run writes a
//! fresh collection and drops it afterwards. Decimals are written as text by default because
//! FerretDB 1.x has no Decimal128 (`BACKFLOW_BENCH_DECIMALS=decimal128` against MongoDB).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use backflow_connector_core::types::json_field;
use backflow_connector_core::{Destination, WriteMode, WriteTarget};

fn setting(flag: &str, env: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == flag) {
        let v = args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        return Ok(v.parse()?);
    }
    match std::env::var(env) {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(default),
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        json_field("attrs"),
    ]))
}

/// Rows `ids`, with values depending on `version` so a change is visible.
fn rows(ids: &[i64], version: i64) -> anyhow::Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("customer {i} v{version}")),
        )),
        Arc::new(Float64Array::from_iter_values(
            ids.iter()
                .map(|i| (*i % 1000) as f64 / 7.0 + version as f64),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(ids.iter().map(|i| i128::from(*i) * 101 + 7))
                .with_precision_and_scale(12, 2)?,
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                ids.iter()
                    .map(|i| 1_700_000_000_000_000 + i * 1_000 + version),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|i| {
            format!(r#"{{"tier":"t{}","tags":["a","b"],"v":{version}}}"#, i % 5)
        }))),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// Opens a writer, writes `ids` in batches of `batch` (every row must be applied), deletes
/// `removed` (every key must exist), closes; returns the elapsed seconds.
async fn sync(
    dest: &dyn Destination,
    target: &WriteTarget,
    ids: &[i64],
    removed: &[i64],
    batch: usize,
    version: i64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut writer = dest.open(target).await?;
    for part in ids.chunks(batch) {
        let outcome = writer.write(&rows(part, version)?).await?;
        anyhow::ensure!(
            outcome.failed.is_empty() && outcome.skipped.is_empty(),
            "rows were not applied: {outcome:?}"
        );
    }
    let keys = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    for part in removed.chunks(batch) {
        let ids: ArrayRef = Arc::new(Int64Array::from(part.to_vec()));
        let outcome = writer
            .delete(&RecordBatch::try_new(keys.clone(), vec![ids])?)
            .await?;
        anyhow::ensure!(
            outcome.failed.is_empty() && outcome.skipped.is_empty(),
            "keys were not deleted: {outcome:?}"
        );
    }
    writer.close().await?;
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let total = setting("--rows", "BACKFLOW_BENCH_ROWS", 100_000)?;
    let batch = setting("--batch", "BACKFLOW_BENCH_BATCH", 8192)?.max(1);
    let statements_only = std::env::args().any(|a| a == "--no-direct");
    let decimals =
        std::env::var("BACKFLOW_BENCH_DECIMALS").unwrap_or_else(|_| "string".to_string());
    let url = std::env::var("BACKFLOW_TEST_MONGODB_URL")
        .map_err(|_| anyhow::anyhow!("BACKFLOW_TEST_MONGODB_URL is not set"))?;
    let dest = backflow_mongodb::validate_destination(&serde_json::json!({
        "url": url, "database": "backflow_bench", "decimals": decimals
    }))?;
    let client = mongodb::Client::with_uri_str(&url).await?;
    let db = client.database("backflow_bench");
    let info = db
        .run_command(mongodb::bson::doc! { "buildInfo": 1 })
        .await?;
    let server = match info.get_str("ferretdbVersion") {
        Ok(v) => format!("FerretDB {v}"),
        Err(_) => format!("MongoDB {}", info.get_str("version").unwrap_or("?")),
    };
    let collection = format!("bench_{}", std::process::id());
    let mut target = WriteTarget {
        object: collection.clone(),
        schema: schema(),
        primary_key: vec!["id".into()],
        mode: WriteMode::Upsert,
        create_table: true,
        deletes: true,
        initial_load: !statements_only,
    };
    dest.check(&target).await?;

    // The initial sync: every row is new.
    let ids: Vec<i64> = (0..total as i64).collect();
    let initial = sync(&dest, &target, &ids, &[], batch, 1).await?;

    // A 1% change in mirror mode, as the engine sends it: a third of it changed rows, a third
    // new rows (written in the same batches), a third removed keys.
    target.initial_load = false;
    let share = (total / 300).max(1) as i64;
    let mut changed: Vec<i64> = (0..share).map(|k| k * 300 + 42).collect();
    changed.extend(total as i64..total as i64 + share);
    let removed: Vec<i64> = (0..share).map(|k| k * 300 + 142).collect();
    let change = sync(&dest, &target, &changed, &removed, batch, 2).await?;
    let change_rows = changed.len() + removed.len();

    println!(
        "mongodb destination benchmark against {server}: {total} rows, batches of {batch}, \
         decimals as {decimals}"
    );
    println!(
        "  initial sync ({})  : {total:>9} rows in {initial:>7.2}s = {:>9.0} rows/s",
        if statements_only {
            "upserts"
        } else {
            "inserts"
        },
        total as f64 / initial
    );
    println!(
        "  1% change sync      : {change_rows:>9} rows in {change:>7.2}s = {:>9.0} rows/s \
         ({share} updated, {share} inserted, {share} deleted)",
        change_rows as f64 / change
    );

    db.collection::<mongodb::bson::Document>(&collection)
        .drop()
        .await?;
    Ok(())
}
