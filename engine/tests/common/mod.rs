//! Shared harness for the engine's end-to-end tests: a real PostgreSQL (started by
//! `scripts/services.sh`), real SQLite files, and a tiny stand-in for the control plane that
//! commits a run's snapshot only when the run succeeded.
#![allow(dead_code)]

use std::sync::Arc;

use anyhow::{Context, Result};
use backflow_connector_core::{Destination, Source};
use backflow_engine::{
    Engine, EngineError, RunInput, RunResult, SnapshotRef, SnapshotStore, SyncMode, SyncOptions,
    SyncSpec,
};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

/// The test server's URL; the default is what `scripts/services.sh start` sets up.
pub fn pg_url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://backflow:backflow@127.0.0.1:55432/backflow".into())
}

/// A pool on the test server; panics (fails the test) when the server is down, because a
/// required integration suite must never skip silently.
pub async fn pg() -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(&pg_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({e}); run scripts/services.sh start",
                backflow_connector_core::secret::redact_url(&pg_url())
            )
        })
}

/// A table name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Runs SQL statements separated by `;`.
pub async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One integer from a scalar query.
pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<i64, _>(0)
}

/// Rows in `a` missing from `b` plus rows in `b` missing from `a` (0 means equal).
pub async fn difference(pool: &PgPool, a: &str, b: &str) -> i64 {
    scalar(
        pool,
        &format!(
            "SELECT (SELECT count(*) FROM (TABLE {a} EXCEPT ALL TABLE {b}) x) + \
                    (SELECT count(*) FROM (TABLE {b} EXCEPT ALL TABLE {a}) y)"
        ),
    )
    .await
}

/// A PostgreSQL source or destination on the test server.
pub fn pg_source() -> Arc<dyn Source> {
    backflow_connectors::source("postgres", &json!({ "url": pg_url() })).unwrap()
}

/// A PostgreSQL destination on the test server.
pub fn pg_destination() -> Arc<dyn Destination> {
    backflow_connectors::destination("postgres", &json!({ "url": pg_url() })).unwrap()
}

/// A sync spec with test-sized batches, so every run crosses several batches.
pub fn spec(name: &str, query: &str, pk: &[&str], object: &str, mode: SyncMode) -> SyncSpec {
    SyncSpec {
        name: name.to_string(),
        query: query.to_string(),
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        object: object.to_string(),
        destination_connection: "test".into(),
        mode,
        create_table: true,
        mappings: Vec::new(),
        options: SyncOptions {
            batch_size: 97,
            ..SyncOptions::default()
        },
    }
}

/// A PostgreSQL → PostgreSQL sync on the test server.
pub fn pg_sync(name: &str, query: &str, pk: &[&str], object: &str, mode: SyncMode) -> Harness {
    Harness::new(
        spec(name, query, pk, object, mode),
        pg_source(),
        pg_destination(),
    )
}

/// A sync with its committed snapshot pointer: the part of the control plane the engine
/// needs, so tests exercise commit-only-on-success exactly as production does.
pub struct Harness {
    pub engine: Engine,
    pub spec: SyncSpec,
    pub source: Arc<dyn Source>,
    pub destination: Arc<dyn Destination>,
    pub committed: Option<SnapshotRef>,
    runs: u32,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new(spec: SyncSpec, source: Arc<dyn Source>, destination: Arc<dyn Destination>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(SnapshotStore::local(dir.path()).unwrap());
        Self {
            engine,
            spec,
            source,
            destination,
            committed: None,
            runs: 0,
            _dir: dir,
        }
    }

    /// Runs once and commits the snapshot if the run succeeded.
    pub async fn run(&mut self) -> Result<RunResult, EngineError> {
        self.run_with(false).await
    }

    /// Runs with `full_resync` and commits on success.
    pub async fn run_with(&mut self, full_resync: bool) -> Result<RunResult, EngineError> {
        let result = self.commit_without_clearing(full_resync).await?;
        // Committed: the journaled keys are accounted for, as after a real CompleteRun.
        self.engine
            .snapshots()
            .clear_journal(&result.journal)
            .await
            .expect("clearing the journal");
        Ok(result)
    }

    /// Runs and commits on success, but leaves the journal in place: a worker that died
    /// between CompleteRun's answer and clearing its journal.
    pub async fn commit_without_clearing(
        &mut self,
        full_resync: bool,
    ) -> Result<RunResult, EngineError> {
        self.runs += 1;
        let run_id = format!("run-{}", self.runs);
        let result = self
            .engine
            .run(RunInput {
                run_id: &run_id,
                spec: &self.spec,
                source: self.source.as_ref(),
                destination: self.destination.as_ref(),
                previous: self.committed.as_ref(),
                full_resync,
                progress: None,
            })
            .await?;
        self.committed = Some(result.snapshot.clone());
        Ok(result)
    }

    /// Runs and expects success.
    pub async fn ok(&mut self) -> RunResult {
        self.run().await.context("run failed").unwrap()
    }
}
