//! Every mode × (new rows, no change, changed rows, removed rows) against a real PostgreSQL,
//! with exact counts and the destination compared to the expected table after each run.

mod common;

use backflow_engine::{RunCounts, SyncMode};
use common::*;

/// Applies `sql` (with `{t}` standing for a table) to the source and, when the mode should
/// propagate it, to the table holding the expected destination.
async fn change(pool: &sqlx::PgPool, sql: &str, src: &str, exp: Option<&str>) {
    exec(pool, &sql.replace("{t}", src)).await;
    if let Some(exp) = exp {
        exec(pool, &sql.replace("{t}", exp)).await;
    }
}

fn counts(r: &backflow_engine::RunResult) -> RunCounts {
    r.counts
}

async fn matrix(mode: SyncMode) {
    let pool = pg().await;
    let (src, dst, exp) = (unique("src"), unique("dst"), unique("exp"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, name text NOT NULL, score float8);
             INSERT INTO {src} SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, 300) g;"
        ),
    )
    .await;
    if mode == SyncMode::Update {
        // Update never creates: the destination already holds keys 1..200 with stale values.
        exec(
            &pool,
            &format!(
                "CREATE TABLE {dst} (id int8 PRIMARY KEY, name text NOT NULL, score float8);
                 INSERT INTO {dst} SELECT g, 'stale', -1 FROM generate_series(1, 200) g;
                 CREATE TABLE {exp} AS SELECT * FROM {src} WHERE id <= 200;"
            ),
        )
        .await;
    } else {
        exec(&pool, &format!("CREATE TABLE {exp} AS TABLE {src}")).await;
    }
    let query = format!("SELECT id, name, score FROM {src}");
    let mut h = pg_sync("matrix", &query, &["id"], &dst, mode);

    // 1. New rows.
    let r = counts(&h.ok().await);
    let expected = match mode {
        SyncMode::Update => RunCounts {
            read: 300,
            added: 300,
            written: 200,
            skipped: 100,
            ..Default::default()
        },
        _ => RunCounts {
            read: 300,
            added: 300,
            written: 300,
            ..Default::default()
        },
    };
    assert_eq!(r, expected, "{mode:?} new rows");
    assert_eq!(
        difference(&pool, &dst, &exp).await,
        0,
        "{mode:?} after new rows"
    );

    // 2. No change: nothing is written.
    let r = counts(&h.ok().await);
    let expected = match mode {
        // Keys the destination lacks stay out of the snapshot and are tried again.
        SyncMode::Update => RunCounts {
            read: 300,
            added: 100,
            unchanged: 200,
            skipped: 100,
            ..Default::default()
        },
        _ => RunCounts {
            read: 300,
            unchanged: 300,
            ..Default::default()
        },
    };
    assert_eq!(r, expected, "{mode:?} no change");
    assert_eq!(
        difference(&pool, &dst, &exp).await,
        0,
        "{mode:?} after no change"
    );

    // 3. Changed rows.
    let propagate = (mode != SyncMode::Insert).then_some(exp.as_str());
    change(
        &pool,
        "UPDATE {t} SET score = score + 1000 WHERE id <= 30",
        &src,
        propagate,
    )
    .await;
    let r = counts(&h.ok().await);
    let expected = match mode {
        SyncMode::Update => RunCounts {
            read: 300,
            added: 100,
            changed: 30,
            unchanged: 170,
            written: 30,
            skipped: 100,
            ..Default::default()
        },
        SyncMode::Insert => RunCounts {
            read: 300,
            changed: 30,
            unchanged: 270,
            skipped: 30,
            ..Default::default()
        },
        _ => RunCounts {
            read: 300,
            changed: 30,
            unchanged: 270,
            written: 30,
            ..Default::default()
        },
    };
    assert_eq!(r, expected, "{mode:?} changed rows");
    assert_eq!(
        difference(&pool, &dst, &exp).await,
        0,
        "{mode:?} after changed rows"
    );

    // 4. Removed rows (and a few new ones).
    exec(&pool, &format!("DELETE FROM {src} WHERE id > 290")).await;
    exec(
        &pool,
        &format!("INSERT INTO {src} SELECT g, 'new ' || g, g FROM generate_series(301, 305) g"),
    )
    .await;
    match mode {
        SyncMode::Mirror => {
            exec(&pool, &format!("DELETE FROM {exp} WHERE id > 290")).await;
            exec(
                &pool,
                &format!("INSERT INTO {exp} SELECT * FROM {src} WHERE id > 300"),
            )
            .await;
        }
        SyncMode::Upsert | SyncMode::Insert => {
            exec(
                &pool,
                &format!("INSERT INTO {exp} SELECT * FROM {src} WHERE id > 300"),
            )
            .await;
        }
        SyncMode::Update => {}
    }
    let r = counts(&h.ok().await);
    let expected = match mode {
        SyncMode::Update => RunCounts {
            read: 295,
            added: 95,
            unchanged: 200,
            skipped: 95,
            ..Default::default()
        },
        SyncMode::Mirror => RunCounts {
            read: 295,
            added: 5,
            unchanged: 290,
            removed: 10,
            written: 5,
            deleted: 10,
            ..Default::default()
        },
        SyncMode::Insert => RunCounts {
            read: 295,
            added: 5,
            unchanged: 260,
            changed: 30,
            removed: 10,
            written: 5,
            skipped: 30,
            ..Default::default()
        },
        SyncMode::Upsert => RunCounts {
            read: 295,
            added: 5,
            unchanged: 290,
            removed: 10,
            written: 5,
            ..Default::default()
        },
    };
    assert_eq!(r, expected, "{mode:?} removed rows");
    assert_eq!(
        difference(&pool, &dst, &exp).await,
        0,
        "{mode:?} after removed rows"
    );
}

#[tokio::test]
async fn upsert_mode() {
    matrix(SyncMode::Upsert).await;
}

#[tokio::test]
async fn insert_mode() {
    matrix(SyncMode::Insert).await;
}

#[tokio::test]
async fn update_mode() {
    matrix(SyncMode::Update).await;
}

#[tokio::test]
async fn mirror_mode() {
    matrix(SyncMode::Mirror).await;
}

#[tokio::test]
async fn full_resync_sends_every_row_and_still_detects_removals() {
    let pool = pg().await;
    let (src, dst) = (unique("src"), unique("dst"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, v text);
             INSERT INTO {src} SELECT g, g::text FROM generate_series(1, 100) g;"
        ),
    )
    .await;
    let mut h = pg_sync(
        "resync",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Mirror,
    );
    h.ok().await;
    // Someone edits the destination behind Backflow's back; only a full resync repairs it.
    exec(
        &pool,
        &format!(
            "UPDATE {dst} SET v = 'tampered' WHERE id <= 10; DELETE FROM {src} WHERE id = 100"
        ),
    )
    .await;
    let r = h.run_with(true).await.unwrap();
    assert_eq!(r.counts.written, 99);
    assert_eq!(r.counts.deleted, 1);
    assert_eq!(difference(&pool, &dst, &src).await, 0);
}
