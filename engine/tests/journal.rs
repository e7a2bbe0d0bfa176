//! The write journal: an attempt that wrote rows and never committed must not be forgotten.
//!
//! Each test lets an attempt apply some writes or deletes to a real PostgreSQL table, then
//! stops it dead (its future dropped while a write hangs, as a SIGKILL would), changes the
//! source so that the forgotten writes matter (a key it created is deleted, a row it rewrote
//! is reverted, a key it deleted comes back), and checks that the next run leaves the
//! destination equal to the source, and the run after it has nothing left to do.

mod common;

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use backflow_connector_core::{
    ConnectorError, Destination, DestinationWriter, WriteOutcome, WriteTarget,
};
use backflow_engine::{RunInput, SyncMode};
use common::*;
use tokio::sync::Notify;

/// Where the writer stops answering.
#[derive(Debug, Clone, Copy)]
enum HangAt {
    /// The first `write` is applied, then the call never returns.
    AfterFirstWrite,
    /// The first `write` never reaches the destination.
    BeforeFirstWrite,
    /// The first `delete` is applied, then the call never returns.
    AfterFirstDelete,
}

/// A destination whose writer applies calls normally until `hang`, then never returns: the
/// state a SIGKILLed worker leaves behind, once the test drops the run.
#[derive(Debug)]
struct Hanging {
    inner: Arc<dyn Destination>,
    hang: HangAt,
    hung: Arc<Notify>,
}

struct HangingWriter {
    inner: Box<dyn DestinationWriter>,
    hang: HangAt,
    hung: Arc<Notify>,
}

#[async_trait]
impl Destination for Hanging {
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        self.inner.check(target).await
    }

    async fn open(
        &self,
        target: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError> {
        Ok(Box::new(HangingWriter {
            inner: self.inner.open(target).await?,
            hang: self.hang,
            hung: self.hung.clone(),
        }))
    }
}

/// Says the writer is hanging, then never returns.
async fn hang(hung: Arc<Notify>) -> ! {
    hung.notify_one();
    std::future::pending().await
}

#[async_trait]
impl DestinationWriter for HangingWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        if matches!(self.hang, HangAt::BeforeFirstWrite) {
            hang(self.hung.clone()).await
        }
        let outcome = self.inner.write(batch).await?;
        if matches!(self.hang, HangAt::AfterFirstWrite) {
            hang(self.hung.clone()).await
        }
        Ok(outcome)
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<WriteOutcome, ConnectorError> {
        let outcome = self.inner.delete(keys).await?;
        if matches!(self.hang, HangAt::AfterFirstDelete) {
            hang(self.hung.clone()).await
        }
        Ok(outcome)
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        self.inner.close().await
    }
}

/// Runs one attempt of `h`'s sync that hangs at `hang`, and drops it there.
async fn killed_attempt(h: &Harness, run_id: &str, hang: HangAt) {
    let hung = Arc::new(Notify::new());
    let destination = Hanging {
        inner: h.destination.clone(),
        hang,
        hung: hung.clone(),
    };
    let run = h.engine.run(RunInput {
        run_id,
        spec: &h.spec,
        source: h.source.as_ref(),
        destination: &destination,
        previous: h.committed.as_ref(),
        full_resync: false,
        progress: None,
    });
    tokio::select! {
        outcome = run => panic!("the attempt should have hung, it ended: {:?}", outcome.map(|r| r.counts)),
        () = hung.notified() => {}
    }
}

/// A source table `id, payload, touched` read newest-touched first, so the rows a test
/// changes are in the first batch an attempt writes.
async fn source(pool: &sqlx::PgPool, rows: i64) -> (String, String) {
    let src = unique("src");
    exec(
        pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, payload text, touched int8 NOT NULL DEFAULT 0);
             INSERT INTO {src} SELECT g, 'v1-' || g, 0 FROM generate_series(1, {rows}) g;"
        ),
    )
    .await;
    let query = format!("SELECT id, payload FROM {src} ORDER BY touched DESC, id");
    (src, query)
}

/// Rows that differ between the destination and the source's `id, payload`.
async fn same(pool: &sqlx::PgPool, dst: &str, src: &str) -> i64 {
    scalar(
        pool,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT id, payload FROM {dst} \
                     EXCEPT ALL SELECT id, payload FROM {src}) x) + \
                    (SELECT count(*) FROM (SELECT id, payload FROM {src} \
                     EXCEPT ALL SELECT id, payload FROM {dst}) y)"
        ),
    )
    .await
}

#[tokio::test]
async fn mirror_deletes_a_key_a_killed_attempt_created_and_reverts_a_row_it_rewrote() {
    let pool = pg().await;
    let (src, query) = source(&pool, 1000).await;
    let dst = unique("dst");
    let mut h = pg_sync("journal_mirror", &query, &["id"], &dst, SyncMode::Mirror);
    h.ok().await;

    // The attempt creates key 5000 and rewrites row 7 (first batch), then dies.
    exec(
        &pool,
        &format!(
            "INSERT INTO {src} VALUES (5000, 'new', 2);
             UPDATE {src} SET payload = 'v2', touched = 1 WHERE id = 7;"
        ),
    )
    .await;
    killed_attempt(&h, "killed-1", HangAt::AfterFirstWrite).await;
    assert_eq!(
        scalar(
            &pool,
            &format!("SELECT count(*) FROM {dst} WHERE id = 5000 OR payload = 'v2'")
        )
        .await,
        2,
        "the killed attempt should have written its first batch"
    );

    // Before any run commits, the source drops the key and reverts the row.
    exec(
        &pool,
        &format!(
            "DELETE FROM {src} WHERE id = 5000; UPDATE {src} SET payload = 'v1-7' WHERE id = 7;"
        ),
    )
    .await;
    let r = h.ok().await;
    assert_eq!(
        same(&pool, &dst, &src).await,
        0,
        "destination differs after the retry"
    );
    assert!(r.journal_stats.recovered_keys >= 2, "{:?}", r.journal_stats);
    assert_eq!(
        (r.counts.removed, r.counts.deleted),
        (1, 1),
        "{:?}",
        r.counts
    );
    assert_eq!(
        r.counts.changed,
        r.journal_stats.recovered_keys - 1,
        "{:?}",
        r.counts
    );

    // The journal was folded into the committed snapshot: nothing is left to do.
    let r = h.ok().await;
    assert_eq!(
        (r.counts.unchanged, r.counts.written, r.counts.deleted),
        (1000, 0, 0),
        "{:?}",
        r.counts
    );
    assert_eq!(r.journal_stats.recovered_keys, 0);
}

#[tokio::test]
async fn upsert_reverts_a_row_a_killed_attempt_rewrote_and_keeps_the_key_it_created() {
    let pool = pg().await;
    let (src, query) = source(&pool, 600).await;
    let dst = unique("dst");
    let mut h = pg_sync("journal_upsert", &query, &["id"], &dst, SyncMode::Upsert);
    h.ok().await;
    exec(
        &pool,
        &format!(
            "INSERT INTO {src} VALUES (9000, 'new', 2);
             UPDATE {src} SET payload = 'v2', touched = 1 WHERE id = 3;"
        ),
    )
    .await;
    killed_attempt(&h, "killed-1", HangAt::AfterFirstWrite).await;
    exec(
        &pool,
        &format!(
            "DELETE FROM {src} WHERE id = 9000; UPDATE {src} SET payload = 'v1-3' WHERE id = 3;"
        ),
    )
    .await;
    let r = h.ok().await;
    // Upsert never deletes: the key the attempt created stays, reported as removed.
    assert_eq!(r.counts.removed, 1, "{:?}", r.counts);
    assert_eq!(r.counts.deleted, 0);
    assert_eq!(
        scalar(
            &pool,
            &format!("SELECT count(*) FROM {dst} WHERE id = 9000")
        )
        .await,
        1
    );
    exec(&pool, &format!("DELETE FROM {dst} WHERE id = 9000")).await;
    assert_eq!(same(&pool, &dst, &src).await, 0, "row 3 was not reverted");
}

#[tokio::test]
async fn mirror_restores_a_key_a_killed_attempt_deleted_when_the_source_brings_it_back() {
    let pool = pg().await;
    let (src, query) = source(&pool, 800).await;
    let dst = unique("dst");
    let mut h = pg_sync("journal_delete", &query, &["id"], &dst, SyncMode::Mirror);
    h.ok().await;

    // The attempt deletes key 11, then dies before committing.
    exec(&pool, &format!("DELETE FROM {src} WHERE id = 11")).await;
    killed_attempt(&h, "killed-1", HangAt::AfterFirstDelete).await;
    assert_eq!(
        scalar(&pool, &format!("SELECT count(*) FROM {dst} WHERE id = 11")).await,
        0,
        "the killed attempt should have deleted key 11"
    );

    // The source brings the row back exactly as the committed snapshot knows it.
    exec(&pool, &format!("INSERT INTO {src} VALUES (11, 'v1-11', 0)")).await;
    let r = h.ok().await;
    assert_eq!(same(&pool, &dst, &src).await, 0, "key 11 was not restored");
    assert_eq!(r.counts.written, 1, "{:?}", r.counts);
}

#[tokio::test]
async fn insert_mode_inserts_the_keys_a_killed_attempt_journaled_but_never_wrote() {
    let pool = pg().await;
    let (src, query) = source(&pool, 300).await;
    let dst = unique("dst");
    let mut h = pg_sync("journal_insert", &query, &["id"], &dst, SyncMode::Insert);
    h.ok().await;
    exec(
        &pool,
        &format!("INSERT INTO {src} SELECT g, 'new-' || g, 1 FROM generate_series(301, 320) g"),
    )
    .await;
    // The attempt hangs on its first write: nothing of it reached the table.
    killed_attempt(&h, "killed-1", HangAt::BeforeFirstWrite).await;
    let r = h.ok().await;
    assert_eq!(
        (r.counts.added, r.counts.written),
        (20, 20),
        "{:?}",
        r.counts
    );
    assert_eq!(same(&pool, &dst, &src).await, 0);
}

#[tokio::test]
async fn a_clean_run_leaves_no_journal_behind() {
    let pool = pg().await;
    let (_src, query) = source(&pool, 2000).await;
    let dst = unique("dst");
    let mut h = pg_sync("journal_clean", &query, &["id"], &dst, SyncMode::Mirror);
    let r = h.ok().await;
    // One segment per written batch (97 rows each), each key once.
    assert_eq!(r.journal_stats.keys, 2000, "{:?}", r.journal_stats);
    assert_eq!(r.journal_stats.segments, 2000u64.div_ceil(97));
    assert_eq!(r.journal.paths.len() as u64, r.journal_stats.segments);
    // The harness cleared them on commit, as the control plane's worker does.
    let r = h.ok().await;
    assert_eq!(
        r.journal_stats.recovered_keys, 0,
        "a cleared journal came back"
    );
    assert_eq!(
        r.journal_stats.segments, 0,
        "an unchanged run journaled writes"
    );
}

#[tokio::test]
async fn a_journal_left_behind_by_a_committed_run_costs_the_next_run_nothing() {
    let pool = pg().await;
    let (src, query) = source(&pool, 2000).await;
    let dst = unique("dst");
    let mut h = pg_sync("journal_committed", &query, &["id"], &dst, SyncMode::Mirror);
    // The first run commits, and its process dies before clearing its journal.
    let first = h.commit_without_clearing(false).await.unwrap();
    assert_eq!(first.counts.written, 2000);
    exec(
        &pool,
        &format!("UPDATE {src} SET payload = 'v2', touched = 1 WHERE id IN (5, 6, 7)"),
    )
    .await;
    let r = h.ok().await;
    // The snapshot already holds what that run wrote: only the three changed rows move.
    assert_eq!(r.journal_stats.recovered_keys, 0, "{:?}", r.journal_stats);
    assert_eq!(
        (r.counts.changed, r.counts.written),
        (3, 3),
        "{:?}",
        r.counts
    );
    // Its segments are cleared with this commit.
    for path in &first.journal.paths {
        assert!(r.journal.paths.contains(path), "{path} is not cleared");
    }
    assert_eq!(same(&pool, &dst, &src).await, 0);
}
