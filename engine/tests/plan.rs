//! The dry run (`Engine::plan`, behind `PlanSync`): it reports exactly what the next run would
//! classify, with sample keys, and leaves the destination and the snapshot store untouched.

mod common;

use std::path::{Path, PathBuf};

use backflow_engine::{
    Engine, EngineError, PlanInput, PlanResult, RunCounts, SnapshotStore, SyncMode,
};
use common::*;

/// Plans the harness's sync against its committed snapshot.
async fn plan(h: &Harness, sample_size: usize) -> Result<PlanResult, EngineError> {
    plan_with(h, sample_size, false).await
}

async fn plan_with(
    h: &Harness,
    sample_size: usize,
    full_resync: bool,
) -> Result<PlanResult, EngineError> {
    h.engine
        .plan(PlanInput {
            spec: &h.spec,
            source: h.source.as_ref(),
            previous: h.committed.as_ref(),
            full_resync,
            sample_size,
        })
        .await
}

/// A harness whose snapshot store is a directory the test can inspect.
fn harness_in(dir: &Path, query: &str, pk: &[&str], dst: &str, mode: SyncMode) -> Harness {
    let mut h = pg_sync("plan", query, pk, dst, mode);
    h.engine = Engine::new(SnapshotStore::local(dir).unwrap());
    h
}

/// Every file under `dir` with its bytes, sorted by path.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

async fn table_exists(pool: &sqlx::PgPool, table: &str) -> bool {
    scalar(
        pool,
        &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"),
    )
    .await
        > 0
}

/// The classification part of a run's counts, which a plan must reproduce.
fn classification(c: RunCounts) -> RunCounts {
    RunCounts {
        read: c.read,
        added: c.added,
        changed: c.changed,
        unchanged: c.unchanged,
        removed: c.removed,
        ..RunCounts::default()
    }
}

fn keys(ids: &[i64]) -> Vec<String> {
    ids.iter().map(|id| format!("id={id}")).collect()
}

async fn source_of(pool: &sqlx::PgPool, rows: i64) -> String {
    let src = unique("src");
    exec(
        pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, name text, score float8);
             INSERT INTO {src} SELECT g, 'n' || g, g * 1.5 FROM generate_series(1, {rows}) g;"
        ),
    )
    .await;
    src
}

#[tokio::test]
async fn first_plan_reports_every_row_added_and_creates_nothing() {
    let pool = pg().await;
    let src = source_of(&pool, 250).await;
    let dst = unique("dst");
    let dir = tempfile::tempdir().unwrap();
    let query = format!("SELECT * FROM {src} ORDER BY id");
    let mut h = harness_in(dir.path(), &query, &["id"], &dst, SyncMode::Mirror);

    let p = plan(&h, 10).await.unwrap();
    assert_eq!(
        p.counts,
        RunCounts {
            read: 250,
            added: 250,
            ..RunCounts::default()
        }
    );
    assert_eq!(p.sample_added, keys(&(1..=10).collect::<Vec<_>>()));
    assert!(p.sample_changed.is_empty());
    assert!(p.sample_removed.is_empty());
    assert!(
        !table_exists(&pool, &dst).await,
        "a plan must not create the destination table"
    );
    assert!(
        files(dir.path()).is_empty(),
        "a plan must not write a snapshot"
    );
    assert!(h.committed.is_none());

    // The run that follows does what the plan said.
    let r = h.ok().await;
    assert_eq!(classification(r.counts), p.counts);
    assert_eq!(r.counts.written, 250);
}

#[tokio::test]
async fn plan_reports_changes_and_leaves_destination_and_snapshot_alone() {
    let pool = pg().await;
    let src = source_of(&pool, 300).await;
    let (dst, before) = (unique("dst"), unique("before"));
    let dir = tempfile::tempdir().unwrap();
    let query = format!("SELECT * FROM {src} ORDER BY id");
    let mut h = harness_in(dir.path(), &query, &["id"], &dst, SyncMode::Mirror);
    h.ok().await;
    let committed = h.committed.clone();

    exec(
        &pool,
        &format!(
            "UPDATE {src} SET name = 'changed' WHERE id IN (10, 150, 290);
             INSERT INTO {src} VALUES (1001, 'new', 1), (1002, 'new', 2);
             DELETE FROM {src} WHERE id = 200;
             CREATE TABLE {before} AS TABLE {dst};"
        ),
    )
    .await;
    let snapshot_files = files(dir.path());
    assert_eq!(snapshot_files.len(), 1);
    let xmin_before = scalar(
        &pool,
        &format!("SELECT count(DISTINCT xmin::text)::int8 FROM {dst}"),
    )
    .await;

    let p = plan(&h, 10).await.unwrap();
    assert_eq!(
        p.counts,
        RunCounts {
            read: 301,
            added: 2,
            changed: 3,
            unchanged: 296,
            removed: 1,
            ..RunCounts::default()
        }
    );
    assert_eq!(p.sample_changed, keys(&[10, 150, 290]));
    assert_eq!(p.sample_added, keys(&[1001, 1002]));
    assert_eq!(p.sample_removed, keys(&[200]));

    // Nothing moved: same rows, not even rewritten, and the same snapshot files.
    assert_eq!(difference(&pool, &dst, &before).await, 0);
    assert_eq!(
        scalar(
            &pool,
            &format!("SELECT count(DISTINCT xmin::text)::int8 FROM {dst}")
        )
        .await,
        xmin_before
    );
    assert_eq!(files(dir.path()), snapshot_files);
    assert_eq!(h.committed, committed);

    // Planning twice gives the same answer: the plan consumed nothing.
    assert_eq!(plan(&h, 10).await.unwrap(), p);

    // The real run still applies exactly what the plan announced.
    let r = h.ok().await;
    assert_eq!(classification(r.counts), p.counts);
    assert_eq!(r.counts.written, 5);
    assert_eq!(r.counts.deleted, 1);
    assert_eq!(difference(&pool, &dst, &src).await, 0);
}

#[tokio::test]
async fn sample_size_caps_each_sample_but_not_the_counts() {
    let pool = pg().await;
    let src = source_of(&pool, 400).await;
    let dst = unique("dst");
    let query = format!("SELECT * FROM {src} ORDER BY id");
    let mut h = pg_sync("plan-cap", &query, &["id"], &dst, SyncMode::Upsert);
    h.ok().await;
    exec(
        &pool,
        &format!(
            "UPDATE {src} SET score = -score WHERE id BETWEEN 101 AND 120;
             DELETE FROM {src} WHERE id BETWEEN 301 AND 320;
             INSERT INTO {src} SELECT g, 'new', 0 FROM generate_series(501, 520) g;"
        ),
    )
    .await;

    let p = plan(&h, 4).await.unwrap();
    assert_eq!(
        (p.counts.changed, p.counts.added, p.counts.removed),
        (20, 20, 20)
    );
    assert_eq!(p.sample_changed, keys(&[101, 102, 103, 104]));
    assert_eq!(p.sample_added, keys(&[501, 502, 503, 504]));
    // Removed keys come in snapshot order, which is the encoded key's order.
    assert_eq!(p.sample_removed.len(), 4);
    for k in &p.sample_removed {
        let id: i64 = k.strip_prefix("id=").unwrap().parse().unwrap();
        assert!((301..=320).contains(&id), "{k} was not removed");
    }

    let none = plan(&h, 0).await.unwrap();
    assert_eq!(none.counts, p.counts);
    assert!(none.sample_added.is_empty());
    assert!(none.sample_changed.is_empty());
    assert!(none.sample_removed.is_empty());

    let all = plan(&h, 1000).await.unwrap();
    assert_eq!(all.sample_changed.len(), 20);
    assert_eq!(all.sample_added.len(), 20);
    let mut removed = all.sample_removed.clone();
    removed.sort();
    let mut expected = keys(&(301..=320).collect::<Vec<_>>());
    expected.sort();
    assert_eq!(removed, expected);
}

#[tokio::test]
async fn composite_removed_keys_render_like_rejected_rows() {
    let pool = pg().await;
    let (src, dst) = (unique("src"), unique("dst"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {src} (region text, id int8, v text, PRIMARY KEY (region, id));
             INSERT INTO {src} SELECT r, g, 'v' FROM unnest(ARRAY['eu', 'us']) r,
                 generate_series(1, 50) g;"
        ),
    )
    .await;
    let query = format!("SELECT * FROM {src} ORDER BY region, id");
    let mut h = pg_sync(
        "plan-composite",
        &query,
        &["region", "id"],
        &dst,
        SyncMode::Mirror,
    );
    h.ok().await;
    exec(
        &pool,
        &format!(
            "DELETE FROM {src} WHERE region = 'us' AND id = 7;
             UPDATE {src} SET v = 'w' WHERE region = 'eu' AND id = 3;"
        ),
    )
    .await;
    let p = plan(&h, 10).await.unwrap();
    assert_eq!(p.sample_removed, vec!["(region=us, id=7)".to_string()]);
    assert_eq!(p.sample_changed, vec!["(region=eu, id=3)".to_string()]);
    let r = h.ok().await;
    assert_eq!(classification(r.counts), p.counts);
    assert_eq!(r.counts.deleted, 1);
}

#[tokio::test]
async fn insert_mode_and_full_resync_count_like_a_run() {
    let pool = pg().await;
    let src = source_of(&pool, 200).await;
    let dst = unique("dst");
    let query = format!("SELECT * FROM {src} ORDER BY id");
    let mut h = pg_sync("plan-insert", &query, &["id"], &dst, SyncMode::Insert);
    h.ok().await;
    exec(
        &pool,
        &format!(
            "UPDATE {src} SET name = 'x' WHERE id <= 3;
             INSERT INTO {src} VALUES (900, 'new', 0);"
        ),
    )
    .await;

    // Insert mode skips the changed rows, but they are still classified as changed; `skipped`
    // needs a run.
    let p = plan(&h, 10).await.unwrap();
    assert_eq!(p.sample_changed, keys(&[1, 2, 3]));
    assert_eq!(p.sample_added, keys(&[900]));
    assert_eq!(p.counts.skipped, 0);
    let resync = plan_with(&h, 10, true).await.unwrap();
    assert_eq!(
        resync, p,
        "full_resync sends more rows but classifies alike"
    );

    let r = h.ok().await;
    assert_eq!(classification(r.counts), p.counts);
    assert_eq!(r.counts.skipped, 3);
}

#[tokio::test]
async fn a_bad_primary_key_fails_as_a_run_does() {
    let pool = pg().await;
    let src = source_of(&pool, 20).await;
    let dst = unique("dst");
    let query = format!("SELECT name, score FROM {src}");
    let mut h = pg_sync("plan-bad", &query, &["id"], &dst, SyncMode::Upsert);

    let planned = plan(&h, 10).await.unwrap_err();
    assert!(
        matches!(&planned, EngineError::Definition { field, .. } if field == "primary_key[0]"),
        "{planned}"
    );
    let ran = h.run().await.unwrap_err();
    assert_eq!(planned.to_string(), ran.to_string());
    assert_eq!(planned.code(), ran.code());
    assert!(!table_exists(&pool, &dst).await);
}

#[tokio::test]
async fn duplicate_keys_and_key_type_changes_fail_as_a_run_does() {
    let pool = pg().await;
    let src = source_of(&pool, 20).await;
    let dst = unique("dst");
    let mut h = pg_sync(
        "plan-dup",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Upsert,
    );
    h.ok().await;

    h.spec.query = format!("SELECT * FROM {src} UNION ALL SELECT * FROM {src} WHERE id = 5");
    let planned = plan(&h, 10).await.unwrap_err();
    assert!(
        matches!(planned, EngineError::DuplicateKey { .. }),
        "{planned}"
    );
    assert!(planned.to_string().contains("id=5"), "{planned}");

    h.spec.query = format!("SELECT id::text AS id, name, score FROM {src}");
    let planned = plan(&h, 10).await.unwrap_err();
    assert!(
        matches!(planned, EngineError::KeySchemaChanged { .. }),
        "{planned}"
    );
    let ran = h.run().await.unwrap_err();
    assert_eq!(planned.to_string(), ran.to_string());
}
