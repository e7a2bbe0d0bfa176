//! `backflow demo-data`: writes the quickstart's small warehouse, customers with scores, as a
//! Parquet file. Revisions are deterministic, so the quickstart can show exactly which rows a
//! re-sync moves.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use clap::Args;

/// Options of `backflow demo-data`.
#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 100_000)]
    customers: i64,
    /// Revision of the data: each revision after 1 rescores every 100th customer.
    #[arg(long, default_value_t = 1)]
    revision: i64,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
}

/// Writes the file.
pub fn run(args: DemoDataArgs) -> Result<()> {
    let n = args.customers;
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("churn_risk", DataType::Float64, true),
        Field::new("ltv", DataType::Decimal128(12, 2), true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let ids: Vec<i64> = (1..=n).collect();
    let rescored = |id: i64| args.revision > 1 && id % 100 == 0;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|id| format!("customer{id}@example.com")),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.iter()
                .map(|id| ["free", "pro", "team"][(id % 3) as usize]),
        )),
        Arc::new(Float64Array::from_iter_values(ids.iter().map(|&id| {
            let base = ((id * 7919) % 1000) as f64 / 1000.0;
            if rescored(id) {
                (base + 0.25 * (args.revision - 1) as f64).min(1.0)
            } else {
                base
            }
        }))),
        Arc::new(
            Decimal128Array::from_iter_values(
                ids.iter().map(|&id| ((id * 104_729) % 5_000_000) as i128),
            )
            .with_precision_and_scale(12, 2)?,
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(ids.iter().map(|&id| {
                let day = if rescored(id) { args.revision } else { 1 };
                1_735_689_600_000_000 + day * 86_400_000_000 + id
            }))
            .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = args.out.with_extension("parquet.tmp");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&tmp)?, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&tmp, &args.out)?;
    println!(
        "wrote {n} customers (revision {}) to {}",
        args.revision,
        args.out.display()
    );
    Ok(())
}
