//! The store's contract: one suite of cases, run against SQLite (a fresh file per test) and
//! PostgreSQL (a fresh database per test on the server of `scripts/services.sh start`), so both
//! backends are held to the same behaviour.

mod common;

use common::with_database;
use std::collections::HashSet;

use backflow_control_plane::model::{
    Completion, ConnectionRecord, Lease, LeaseRef, Millis, NewRun, QueueStats, RejectedRow,
    RunError, RunFilter, RunState, RunTrigger, Schedule, SnapshotPointer, SyncDefinition,
    SyncRecord,
};
use backflow_control_plane::store::{Dialect, Store, StoreError};
use backflow_engine::{Mapping, RejectedOperation, RunCounts, StageTimings, SyncMode, SyncOptions};

/// A store for one test, and what is needed to open a second handle on the same database
/// and to clean up.
pub struct Fixture {
    store: Store,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The temp dir holding the SQLite file; removed on drop.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// The admin URL and the name of the test database to drop.
    Postgres { admin_url: String, database: String },
}

impl Fixture {
    /// Another store on the same database, as a second control-plane replica would open.
    async fn reopen(&self) -> Store {
        Store::connect(&self.url).await.expect("reopen the store")
    }

    async fn teardown(self) {
        self.store.close().await;
        if let Cleanup::Postgres {
            admin_url,
            database,
        } = self.cleanup
        {
            use sqlx::{Connection, Executor};
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL to drop the test database");
            admin
                .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                .await
                .expect("drop the test database");
        }
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    // No `mode=rwc`: the store must create the missing file by itself.
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = Store::connect_and_migrate(&url)
        .await
        .expect("open the SQLite store");
    assert_eq!(store.dialect(), Dialect::Sqlite);
    assert!(
        dir.path().join("store.db-wal").exists(),
        "the SQLite store runs in WAL mode"
    );
    Fixture {
        store,
        url,
        cleanup: Cleanup::Sqlite(dir),
    }
}

const DEFAULT_POSTGRES_URL: &str = "postgres://backflow:backflow@127.0.0.1:55432/backflow";

async fn postgres() -> Fixture {
    use sqlx::{Connection, Executor};
    let admin_url = std::env::var("BACKFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL for the store contract tests is unreachable at {} ({e}); \
                 start it with `scripts/services.sh start` (or set BACKFLOW_TEST_POSTGRES_URL)",
                backflow_connector_core::secret::redact_url(&admin_url)
            )
        });
    let database = format!("bf_store_{}", uuid::Uuid::new_v4().simple());
    let mut tries = 0;
    loop {
        // Concurrent CREATE DATABASE can collide on the template; retry a few times.
        match admin
            .execute(format!("CREATE DATABASE {database}").as_str())
            .await
        {
            Ok(_) => break,
            Err(e) if tries < 10 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                let _ = e;
            }
            Err(e) => panic!("create the test database: {e}"),
        }
    }
    let _ = admin.close().await;
    let url = with_database(&admin_url, &database);
    let store = Store::connect_and_migrate(&url)
        .await
        .expect("open the PostgreSQL store");
    assert_eq!(store.dialect(), Dialect::Postgres);
    Fixture {
        store,
        url,
        cleanup: Cleanup::Postgres {
            admin_url,
            database,
        },
    }
}

/// Instantiates every case for one backend: `store_suite!(module, fixture_fn)`.
macro_rules! store_suite {
    ($backend:ident, $make:path) => {
        mod $backend {
            store_suite!(@cases $make;
                migrate_is_idempotent,
                connection_crud,
                sync_crud,
                checked_sync_writes_see_the_other_writers_of_their_destination,
                connection_in_use_cannot_be_deleted,
                pagination,
                complete_commits_run_snapshot_and_rejected_rows,
                update_resets_the_snapshot_only_when_the_target_moves,
                request_id_is_idempotent,
                trigger_while_active_coalesces,
                concurrent_enqueues_make_one_run,
                paused_sync_refuses_enqueue,
                lease_picks_oldest_ready_run,
                stale_lease_changes_nothing,
                heartbeat_extends_and_reports_cancel,
                retryable_failure_requeues_until_max_attempts,
                non_retryable_failure_fails_at_once,
                cancel_queued_and_running,
                requeue_expired_fences_the_old_attempt,
                concurrent_leasing_leases_each_run_once,
                delete_sync_refused_while_active_then_cascades,
                list_runs_filters_and_pages,
                schedules,
                syncs_after,
                queue_stats,
                scheduler_lock,
            );
        }
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $make().await;
                super::cases::$case(&fixture).await;
                fixture.teardown().await;
            }
        )*
    };
}

store_suite!(sqlite_store, super::sqlite);

/// `sqlite::memory:` is a private database that lives as long as the store: its single
/// pooled connection must not be recycled.
#[tokio::test]
async fn sqlite_memory_store_keeps_its_data() {
    let store = Store::connect_and_migrate("sqlite::memory:")
        .await
        .expect("open an in-memory store");
    let record = ConnectionRecord {
        id: "mem".into(),
        kind: "files".into(),
        config: serde_json::json!({}),
        created_at: 1,
        updated_at: 1,
    };
    store.create_connection(&record).await.unwrap();
    let other = store.clone();
    assert_eq!(other.get_connection("mem").await.unwrap(), record);
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_leaking_secrets() {
    let err = Store::connect("mysql://user:hunter2@localhost/db")
        .await
        .expect_err("mysql is not a store");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
store_suite!(postgres_store, super::postgres);

mod cases {
    use super::*;

    const T0: Millis = 1_700_000_000_000;
    const TTL: i64 = 30_000;

    fn connection(id: &str, now: Millis) -> ConnectionRecord {
        ConnectionRecord {
            id: id.to_string(),
            kind: "postgres".into(),
            config: serde_json::json!({
                "url": "postgres://app@127.0.0.1:5432/app",
                "password": "${env:APP_DB_PASSWORD}",
            }),
            created_at: now,
            updated_at: now,
        }
    }

    fn definition(source: &str, destination: &str) -> SyncDefinition {
        SyncDefinition {
            source_connection: source.into(),
            query: "SELECT customer_id, churn_risk FROM scores".into(),
            primary_key: vec!["customer_id".into()],
            destination_connection: destination.into(),
            object: "public.customer_scores".into(),
            mode: SyncMode::Upsert,
            create_table: true,
            shared: false,
            mappings: vec![],
            schedule: Some(Schedule::Every { seconds: 900 }),
            options: SyncOptions::default(),
            max_attempts: 3,
        }
    }

    fn sync_record(id: &str, definition: SyncDefinition) -> SyncRecord {
        SyncRecord {
            id: id.into(),
            definition,
            paused: false,
            created_at: T0,
            updated_at: T0,
            last_run_id: None,
            snapshot: None,
        }
    }

    /// Creates the `warehouse` and `app_db` connections the syncs of a case use.
    async fn connections(store: &Store) {
        for id in ["warehouse", "app_db"] {
            store
                .create_connection(&connection(id, T0))
                .await
                .expect("create connection");
        }
    }

    /// Creates sync `id` from `warehouse` to `app_db` with `max_attempts`.
    async fn sync(store: &Store, id: &str, max_attempts: u32) -> SyncRecord {
        let mut definition = definition("warehouse", "app_db");
        definition.max_attempts = max_attempts;
        let record = sync_record(id, definition);
        store.create_sync(&record).await.expect("create sync");
        record
    }

    fn trigger(sync_id: &str) -> NewRun {
        NewRun {
            sync_id: sync_id.into(),
            trigger: RunTrigger::Manual,
            full_resync: false,
            request_id: None,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        }
    }

    fn lease_ref(lease: &Lease) -> LeaseRef {
        LeaseRef {
            run_id: lease.run.id.clone(),
            lease_id: lease
                .run
                .lease_id
                .clone()
                .expect("a leased run has a lease id"),
            attempt: lease.run.attempt,
        }
    }

    fn counts(read: u64, failed: u64) -> RunCounts {
        RunCounts {
            read,
            added: read,
            written: read - failed,
            failed,
            ..RunCounts::default()
        }
    }

    fn retryable(message: &str) -> RunError {
        RunError {
            code: "destination_error".into(),
            message: message.into(),
            retryable: true,
        }
    }

    fn completion(read: u64, rejected: usize, path: &str) -> Completion {
        Completion {
            counts: counts(read, rejected as u64),
            timings: StageTimings {
                source_read: std::time::Duration::from_millis(120),
                total: std::time::Duration::from_millis(300),
                ..StageTimings::default()
            },
            snapshot: SnapshotPointer {
                path: path.into(),
                rows: read - rejected as u64,
            },
            rejected: (0..rejected)
                .map(|i| RejectedRow {
                    key: format!("customer_id={i}"),
                    column: (i % 2 == 0).then(|| "ltv".to_string()),
                    message: format!("value {i} violates check constraint"),
                    operation: if i % 3 == 0 {
                        RejectedOperation::Delete
                    } else {
                        RejectedOperation::Write
                    },
                })
                .collect(),
        }
    }

    async fn lease(store: &Store, now: Millis) -> Lease {
        store
            .lease_next_run("worker-1", now, TTL)
            .await
            .expect("lease")
            .expect("a run is ready")
    }

    #[track_caller]
    fn assert_not_found(result: Result<impl std::fmt::Debug, StoreError>, kind: &str, id: &str) {
        match result {
            Err(StoreError::NotFound { kind: k, id: i }) => {
                assert_eq!((k, i.as_str()), (kind, id));
            }
            other => panic!("expected NotFound {kind} {id}, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_stale(result: Result<impl std::fmt::Debug, StoreError>) {
        match result {
            Err(StoreError::StaleLease { .. }) => {}
            other => panic!("expected StaleLease, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_precondition(result: Result<impl std::fmt::Debug, StoreError>, needle: &str) {
        match result {
            Err(StoreError::FailedPrecondition(message)) => {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    pub async fn migrate_is_idempotent(f: &Fixture) {
        f.store.migrate().await.expect("second migrate is a no-op");
        let other = Store::connect_and_migrate(&f.url).await.expect("reopen");
        other.close().await;
    }

    pub async fn connection_crud(f: &Fixture) {
        let store = &f.store;
        let warehouse = connection("warehouse", T0);
        store.create_connection(&warehouse).await.unwrap();
        assert_eq!(store.get_connection("warehouse").await.unwrap(), warehouse);

        match store
            .create_connection(&connection("warehouse", T0 + 5))
            .await
        {
            Err(StoreError::AlreadyExists { kind, id }) => {
                assert_eq!((kind, id.as_str()), ("connection", "warehouse"))
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_not_found(store.get_connection("nope").await, "connection", "nope");

        let mut changed = connection("warehouse", T0 + 1_000);
        changed.created_at = 42; // ignored: the creation time is kept
        changed.kind = "files".into();
        changed.config = serde_json::json!({"tables": {"scores": "./scores.parquet"}});
        let updated = store.update_connection(&changed).await.unwrap();
        assert_eq!(updated.created_at, T0);
        assert_eq!(updated.updated_at, T0 + 1_000);
        assert_eq!(updated.kind, "files");
        assert_eq!(updated.config, changed.config);
        assert_eq!(store.get_connection("warehouse").await.unwrap(), updated);
        assert_not_found(
            store.update_connection(&connection("nope", T0)).await,
            "connection",
            "nope",
        );

        store.delete_connection("warehouse").await.unwrap();
        assert_not_found(
            store.get_connection("warehouse").await,
            "connection",
            "warehouse",
        );
        assert_not_found(
            store.delete_connection("warehouse").await,
            "connection",
            "warehouse",
        );
    }

    pub async fn checked_sync_writes_see_the_other_writers_of_their_destination(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        store
            .create_connection(&connection("other_db", T0))
            .await
            .unwrap();
        // The check is handed the destination connection and every other sync writing
        // through it: never the sync itself, never syncs of other destinations.
        let seen = |expected: &'static [&'static str]| {
            move |destination: &ConnectionRecord, others: &[SyncRecord]| {
                let ids: Vec<&str> = others.iter().map(|s| s.id.as_str()).collect();
                assert_eq!(ids, expected, "others seen writing to {}", destination.id);
                Ok(())
            }
        };
        store
            .create_sync_checked(
                &sync_record("a", definition("warehouse", "app_db")),
                &seen(&[]),
            )
            .await
            .unwrap();
        store
            .create_sync(&sync_record(
                "elsewhere",
                definition("warehouse", "other_db"),
            ))
            .await
            .unwrap();
        store
            .create_sync_checked(
                &sync_record("b", definition("warehouse", "app_db")),
                &seen(&["a"]),
            )
            .await
            .unwrap();
        store
            .update_sync_checked(
                "a",
                &definition("warehouse", "app_db"),
                T0 + 1,
                &seen(&["b"]),
            )
            .await
            .unwrap();
        // A refusal is FailedPrecondition carrying the check's message, and writes nothing.
        let refuse = |_: &ConnectionRecord, others: &[SyncRecord]| {
            Err(format!("taken by `{}`", others[0].id))
        };
        assert_precondition(
            store
                .create_sync_checked(
                    &sync_record("c", definition("warehouse", "app_db")),
                    &refuse,
                )
                .await,
            "taken by `a`",
        );
        assert_not_found(store.get_sync("c").await, "sync", "c");
        let mut moved = definition("warehouse", "app_db");
        moved.object = "public.moved".into();
        assert_precondition(
            store
                .update_sync_checked("b", &moved, T0 + 2, &refuse)
                .await,
            "taken by `a`",
        );
        assert_eq!(
            store.get_sync("b").await.unwrap().definition.object,
            "public.customer_scores"
        );
        // Connections are still checked first.
        assert_not_found(
            store
                .create_sync_checked(&sync_record("d", definition("warehouse", "gone")), &refuse)
                .await,
            "connection",
            "gone",
        );
    }

    pub async fn sync_crud(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        let record = sync_record("scores", definition("warehouse", "app_db"));
        store.create_sync(&record).await.unwrap();
        assert_eq!(store.get_sync("scores").await.unwrap(), record);

        match store.create_sync(&record).await {
            Err(StoreError::AlreadyExists { kind, id }) => {
                assert_eq!((kind, id.as_str()), ("sync", "scores"))
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_not_found(
            store
                .create_sync(&sync_record("x", definition("missing", "app_db")))
                .await,
            "connection",
            "missing",
        );
        assert_not_found(
            store
                .create_sync(&sync_record("x", definition("warehouse", "gone")))
                .await,
            "connection",
            "gone",
        );
        assert_not_found(store.get_sync("x").await, "sync", "x");
        assert_not_found(store.get_sync("nope").await, "sync", "nope");

        // Update keeps paused, snapshot and last run; checks the connections.
        store
            .create_connection(&connection("other_db", T0))
            .await
            .unwrap();
        store.set_paused("scores", true, T0 + 10).await.unwrap();
        let mut new_definition = definition("warehouse", "other_db");
        new_definition.mode = SyncMode::Mirror;
        new_definition.schedule = Some(Schedule::Cron {
            expression: "0 * * * *".into(),
        });
        let updated = store
            .update_sync("scores", &new_definition, T0 + 20)
            .await
            .unwrap();
        assert_eq!(updated.definition, new_definition);
        assert!(updated.paused);
        assert_eq!(updated.created_at, T0);
        assert_eq!(updated.updated_at, T0 + 20);
        assert_eq!(store.get_sync("scores").await.unwrap(), updated);
        assert_not_found(
            store
                .update_sync("scores", &definition("warehouse", "gone"), T0 + 30)
                .await,
            "connection",
            "gone",
        );
        assert_not_found(
            store.update_sync("nope", &new_definition, T0 + 30).await,
            "sync",
            "nope",
        );
        // The connection moved: app_db is free now, other_db is used.
        store.delete_connection("app_db").await.unwrap();
        assert_precondition(store.delete_connection("other_db").await, "scores");

        let resumed = store.set_paused("scores", false, T0 + 40).await.unwrap();
        assert!(!resumed.paused);
        assert_eq!(resumed.updated_at, T0 + 40);
        assert_not_found(store.set_paused("nope", true, T0).await, "sync", "nope");

        store.delete_sync("scores").await.unwrap();
        assert_not_found(store.get_sync("scores").await, "sync", "scores");
        assert_not_found(store.delete_sync("scores").await, "sync", "scores");
        store.delete_connection("other_db").await.unwrap();
    }

    pub async fn connection_in_use_cannot_be_deleted(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "b_sync", 3).await;
        sync(store, "a_sync", 3).await;
        match store.delete_connection("app_db").await {
            Err(StoreError::FailedPrecondition(message)) => {
                assert!(message.contains("`a_sync`, `b_sync`"), "{message}");
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
        assert_precondition(store.delete_connection("warehouse").await, "a_sync");
        assert!(store.get_connection("app_db").await.is_ok());
        store.delete_sync("a_sync").await.unwrap();
        store.delete_sync("b_sync").await.unwrap();
        store.delete_connection("app_db").await.unwrap();
    }

    pub async fn pagination(f: &Fixture) {
        let store = &f.store;
        for i in (0..7).rev() {
            store
                .create_connection(&connection(&format!("c{i}"), T0))
                .await
                .unwrap();
        }
        let ids = |page: Vec<ConnectionRecord>| page.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_connections(None, 3).await.unwrap()),
            ["c0", "c1", "c2"]
        );
        assert_eq!(
            ids(store.list_connections(Some("c2"), 3).await.unwrap()),
            ["c3", "c4", "c5"]
        );
        assert_eq!(
            ids(store.list_connections(Some("c5"), 3).await.unwrap()),
            ["c6"]
        );
        assert!(store
            .list_connections(Some("c6"), 3)
            .await
            .unwrap()
            .is_empty());

        for i in [3, 1, 2, 0] {
            let mut definition = definition("c0", "c1");
            definition.query = format!("SELECT {i}");
            store
                .create_sync(&sync_record(&format!("s{i}"), definition))
                .await
                .unwrap();
        }
        let sync_ids = |page: Vec<SyncRecord>| page.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            sync_ids(store.list_syncs(None, 2).await.unwrap()),
            ["s0", "s1"]
        );
        let page = store.list_syncs(Some("s1"), 10).await.unwrap();
        assert_eq!(page[0].definition.query, "SELECT 2");
        assert_eq!(sync_ids(page), ["s2", "s3"]);
    }

    pub async fn update_resets_the_snapshot_only_when_the_target_moves(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        let record = sync(store, "scores", 3).await;
        store.enqueue_run(&trigger("scores"), T0).await.unwrap();
        let lease = lease(store, T0 + 100).await;
        store
            .complete_run(
                &lease_ref(&lease),
                &completion(10, 0, "scores/a.snap"),
                T0 + 200,
            )
            .await
            .unwrap();
        let pointer = store.get_sync("scores").await.unwrap().snapshot;
        assert!(pointer.is_some());

        // Same target, other schedule and mode: the destination still holds what the
        // snapshot says.
        let mut same_target = record.definition.clone();
        same_target.mode = SyncMode::Mirror;
        same_target.schedule = Some(Schedule::Every { seconds: 60 });
        same_target.query = "SELECT customer_id, churn_risk FROM scores WHERE 1 = 1".into();
        let kept = store
            .update_sync("scores", &same_target, T0 + 300)
            .await
            .unwrap();
        assert_eq!(kept.snapshot, pointer);

        // Another object, mapping or key: the next run must send every row.
        for change in 0..3 {
            store
                .update_sync("scores", &same_target, T0 + 400)
                .await
                .unwrap();
            commit_another_run(store, &pointer).await;
            let mut moved = same_target.clone();
            match change {
                0 => moved.object = "public.scores_v2".into(),
                1 => {
                    moved.mappings = vec![Mapping {
                        from: "churn_risk".into(),
                        to: "risk".into(),
                    }]
                }
                _ => moved.primary_key = vec!["customer_id".into(), "churn_risk".into()],
            }
            let reset = store.update_sync("scores", &moved, T0 + 500).await.unwrap();
            assert_eq!(
                reset.snapshot, None,
                "change {change} keeps a stale snapshot"
            );
            assert_eq!(store.get_sync("scores").await.unwrap().snapshot, None);
        }
    }

    /// Commits one more run so the sync has a snapshot pointer again.
    async fn commit_another_run(store: &Store, pointer: &Option<SnapshotPointer>) {
        if store.get_sync("scores").await.unwrap().snapshot.is_some() {
            return;
        }
        store
            .enqueue_run(&trigger("scores"), T0 + 410)
            .await
            .unwrap();
        let lease = lease(store, T0 + 420).await;
        let path = pointer
            .as_ref()
            .map_or("scores/b.snap", |p| p.path.as_str());
        store
            .complete_run(&lease_ref(&lease), &completion(10, 0, path), T0 + 430)
            .await
            .unwrap();
    }

    pub async fn complete_commits_run_snapshot_and_rejected_rows(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        let enqueued = store.enqueue_run(&trigger("scores"), T0).await.unwrap();
        assert!(!enqueued.coalesced);
        let queued = enqueued.run;
        assert_eq!(queued.state, RunState::Queued);
        assert_eq!(queued.attempt, 0);
        assert_eq!(queued.max_attempts, 3);
        assert_eq!(queued.created_at, T0);
        assert_eq!(queued.not_before, T0);
        assert_eq!(queued.counts, RunCounts::default());
        assert!(queued.traceparent.is_some());
        assert_eq!(store.get_run(&queued.id).await.unwrap(), queued);
        assert_eq!(
            store.get_sync("scores").await.unwrap().last_run_id,
            Some(queued.id.clone())
        );

        let lease = lease(store, T0 + 100).await;
        assert_eq!(lease.run.id, queued.id);
        assert_eq!(lease.run.state, RunState::Running);
        assert_eq!(lease.run.attempt, 1);
        assert_eq!(lease.run.started_at, Some(T0 + 100));
        assert_eq!(lease.run.lease_deadline, Some(T0 + 100 + TTL));
        assert_eq!(lease.run.worker_id.as_deref(), Some("worker-1"));
        assert_eq!(lease.sync.id, "scores");
        assert_eq!(lease.source, connection("warehouse", T0));
        assert_eq!(lease.destination, connection("app_db", T0));

        // More rejected rows than one INSERT batch holds.
        let done = completion(5_000, 1_203, "scores/run-1.snap");
        let run = store
            .complete_run(&lease_ref(&lease), &done, T0 + 2_000)
            .await
            .unwrap();
        assert_eq!(run.state, RunState::Succeeded);
        assert_eq!(run.counts, done.counts);
        assert_eq!(run.timings, Some(done.timings));
        assert_eq!(run.rejected_count, 1_203);
        assert_eq!(run.ended_at, Some(T0 + 2_000));
        // The lease id stays, so a completion replayed by its own attempt is idempotent.
        assert_eq!(run.lease_id, lease.run.lease_id);
        assert_eq!(run.lease_deadline, None);
        assert_eq!(store.get_run(&run.id).await.unwrap(), run);
        let replayed = store
            .complete_run(&lease_ref(&lease), &done, T0 + 2_500)
            .await
            .unwrap();
        assert_eq!(replayed, run, "a replayed completion changes nothing");
        assert_eq!(
            store.get_sync("scores").await.unwrap().snapshot,
            Some(SnapshotPointer {
                path: "scores/run-1.snap".into(),
                rows: 3_797,
            })
        );

        let first = store.list_rejected_rows(&run.id, 0, 500).await.unwrap();
        assert_eq!(first, done.rejected[..500]);
        let middle = store.list_rejected_rows(&run.id, 500, 600).await.unwrap();
        assert_eq!(middle, done.rejected[500..1_100]);
        let last = store.list_rejected_rows(&run.id, 1_100, 500).await.unwrap();
        assert_eq!(last, done.rejected[1_100..]);
        assert!(store
            .list_rejected_rows(&run.id, 1_203, 10)
            .await
            .unwrap()
            .is_empty());
        assert_not_found(store.list_rejected_rows("nope", 0, 10).await, "run", "nope");

        // A second run succeeds with no rejected rows and moves the pointer.
        let second = store
            .enqueue_run(&trigger("scores"), T0 + 3_000)
            .await
            .unwrap();
        assert!(!second.coalesced);
        assert_ne!(second.run.id, run.id);
        let lease = self::lease(store, T0 + 3_000).await;
        let done = completion(10, 0, "scores/run-2.snap");
        store
            .complete_run(&lease_ref(&lease), &done, T0 + 3_500)
            .await
            .unwrap();
        let sync = store.get_sync("scores").await.unwrap();
        assert_eq!(sync.snapshot.unwrap().path, "scores/run-2.snap");
        assert_eq!(sync.last_run_id, Some(second.run.id.clone()));
        assert!(store
            .list_rejected_rows(&second.run.id, 0, 10)
            .await
            .unwrap()
            .is_empty());
        // Completing a finished run with another lease id is stale.
        let mut other = lease_ref(&lease);
        other.lease_id = "another-lease".into();
        assert_stale(store.complete_run(&other, &done, T0 + 3_600).await);
    }

    pub async fn request_id_is_idempotent(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        let mut new = trigger("scores");
        new.request_id = Some("req-1".into());
        let first = store.enqueue_run(&new, T0).await.unwrap();
        assert!(!first.coalesced);
        assert_eq!(first.run.request_id.as_deref(), Some("req-1"));
        let again = store.enqueue_run(&new, T0 + 1).await.unwrap();
        assert!(!again.coalesced);
        assert_eq!(again.run.id, first.run.id);

        // Still the same run after it finished, while another request queues a new one.
        let lease = lease(store, T0 + 2).await;
        store
            .complete_run(&lease_ref(&lease), &completion(1, 0, "p"), T0 + 3)
            .await
            .unwrap();
        let again = store.enqueue_run(&new, T0 + 4).await.unwrap();
        assert!(!again.coalesced);
        assert_eq!(again.run.id, first.run.id);
        assert_eq!(again.run.state, RunState::Succeeded);
        let mut other = trigger("scores");
        other.request_id = Some("req-2".into());
        let second = store.enqueue_run(&other, T0 + 5).await.unwrap();
        assert!(!second.coalesced);
        assert_ne!(second.run.id, first.run.id);
        let runs = store
            .list_runs(&RunFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(runs.len(), 2);
    }

    pub async fn trigger_while_active_coalesces(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        let first = store.enqueue_run(&trigger("scores"), T0).await.unwrap();
        let queued = store.enqueue_run(&trigger("scores"), T0 + 1).await.unwrap();
        assert!(queued.coalesced);
        assert_eq!(queued.run, first.run);

        let lease = lease(store, T0 + 2).await;
        let mut new = trigger("scores");
        new.request_id = Some("new-request".into());
        let running = store.enqueue_run(&new, T0 + 3).await.unwrap();
        assert!(running.coalesced);
        assert_eq!(running.run.id, first.run.id);
        assert_eq!(running.run.state, RunState::Running);
        assert_eq!(running.run.request_id, None);

        store
            .complete_run(&lease_ref(&lease), &completion(1, 0, "p"), T0 + 4)
            .await
            .unwrap();
        let next = store.enqueue_run(&trigger("scores"), T0 + 5).await.unwrap();
        assert!(!next.coalesced);
        assert_ne!(next.run.id, first.run.id);
        assert_not_found(
            store.enqueue_run(&trigger("nope"), T0).await,
            "sync",
            "nope",
        );
    }

    pub async fn concurrent_enqueues_make_one_run(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.enqueue_run(&trigger("scores"), T0 + i).await })
            })
            .collect();
        let mut ids = HashSet::new();
        let mut created = 0;
        for task in tasks {
            let enqueued = task.await.unwrap().expect("enqueue");
            ids.insert(enqueued.run.id);
            if !enqueued.coalesced {
                created += 1;
            }
        }
        assert_eq!(ids.len(), 1, "one run for 20 concurrent triggers");
        assert_eq!(created, 1);
        let runs = store
            .list_runs(
                &RunFilter {
                    sync_id: Some("scores".into()),
                    state: None,
                },
                None,
                100,
            )
            .await
            .unwrap();
        assert_eq!(runs.len(), 1);
    }

    pub async fn paused_sync_refuses_enqueue(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        store.set_paused("scores", true, T0).await.unwrap();
        assert_precondition(
            store.enqueue_run(&trigger("scores"), T0).await,
            "sync `scores` is paused",
        );
        assert!(store
            .list_runs(&RunFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty());
        store.set_paused("scores", false, T0).await.unwrap();
        assert!(store.enqueue_run(&trigger("scores"), T0).await.is_ok());
    }

    pub async fn lease_picks_oldest_ready_run(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        assert!(store.lease_next_run("w", T0, TTL).await.unwrap().is_none());
        sync(store, "a", 3).await;
        sync(store, "b", 3).await;
        sync(store, "c", 3).await;
        let a = store.enqueue_run(&trigger("a"), T0).await.unwrap().run;
        let b = store.enqueue_run(&trigger("b"), T0).await.unwrap().run;
        // `a` fails with a backoff: it is the oldest, but not ready until T0 + 10_000.
        let lease_a = lease(store, T0).await;
        assert_eq!(lease_a.run.id, a.id);
        store
            .fail_run(
                &lease_ref(&lease_a),
                &retryable("timeout"),
                &RunCounts::default(),
                T0,
                10_000,
            )
            .await
            .unwrap();
        let c = store.enqueue_run(&trigger("c"), T0 + 1).await.unwrap().run;
        assert!(a.id < b.id && b.id < c.id, "uuid v7 ids sort by creation");

        assert_eq!(lease(store, T0 + 1).await.run.id, b.id);
        assert_eq!(lease(store, T0 + 1).await.run.id, c.id);
        assert!(store
            .lease_next_run("w", T0 + 9_999, TTL)
            .await
            .unwrap()
            .is_none());
        let again = lease(store, T0 + 10_000).await;
        assert_eq!(again.run.id, a.id);
        assert_eq!(again.run.attempt, 2);
    }

    pub async fn stale_lease_changes_nothing(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        store.enqueue_run(&trigger("scores"), T0).await.unwrap();
        let lease = lease(store, T0).await;
        let before = store.get_run(&lease.run.id).await.unwrap();
        let good = lease_ref(&lease);
        let wrong_attempt = LeaseRef {
            attempt: good.attempt + 1,
            ..good.clone()
        };
        let wrong_lease = LeaseRef {
            lease_id: uuid::Uuid::new_v4().to_string(),
            ..good.clone()
        };
        let unknown_run = LeaseRef {
            run_id: "no-such-run".into(),
            ..good.clone()
        };
        for stale in [&wrong_attempt, &wrong_lease, &unknown_run] {
            assert_stale(
                store
                    .complete_run(stale, &completion(10, 3, "stale.snap"), T0 + 1)
                    .await,
            );
            assert_stale(
                store
                    .fail_run(stale, &retryable("x"), &counts(10, 0), T0 + 1, 0)
                    .await,
            );
            assert_stale(store.report_progress(stale, &counts(10, 0)).await);
            let status = store.heartbeat(stale, T0 + 1, TTL).await.unwrap();
            assert!(!status.valid);
            assert_eq!(status.deadline, 0);
        }
        assert_eq!(store.get_run(&lease.run.id).await.unwrap(), before);
        assert_eq!(store.get_sync("scores").await.unwrap().snapshot, None);
        assert!(store
            .list_rejected_rows(&lease.run.id, 0, 10)
            .await
            .unwrap()
            .is_empty());
        // The right lease still works.
        assert!(!store.report_progress(&good, &counts(7, 0)).await.unwrap());
        assert_eq!(
            store.get_run(&lease.run.id).await.unwrap().counts,
            counts(7, 0)
        );
    }

    pub async fn heartbeat_extends_and_reports_cancel(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        store.enqueue_run(&trigger("scores"), T0).await.unwrap();
        let lease = lease(store, T0).await;
        let good = lease_ref(&lease);
        let status = store.heartbeat(&good, T0 + 10_000, TTL).await.unwrap();
        assert!(status.valid);
        assert!(!status.cancel_requested);
        assert_eq!(status.deadline, T0 + 10_000 + TTL);
        assert_eq!(
            store.get_run(&good.run_id).await.unwrap().lease_deadline,
            Some(T0 + 10_000 + TTL)
        );
        // The extended lease is not expired at the old deadline.
        assert!(store
            .requeue_expired(T0 + TTL + 1, 0)
            .await
            .unwrap()
            .is_empty());

        let cancelled = store.cancel_run(&good.run_id, T0 + 11_000).await.unwrap();
        assert_eq!(cancelled.state, RunState::Running);
        assert!(cancelled.cancel_requested);
        let status = store.heartbeat(&good, T0 + 12_000, TTL).await.unwrap();
        assert!(status.valid);
        assert!(status.cancel_requested);
        assert!(store.report_progress(&good, &counts(3, 0)).await.unwrap());
    }

    pub async fn retryable_failure_requeues_until_max_attempts(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        let run_id = store
            .enqueue_run(&trigger("scores"), T0)
            .await
            .unwrap()
            .run
            .id;
        let mut now = T0;
        for attempt in 1..=3u32 {
            let lease = lease(store, now).await;
            assert_eq!(lease.run.id, run_id);
            assert_eq!(lease.run.attempt, attempt);
            let error = retryable(&format!("connection reset on attempt {attempt}"));
            let run = store
                .fail_run(&lease_ref(&lease), &error, &counts(5, 1), now + 10, 1_000)
                .await
                .unwrap();
            assert_eq!(run.error, Some(error));
            assert_eq!(run.counts, counts(5, 1));
            assert_eq!(run.lease_id, None);
            assert_eq!(run.attempt, attempt);
            if attempt < 3 {
                assert_eq!(run.state, RunState::Queued);
                assert_eq!(run.not_before, now + 10 + 1_000);
                assert_eq!(run.ended_at, None);
                assert!(store
                    .lease_next_run("w", now + 10 + 999, TTL)
                    .await
                    .unwrap()
                    .is_none());
                now += 10 + 1_000;
            } else {
                assert_eq!(run.state, RunState::Failed);
                assert_eq!(run.ended_at, Some(now + 10));
                assert!(store
                    .lease_next_run("w", now + 1_000_000, TTL)
                    .await
                    .unwrap()
                    .is_none());
            }
        }
        // A failed run is not active: the sync can be triggered again.
        assert!(
            !store
                .enqueue_run(&trigger("scores"), now + 1)
                .await
                .unwrap()
                .coalesced
        );
    }

    pub async fn non_retryable_failure_fails_at_once(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 5).await;
        store.enqueue_run(&trigger("scores"), T0).await.unwrap();
        let lease = lease(store, T0).await;
        let error = RunError {
            code: "invalid_query".into(),
            message: "column churn_risk does not exist".into(),
            retryable: false,
        };
        let run = store
            .fail_run(
                &lease_ref(&lease),
                &error,
                &RunCounts::default(),
                T0 + 5,
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(run.state, RunState::Failed);
        assert_eq!(run.attempt, 1);
        assert_eq!(run.error, Some(error));
        assert_eq!(run.ended_at, Some(T0 + 5));
        assert_stale(
            store
                .fail_run(
                    &lease_ref(&lease),
                    &retryable("x"),
                    &RunCounts::default(),
                    T0,
                    0,
                )
                .await,
        );
    }

    pub async fn cancel_queued_and_running(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "a", 3).await;
        sync(store, "b", 3).await;
        let queued = store.enqueue_run(&trigger("a"), T0).await.unwrap().run;
        let cancelled = store.cancel_run(&queued.id, T0 + 1).await.unwrap();
        assert_eq!(cancelled.state, RunState::Cancelled);
        assert_eq!(cancelled.ended_at, Some(T0 + 1));
        let error = cancelled.error.expect("a cancelled run says why");
        assert_eq!(error.code, "cancelled");
        assert!(!error.retryable);
        assert!(store
            .lease_next_run("w", T0 + 2, TTL)
            .await
            .unwrap()
            .is_none());
        assert_precondition(store.cancel_run(&queued.id, T0 + 3).await, "cancelled");
        assert_not_found(store.cancel_run("nope", T0).await, "run", "nope");

        store.enqueue_run(&trigger("b"), T0).await.unwrap();
        let lease = lease(store, T0).await;
        let flagged = store.cancel_run(&lease.run.id, T0 + 1).await.unwrap();
        assert_eq!(flagged.state, RunState::Running);
        assert!(flagged.cancel_requested);
        // Even a retryable error ends a cancelled run.
        let run = store
            .fail_run(
                &lease_ref(&lease),
                &retryable("stopped: cancel requested"),
                &counts(3, 0),
                T0 + 2,
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(run.state, RunState::Cancelled);
        assert_eq!(run.ended_at, Some(T0 + 2));
        assert_precondition(store.cancel_run(&run.id, T0 + 3).await, "cancelled");

        // A succeeded run cannot be cancelled either.
        store.enqueue_run(&trigger("b"), T0 + 10).await.unwrap();
        let lease = self::lease(store, T0 + 10).await;
        let done = store
            .complete_run(&lease_ref(&lease), &completion(1, 0, "p"), T0 + 11)
            .await
            .unwrap();
        assert_precondition(store.cancel_run(&done.id, T0 + 12).await, "succeeded");
    }

    pub async fn requeue_expired_fences_the_old_attempt(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 2).await;
        let run_id = store
            .enqueue_run(&trigger("scores"), T0)
            .await
            .unwrap()
            .run
            .id;
        let first = lease(store, T0).await;
        assert!(store
            .requeue_expired(T0 + TTL - 1, 0)
            .await
            .unwrap()
            .is_empty());
        let requeued = store.requeue_expired(T0 + TTL + 1, 0).await.unwrap();
        assert_eq!(requeued.len(), 1);
        let run = &requeued[0];
        assert_eq!(run.id, run_id);
        assert_eq!(run.state, RunState::Queued);
        assert_eq!(run.lease_id, None);
        assert_eq!(run.worker_id, None);
        assert_eq!(run.not_before, T0 + TTL + 1);
        let error = run.error.clone().expect("the expiry is recorded");
        assert_eq!(error.code, "lease_expired");
        assert!(error.retryable);
        assert_eq!(store.get_run(&run_id).await.unwrap(), *run);

        let second = lease(store, T0 + TTL + 2).await;
        assert_eq!(second.run.id, run_id);
        assert_eq!(second.run.attempt, 2);
        // The first worker comes back: everything it says is stale.
        assert_stale(
            store
                .complete_run(
                    &lease_ref(&first),
                    &completion(1, 0, "old.snap"),
                    T0 + TTL + 3,
                )
                .await,
        );
        assert!(
            !store
                .heartbeat(&lease_ref(&first), T0 + TTL + 3, TTL)
                .await
                .unwrap()
                .valid
        );
        let done = store
            .complete_run(
                &lease_ref(&second),
                &completion(1, 0, "new.snap"),
                T0 + TTL + 4,
            )
            .await
            .unwrap();
        assert_eq!(done.state, RunState::Succeeded);
        assert_eq!(done.attempt, 2);
        assert_eq!(
            store
                .get_sync("scores")
                .await
                .unwrap()
                .snapshot
                .unwrap()
                .path,
            "new.snap"
        );

        // The last attempt expiring fails the run; a cancelled one ends cancelled.
        sync(store, "last", 1).await;
        sync(store, "cancelled", 3).await;
        let now = T0 + 100_000;
        let last = store.enqueue_run(&trigger("last"), now).await.unwrap().run;
        let cancel = store
            .enqueue_run(&trigger("cancelled"), now)
            .await
            .unwrap()
            .run;
        lease(store, now).await;
        lease(store, now).await;
        store.cancel_run(&cancel.id, now + 1).await.unwrap();
        let changed = store.requeue_expired(now + TTL + 1, 5_000).await.unwrap();
        assert_eq!(changed.len(), 2);
        let last = changed.iter().find(|r| r.id == last.id).unwrap();
        assert_eq!(last.state, RunState::Failed);
        assert_eq!(last.ended_at, Some(now + TTL + 1));
        assert_eq!(last.error.as_ref().unwrap().code, "lease_expired");
        let cancel = changed.iter().find(|r| r.id == cancel.id).unwrap();
        assert_eq!(cancel.state, RunState::Cancelled);
        assert!(store
            .requeue_expired(now + 10 * TTL, 0)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn concurrent_leasing_leases_each_run_once(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        let mut expected = HashSet::new();
        for i in 0..40 {
            let id = format!("sync_{i:02}");
            sync(store, &id, 3).await;
            expected.insert(store.enqueue_run(&trigger(&id), T0).await.unwrap().run.id);
        }
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let worker = format!("worker-{w}");
                    let mut leased = Vec::new();
                    while let Some(lease) = store
                        .lease_next_run(&worker, T0 + 1, TTL)
                        .await
                        .expect("lease")
                    {
                        assert_eq!(lease.run.worker_id.as_deref(), Some(worker.as_str()));
                        leased.push(lease.run.id);
                    }
                    leased
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        assert_eq!(all.len(), 40, "every run leased exactly once");
        assert_eq!(all.iter().cloned().collect::<HashSet<_>>(), expected);
        let running = store
            .list_runs(
                &RunFilter {
                    sync_id: None,
                    state: Some(RunState::Running),
                },
                None,
                100,
            )
            .await
            .unwrap();
        assert_eq!(running.len(), 40);
        assert!(running.iter().all(|r| r.attempt == 1));
    }

    pub async fn delete_sync_refused_while_active_then_cascades(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "scores", 3).await;
        let run = store.enqueue_run(&trigger("scores"), T0).await.unwrap().run;
        assert_precondition(store.delete_sync("scores").await, "queued");
        let lease = lease(store, T0).await;
        assert_precondition(store.delete_sync("scores").await, "running");
        store
            .complete_run(&lease_ref(&lease), &completion(3, 2, "p"), T0 + 1)
            .await
            .unwrap();
        assert_eq!(
            store
                .list_rejected_rows(&run.id, 0, 10)
                .await
                .unwrap()
                .len(),
            2
        );
        store.delete_sync("scores").await.unwrap();
        assert_not_found(store.get_run(&run.id).await, "run", &run.id);
        assert_not_found(
            store.list_rejected_rows(&run.id, 0, 10).await,
            "run",
            &run.id,
        );
        // Its connections are free again.
        store.delete_connection("warehouse").await.unwrap();
    }

    pub async fn list_runs_filters_and_pages(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "a", 3).await;
        sync(store, "b", 3).await;
        let mut a_runs = Vec::new();
        for i in 0..3 {
            let now = T0 + i * 10;
            a_runs.push(store.enqueue_run(&trigger("a"), now).await.unwrap().run.id);
            store.enqueue_run(&trigger("b"), now).await.unwrap();
            let l1 = lease(store, now).await;
            let l2 = lease(store, now).await;
            store
                .complete_run(&lease_ref(&l1), &completion(1, 0, "p"), now + 1)
                .await
                .unwrap();
            if i < 2 {
                store
                    .complete_run(&lease_ref(&l2), &completion(1, 0, "p"), now + 1)
                    .await
                    .unwrap();
            }
        }
        let by_a = RunFilter {
            sync_id: Some("a".into()),
            state: None,
        };
        let ids = |runs: Vec<backflow_control_plane::model::RunRecord>| {
            runs.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        let newest_first: Vec<String> = a_runs.iter().rev().cloned().collect();
        assert_eq!(
            ids(store.list_runs(&by_a, None, 10).await.unwrap()),
            newest_first
        );
        assert_eq!(
            ids(store.list_runs(&by_a, None, 2).await.unwrap()),
            newest_first[..2]
        );
        assert_eq!(
            ids(store
                .list_runs(&by_a, Some(&newest_first[1]), 2)
                .await
                .unwrap()),
            newest_first[2..]
        );
        let all = store
            .list_runs(&RunFilter::default(), None, 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id));
        let running = store
            .list_runs(
                &RunFilter {
                    sync_id: Some("b".into()),
                    state: Some(RunState::Running),
                },
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].sync_id, "b");
    }

    pub async fn schedules(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "a", 3).await;
        sync(store, "b", 3).await;
        sync(store, "c", 3).await;
        assert_eq!(store.get_next_schedule("a").await.unwrap(), None);
        assert!(store
            .due_schedules(T0 + 1_000_000)
            .await
            .unwrap()
            .is_empty());
        store.set_next_schedule("a", Some(T0 + 200)).await.unwrap();
        store.set_next_schedule("b", Some(T0 + 100)).await.unwrap();
        store.set_next_schedule("c", Some(T0 + 50)).await.unwrap();
        store.set_paused("c", true, T0).await.unwrap();
        assert_eq!(store.get_next_schedule("a").await.unwrap(), Some(T0 + 200));
        assert_not_found(
            store.set_next_schedule("nope", Some(T0)).await,
            "sync",
            "nope",
        );

        let due = |syncs: Vec<SyncRecord>| syncs.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert!(store.due_schedules(T0 + 99).await.unwrap().is_empty());
        assert_eq!(due(store.due_schedules(T0 + 100).await.unwrap()), ["b"]);
        assert_eq!(
            due(store.due_schedules(T0 + 500).await.unwrap()),
            ["b", "a"]
        );
        store
            .set_next_schedule("b", Some(T0 + 1_000))
            .await
            .unwrap();
        store.set_next_schedule("a", None).await.unwrap();
        assert!(store.due_schedules(T0 + 500).await.unwrap().is_empty());
        assert_eq!(due(store.due_schedules(T0 + 1_000).await.unwrap()), ["b"]);
        store.set_paused("c", false, T0).await.unwrap();
        assert_eq!(
            due(store.due_schedules(T0 + 1_000).await.unwrap()),
            ["c", "b"]
        );
    }

    pub async fn syncs_after(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        sync(store, "upstream", 3).await;
        sync(store, "unrelated", 3).await;
        for (id, after) in [
            ("down_b", "upstream"),
            ("down_a", "upstream"),
            ("other", "unrelated"),
        ] {
            let mut definition = definition("warehouse", "app_db");
            definition.schedule = Some(Schedule::AfterSync { sync: after.into() });
            store
                .create_sync(&sync_record(id, definition))
                .await
                .unwrap();
        }
        // A query mentioning the upstream id is not a dependency.
        let mut definition = definition("warehouse", "app_db");
        definition.query = "SELECT 'after_sync upstream' AS x".into();
        store
            .create_sync(&sync_record("decoy", definition))
            .await
            .unwrap();
        let ids = |syncs: Vec<SyncRecord>| syncs.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.syncs_after("upstream").await.unwrap()),
            ["down_a", "down_b"]
        );
        store.set_paused("down_a", true, T0).await.unwrap();
        assert_eq!(
            ids(store.syncs_after("upstream").await.unwrap()),
            ["down_b"]
        );
        assert_eq!(
            ids(store.syncs_after("unrelated").await.unwrap()),
            ["other"]
        );
        assert!(store.syncs_after("down_b").await.unwrap().is_empty());
    }

    pub async fn queue_stats(f: &Fixture) {
        let store = &f.store;
        connections(store).await;
        assert_eq!(store.queue_stats(T0).await.unwrap(), QueueStats::default());
        for id in ["a", "b", "c", "d"] {
            sync(store, id, 3).await;
        }
        store.enqueue_run(&trigger("a"), T0).await.unwrap();
        store.enqueue_run(&trigger("b"), T0 + 10).await.unwrap();
        store.enqueue_run(&trigger("c"), T0 + 20).await.unwrap();
        store.enqueue_run(&trigger("d"), T0 + 30).await.unwrap();
        // a: running; b: backing off until T0 + 10_000; c, d: ready.
        let a = lease(store, T0 + 40).await;
        assert_eq!(a.run.sync_id, "a");
        let b = lease(store, T0 + 40).await;
        store
            .fail_run(
                &lease_ref(&b),
                &retryable("x"),
                &RunCounts::default(),
                T0 + 50,
                10_000,
            )
            .await
            .unwrap();
        assert_eq!(
            store.queue_stats(T0 + 60).await.unwrap(),
            QueueStats {
                queued: 2,
                running: 1,
                oldest_queued_at: Some(T0 + 20),
            }
        );
        assert_eq!(
            store.queue_stats(T0 + 10_050).await.unwrap(),
            QueueStats {
                queued: 3,
                running: 1,
                oldest_queued_at: Some(T0 + 10),
            }
        );
    }

    pub async fn scheduler_lock(f: &Fixture) {
        let store = &f.store;
        let other = f.reopen().await;
        let mut lock = store
            .try_acquire_scheduler_lock()
            .await
            .unwrap()
            .expect("the first replica becomes the scheduler");
        assert!(lock.is_held().await);
        match store.dialect() {
            Dialect::Sqlite => {
                // One process owns a SQLite store: it is always the scheduler.
                assert!(other.try_acquire_scheduler_lock().await.unwrap().is_some());
                lock.release().await;
            }
            Dialect::Postgres => {
                assert!(other.try_acquire_scheduler_lock().await.unwrap().is_none());
                // Not re-entrant across sessions of the same store either.
                assert!(store.try_acquire_scheduler_lock().await.unwrap().is_none());
                lock.release().await;
                let mut taken = other
                    .try_acquire_scheduler_lock()
                    .await
                    .unwrap()
                    .expect("released lock is free");
                assert!(taken.is_held().await);
                assert!(store.try_acquire_scheduler_lock().await.unwrap().is_none());
                // Dropping the lock ends its session, which frees the lock.
                drop(taken);
                let mut reacquired = None;
                for _ in 0..50 {
                    reacquired = store.try_acquire_scheduler_lock().await.unwrap();
                    if reacquired.is_some() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                reacquired
                    .expect("a dropped lock is released")
                    .release()
                    .await;
            }
        }
        other.close().await;
    }
}
