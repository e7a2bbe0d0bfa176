//! How long writing a snapshot takes (a report, not a test): `ROWS` keys (default 1,000,000)
//! of 9 bytes with random hashes, written five times to a local store; prints each time and
//! the file size.
//!
//! `cargo run --release -p backflow-engine --example snapshot_write -- 1000000`

// A report printed for a human is this program's output.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use arrow::datatypes::{DataType, Field};
use backflow_engine::snapshot::SnapshotBuilder;
use backflow_engine::{Snapshot, SnapshotStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let store = SnapshotStore::local(dir.path())?;
    let key_fields = vec![Field::new("id", DataType::Int64, false)];
    let mut times = Vec::new();
    for attempt in 0..5 {
        let mut added = SnapshotBuilder::new(key_fields.clone());
        for i in 0..rows {
            let mut key = vec![1u8];
            key.extend_from_slice(&i.to_be_bytes());
            added.push(&key, xxhash_rust::xxh3::xxh3_128(&key))?;
        }
        let previous = Snapshot::empty(key_fields.clone());
        let started = Instant::now();
        let written = store
            .write("bench", &format!("run{attempt}"), &previous, added)
            .await?;
        times.push(started.elapsed().as_secs_f64());
        let bytes = std::fs::metadata(dir.path().join(&written.path))?.len();
        println!(
            "wrote {} keys in {:.3} s ({:.1} MB)",
            written.rows,
            times[attempt],
            bytes as f64 / 1e6
        );
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.3} s", times[times.len() / 2]);
    Ok(())
}
