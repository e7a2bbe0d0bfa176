//! Garbage collection of the snapshot store.
//!
//! Workers delete the snapshot a commit supersedes and the one a failed commit leaves behind,
//! but a worker killed at the wrong moment, a deleted sync or a lost report leaves files that
//! nothing points to; in object storage they would be paid for forever. So every control-plane
//! replica periodically walks `syncs/` and deletes:
//!
//! * **orphans**: everything under `syncs/<id>/` (snapshots and journal segments) of a sync id
//!   the store no longer has;
//! * **superseded snapshots**: `syncs/<id>/*.parquet` files of an existing sync that are not
//!   its current snapshot.
//!
//! Nothing younger than the grace period is deleted, whichever kind it is: a running attempt
//! may have just written the snapshot it is about to commit, and the storage's clock is not the
//! control plane's. The journal (`syncs/<id>/journal/`) of an existing sync is never read nor
//! deleted here: its segments are what makes the next run exact after a failed attempt, and the
//! run that commits clears them.
//!
//! The store is listed before the syncs are read, so a sync created during a pass is seen as
//! existing; several replicas collecting at once only delete the same objects twice, which the
//! store treats as done. The snapshot store must not be shared with another deployment (give
//! each its own prefix): its syncs would look like orphans here.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use backflow_engine::store::{sync_folder, StoredObject, SYNCS_FOLDER};
use backflow_engine::{EngineError, SnapshotStore};
use tracing::{debug, info, warn};

use crate::store::{Store, StoreError};

/// How often garbage collection runs and what it spares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotGcConfig {
    /// Time between passes; zero turns garbage collection off.
    pub interval: Duration,
    /// Objects younger than this are never deleted.
    pub grace: Duration,
}

impl Default for SnapshotGcConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15 * 60),
            grace: Duration::from_secs(60 * 60),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Sync folders whose sync no longer exists.
    pub orphaned_syncs: u64,
    /// Objects of those folders deleted (snapshots and journal segments).
    pub orphaned_objects_deleted: u64,
    /// Snapshot files of existing syncs deleted because another one is current.
    pub superseded_deleted: u64,
    /// Objects that would have been deleted but are younger than the grace period.
    pub kept_within_grace: u64,
    /// Objects or folders that could not be listed or deleted; the next pass tries again.
    pub failures: u64,
}

/// Why a pass could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The store could not list the syncs.
    #[error("cannot read the syncs: {0}")]
    Store(#[from] StoreError),
    /// The snapshot store could not list `syncs/`.
    #[error("{0}")]
    Snapshots(#[from] EngineError),
}

/// Syncs read per page.
const PAGE: u32 = 500;

/// Runs a pass every `config.interval` until `shutdown` resolves; the first one a minute after
/// start (or after the interval, if shorter), so a starting control plane serves first.
pub async fn run_snapshot_gc(
    store: Store,
    snapshots: SnapshotStore,
    config: SnapshotGcConfig,
    shutdown: impl Future<Output = ()>,
) {
    if config.interval.is_zero() {
        info!("snapshot garbage collection is off");
        return;
    }
    tokio::pin!(shutdown);
    let first = tokio::time::Instant::now() + config.interval.min(Duration::from_secs(60));
    let mut tick = tokio::time::interval_at(first, config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        match collect_garbage(&store, &snapshots, config.grace, SystemTime::now()).await {
            Ok(report) => log_report(&report, started.elapsed()),
            Err(e) => warn!(error = %e, "snapshot garbage collection failed"),
        }
    }
}

fn log_report(report: &GcReport, elapsed: Duration) {
    let deleted = report.orphaned_objects_deleted + report.superseded_deleted;
    let elapsed_ms = elapsed.as_millis() as u64;
    if deleted > 0 || report.failures > 0 {
        info!(
            orphaned_syncs = report.orphaned_syncs,
            orphaned_objects_deleted = report.orphaned_objects_deleted,
            superseded_deleted = report.superseded_deleted,
            kept_within_grace = report.kept_within_grace,
            failures = report.failures,
            elapsed_ms,
            "snapshot garbage collected"
        );
    } else {
        debug!(
            orphaned_syncs = report.orphaned_syncs,
            kept_within_grace = report.kept_within_grace,
            elapsed_ms,
            "snapshot garbage collection found nothing to delete"
        );
    }
}

/// One pass (see the module docs), as of `now`. Fails only when `syncs/` or the syncs cannot
/// be listed; a folder or object that fails is counted in [`GcReport::failures`] and skipped.
pub async fn collect_garbage(
    store: &Store,
    snapshots: &SnapshotStore,
    grace: Duration,
    now: SystemTime,
) -> Result<GcReport, GcError> {
    // Listed first: a sync created after this point has no folder in this listing.
    let folders = snapshots.list_folder(SYNCS_FOLDER).await?.folders;
    let current = current_snapshots(store).await?;
    let old_enough = |object: &StoredObject| {
        now.duration_since(object.last_modified)
            .is_ok_and(|age| age >= grace)
    };
    let mut report = GcReport::default();
    for folder in folders {
        match current.get(&folder) {
            None => {
                report.orphaned_syncs += 1;
                let objects = match snapshots.list_all(&folder).await {
                    Ok(objects) => objects,
                    Err(e) => {
                        warn!(folder = %folder, error = %e, "cannot list an orphaned sync folder");
                        report.failures += 1;
                        continue;
                    }
                };
                for object in objects {
                    if !old_enough(&object) {
                        report.kept_within_grace += 1;
                    } else if delete(snapshots, &object, "orphaned", &mut report).await {
                        report.orphaned_objects_deleted += 1;
                    }
                }
            }
            Some(current) => {
                // One level only: the journal is a sub-folder and is never looked into.
                let objects = match snapshots.list_folder(&folder).await {
                    Ok(listing) => listing.objects,
                    Err(e) => {
                        warn!(folder = %folder, error = %e, "cannot list a sync folder");
                        report.failures += 1;
                        continue;
                    }
                };
                for object in objects {
                    let superseded = object.path.ends_with(".parquet")
                        && current.as_deref() != Some(object.path.as_str());
                    if !superseded {
                        continue;
                    }
                    if !old_enough(&object) {
                        report.kept_within_grace += 1;
                    } else if delete(snapshots, &object, "superseded", &mut report).await {
                        report.superseded_deleted += 1;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Each existing sync's folder in the snapshot store, with its current snapshot's path.
async fn current_snapshots(store: &Store) -> Result<HashMap<String, Option<String>>, StoreError> {
    let mut current = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_syncs(after.as_deref(), PAGE).await?;
        let done = page.len() < PAGE as usize;
        after = page.last().map(|sync| sync.id.clone());
        for sync in page {
            current.insert(sync_folder(&sync.id), sync.snapshot.map(|s| s.path));
        }
        if done {
            return Ok(current);
        }
    }
}

/// Deletes one object; a failure is logged and counted, and the pass goes on.
async fn delete(
    snapshots: &SnapshotStore,
    object: &StoredObject,
    why: &'static str,
    report: &mut GcReport,
) -> bool {
    match snapshots.delete_path(&object.path).await {
        Ok(()) => {
            debug!(path = %object.path, why, "snapshot store object deleted");
            true
        }
        Err(e) => {
            warn!(path = %object.path, why, error = %e, "cannot delete a snapshot store object");
            report.failures += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{File, FileTimes};

    use backflow_engine::{SyncMode, SyncOptions};

    use super::*;
    use crate::model::{ConnectionRecord, SnapshotPointer, SyncDefinition, SyncRecord};

    const GRACE: Duration = Duration::from_secs(3600);

    async fn store_with_syncs(syncs: &[(&str, Option<&str>)]) -> Store {
        let store = Store::connect_and_migrate("sqlite::memory:")
            .await
            .expect("in-memory store");
        for id in ["src", "dst"] {
            store
                .create_connection(&ConnectionRecord {
                    id: id.into(),
                    kind: "postgres".into(),
                    config: serde_json::json!({ "url": "postgres://app@127.0.0.1/app" }),
                    created_at: 0,
                    updated_at: 0,
                })
                .await
                .expect("create connection");
        }
        for (id, snapshot) in syncs {
            store
                .create_sync(&SyncRecord {
                    id: (*id).into(),
                    definition: SyncDefinition {
                        source_connection: "src".into(),
                        query: "SELECT 1 AS id".into(),
                        primary_key: vec!["id".into()],
                        destination_connection: "dst".into(),
                        object: format!("t_{id}"),
                        mode: SyncMode::Upsert,
                        create_table: true,
                        shared: false,
                        mappings: vec![],
                        schedule: None,
                        options: SyncOptions::default(),
                        max_attempts: 3,
                    },
                    paused: false,
                    created_at: 0,
                    updated_at: 0,
                    last_run_id: None,
                    snapshot: snapshot.map(|path| SnapshotPointer {
                        path: path.into(),
                        rows: 1,
                    }),
                })
                .await
                .expect("create sync");
        }
        store
    }

    /// Writes `path` under `dir` with the modification time `age` ago.
    fn object(dir: &std::path::Path, path: &str, age: Duration) {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"x").unwrap();
        let at = SystemTime::now() - age;
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_times(FileTimes::new().set_modified(at).set_accessed(at))
            .unwrap();
    }

    fn remaining(dir: &std::path::Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap();
                    found.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        found
    }

    #[tokio::test]
    async fn deletes_orphans_and_superseded_snapshots_never_journals_or_recent_files() {
        let store =
            store_with_syncs(&[("live", Some("syncs/live/run-3.parquet")), ("fresh", None)]).await;
        let dir = tempfile::tempdir().unwrap();
        let old = GRACE * 2;
        let young = Duration::from_secs(60);
        // The live sync: its current snapshot, two superseded ones (one within the grace
        // period), an old journal segment of a failed attempt, and a file that is not a
        // snapshot.
        object(dir.path(), "syncs/live/run-3.parquet", old);
        object(dir.path(), "syncs/live/run-1.parquet", old);
        object(dir.path(), "syncs/live/run-4-a1.parquet", young);
        object(
            dir.path(),
            "syncs/live/journal/run-2-a1/0000000000.bfj",
            old,
        );
        object(dir.path(), "syncs/live/README", old);
        // A sync without a committed snapshot: an old attempt's file is superseded by nothing.
        object(dir.path(), "syncs/fresh/run-9-a1.parquet", old);
        object(
            dir.path(),
            "syncs/fresh/journal/run-9-a1/0000000000.bfj",
            old,
        );
        // A deleted sync: everything old goes, journal included; a recent file stays.
        object(dir.path(), "syncs/gone/run-5.parquet", old);
        object(
            dir.path(),
            "syncs/gone/journal/run-6-a2/0000000003.bfj",
            old,
        );
        object(dir.path(), "syncs/gone/run-7-a1.parquet", young);
        // Outside syncs/: not the collector's business.
        object(dir.path(), "other/thing.parquet", old);
        let snapshots = SnapshotStore::local(dir.path()).unwrap();

        let report = collect_garbage(&store, &snapshots, GRACE, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(
            report,
            GcReport {
                orphaned_syncs: 1,
                orphaned_objects_deleted: 2,
                superseded_deleted: 2,
                kept_within_grace: 2,
                failures: 0,
            }
        );
        assert_eq!(
            remaining(dir.path()),
            [
                "other/thing.parquet",
                "syncs/fresh/journal/run-9-a1/0000000000.bfj",
                "syncs/gone/run-7-a1.parquet",
                "syncs/live/README",
                "syncs/live/journal/run-2-a1/0000000000.bfj",
                "syncs/live/run-3.parquet",
                "syncs/live/run-4-a1.parquet",
            ]
        );

        // A second pass finds only what the grace period protects.
        let again = collect_garbage(&store, &snapshots, GRACE, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(
            (
                again.orphaned_objects_deleted,
                again.superseded_deleted,
                again.kept_within_grace
            ),
            (0, 0, 2)
        );

        // Once the grace period is over, the rest goes; the current snapshot and the live
        // journals stay.
        let later = SystemTime::now() + GRACE;
        let last = collect_garbage(&store, &snapshots, GRACE, later)
            .await
            .unwrap();
        assert_eq!(
            (
                last.orphaned_objects_deleted,
                last.superseded_deleted,
                last.kept_within_grace
            ),
            (1, 1, 0)
        );
        assert_eq!(
            remaining(dir.path()),
            [
                "other/thing.parquet",
                "syncs/fresh/journal/run-9-a1/0000000000.bfj",
                "syncs/live/README",
                "syncs/live/journal/run-2-a1/0000000000.bfj",
                "syncs/live/run-3.parquet",
            ]
        );
    }

    #[tokio::test]
    async fn an_empty_store_has_nothing_to_collect() {
        let store = store_with_syncs(&[("live", None)]).await;
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotStore::local(dir.path()).unwrap();
        let report = collect_garbage(&store, &snapshots, GRACE, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(report, GcReport::default());
    }

    #[tokio::test]
    async fn every_page_of_syncs_counts_as_existing() {
        // More syncs than one page: a sync on the second page is not an orphan.
        let ids: Vec<String> = (0..PAGE + 3).map(|i| format!("s{i:04}")).collect();
        let syncs: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
        let store = store_with_syncs(&syncs).await;
        let dir = tempfile::tempdir().unwrap();
        let last = ids.last().unwrap();
        object(
            dir.path(),
            &format!("syncs/{last}/journal/run-1-a1/0000000000.bfj"),
            GRACE * 2,
        );
        let snapshots = SnapshotStore::local(dir.path()).unwrap();
        let report = collect_garbage(&store, &snapshots, GRACE, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(report, GcReport::default());
        assert_eq!(remaining(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn the_loop_collects_until_shutdown_and_can_be_turned_off() {
        let store = store_with_syncs(&[]).await;
        let dir = tempfile::tempdir().unwrap();
        object(dir.path(), "syncs/gone/run-1.parquet", GRACE * 2);
        let snapshots = SnapshotStore::local(dir.path()).unwrap();

        // Turned off: returns at once although shutdown never comes, and deletes nothing.
        let off = SnapshotGcConfig {
            interval: Duration::ZERO,
            grace: GRACE,
        };
        tokio::time::timeout(
            Duration::from_secs(5),
            run_snapshot_gc(
                store.clone(),
                snapshots.clone(),
                off,
                std::future::pending(),
            ),
        )
        .await
        .expect("a collector that is off returns at once");
        assert_eq!(remaining(dir.path()).len(), 1);

        // On: passes run every interval until shutdown.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = SnapshotGcConfig {
            interval: Duration::from_millis(50),
            grace: GRACE,
        };
        let task = tokio::spawn(run_snapshot_gc(store, snapshots, config, async move {
            let _ = stopped.await;
        }));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !remaining(dir.path()).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the collector did not delete the orphan within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!task.is_finished(), "the collector stopped by itself");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the collector stops on shutdown")
            .unwrap();
    }
}
