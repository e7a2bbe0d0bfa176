//! Incremental behaviour: only changed rows are written, and mirror deletes only what
//! Backflow wrote.

mod common;

use backflow_engine::SyncMode;
use common::*;

#[tokio::test]
async fn one_percent_change_writes_only_the_changed_rows() {
    let pool = pg().await;
    let (src, dst, before) = (unique("src"), unique("dst"), unique("before"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, name text, amount numeric(12,2), at timestamptz);
             INSERT INTO {src} SELECT g, md5(g::text), g / 7.0, '2024-01-01'::timestamptz + g * interval '1 minute'
             FROM generate_series(1, 10000) g;"
        ),
    )
    .await;
    let mut h = pg_sync(
        "incremental",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Mirror,
    );
    let first = h.ok().await;
    assert_eq!(first.counts.written, 10_000);
    exec(
        &pool,
        &format!("CREATE TABLE {before} AS SELECT id, xmin::text AS x FROM {dst}"),
    )
    .await;

    // 1% updated, 0.5% deleted, 0.5% inserted.
    exec(
        &pool,
        &format!(
            "UPDATE {src} SET name = 'changed' WHERE id % 100 = 0;
             DELETE FROM {src} WHERE id % 200 = 1;
             INSERT INTO {src} SELECT g, 'new', 1, now() FROM generate_series(10001, 10050) g;"
        ),
    )
    .await;
    let r = h.ok().await;
    assert_eq!(r.counts.changed, 100);
    assert_eq!(r.counts.removed, 50);
    assert_eq!(r.counts.added, 50);
    assert_eq!(r.counts.written, 150);
    assert_eq!(r.counts.deleted, 50);
    assert_eq!(r.counts.unchanged, 9_850);
    assert_eq!(difference(&pool, &dst, &src).await, 0);

    // Untouched rows keep the transaction id that wrote them in the first run.
    let rewritten = scalar(
        &pool,
        &format!(
            "SELECT count(*) FROM {dst} d JOIN {before} b USING (id)
             WHERE d.xmin::text <> b.x AND d.id % 100 <> 0"
        ),
    )
    .await;
    assert_eq!(rewritten, 0, "untouched rows were rewritten");
    let changed = scalar(
        &pool,
        &format!(
            "SELECT count(*) FROM {dst} d JOIN {before} b USING (id)
             WHERE d.xmin::text <> b.x AND d.id % 100 = 0"
        ),
    )
    .await;
    assert_eq!(changed, 100, "changed rows must have been rewritten");
}

#[tokio::test]
async fn mirror_deletes_only_keys_backflow_wrote() {
    let pool = pg().await;
    let (src, dst) = (unique("src"), unique("dst"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, v text);
             INSERT INTO {src} SELECT g, 'v' || g FROM generate_series(1, 100) g;"
        ),
    )
    .await;
    let mut h = pg_sync(
        "mirror-others",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Mirror,
    );
    h.ok().await;
    // Another writer owns these rows; they were never in the query result.
    exec(
        &pool,
        &format!("INSERT INTO {dst} SELECT g, 'theirs' FROM generate_series(1000, 1009) g"),
    )
    .await;
    exec(&pool, &format!("DELETE FROM {src} WHERE id <= 20")).await;
    let r = h.ok().await;
    assert_eq!(r.counts.deleted, 20);
    assert_eq!(
        scalar(
            &pool,
            &format!("SELECT count(*) FROM {dst} WHERE v = 'theirs'")
        )
        .await,
        10
    );
    assert_eq!(
        scalar(&pool, &format!("SELECT count(*) FROM {dst} WHERE id <= 20")).await,
        0
    );
    assert_eq!(
        scalar(&pool, &format!("SELECT count(*) FROM {dst}")).await,
        90
    );
}

#[tokio::test]
async fn files_source_into_sqlite_moves_only_changes() {
    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let parquet_path = dir.path().join("scores.parquet");
    let write = |scores: Vec<f64>| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("segment", DataType::Utf8, true),
            Field::new("ltv", DataType::Float64, true),
        ]));
        let n = scores.len() as i64;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(1..=n)),
                Arc::new(StringArray::from_iter_values(
                    (1..=n).map(|i| format!("s{}", i % 5)),
                )),
                Arc::new(Float64Array::from(scores)),
            ],
        )
        .unwrap();
        let file = std::fs::File::create(&parquet_path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    };
    write((0..1000).map(|i| i as f64).collect());
    let source = backflow_connectors::source(
        "files",
        &serde_json::json!({ "tables": { "scores": parquet_path.to_str().unwrap() } }),
    )
    .unwrap();
    let db = dir.path().join("app.db");
    let destination = backflow_connectors::destination(
        "sqlite",
        &serde_json::json!({ "path": db.to_str().unwrap() }),
    )
    .unwrap();
    let mut h = Harness::new(
        spec(
            "files-sqlite",
            "SELECT customer_id, segment, ltv FROM scores WHERE ltv >= 0",
            &["customer_id"],
            "customer_scores",
            SyncMode::Mirror,
        ),
        source,
        destination,
    );
    let r = h.ok().await;
    assert_eq!((r.counts.read, r.counts.written), (1000, 1000));
    // Ten customers change, ten leave the query result.
    write(
        (0..1000)
            .map(|i| match i {
                0..=9 => i as f64 + 0.5,
                990.. => -1.0,
                _ => i as f64,
            })
            .collect(),
    );
    let r = h.ok().await;
    assert_eq!(
        (
            r.counts.changed,
            r.counts.removed,
            r.counts.written,
            r.counts.deleted
        ),
        (10, 10, 10, 10)
    );
    assert_eq!(r.counts.unchanged, 980);

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (count, sum): (i64, f64) = sqlx::query_as("SELECT count(*), sum(ltv) FROM customer_scores")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 990);
    let expected: f64 = (0..990)
        .map(|i| if i < 10 { i as f64 + 0.5 } else { i as f64 })
        .sum();
    assert!((sum - expected).abs() < 1e-6, "{sum} vs {expected}");
}
