//! Rejected rows and interrupted runs: nothing lost, nothing duplicated, failed rows retried.

mod common;

use std::time::Duration;

use backflow_engine::{EngineError, SyncMode};
use common::*;

#[tokio::test]
async fn rejected_rows_carry_the_database_message_and_are_retried() {
    let pool = pg().await;
    let (src, dst, teams) = (unique("src"), unique("dst"), unique("teams"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {teams} (id int4 PRIMARY KEY);
             INSERT INTO {teams} VALUES (1), (2);
             CREATE TABLE {dst} (id int8 PRIMARY KEY, name text NOT NULL,
                                 score float8 CHECK (score >= 0),
                                 team_id int4 REFERENCES {teams}(id));
             CREATE TABLE {src} (id int8 PRIMARY KEY, name text, score float8, team_id int4);
             INSERT INTO {src} SELECT g, 'n' || g, g, 1 + g % 2 FROM generate_series(1, 500) g;
             UPDATE {src} SET name = NULL WHERE id = 17;
             UPDATE {src} SET score = -5 WHERE id = 222;
             UPDATE {src} SET team_id = 99 WHERE id = 401;"
        ),
    )
    .await;
    let mut h = pg_sync(
        "rejects",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Upsert,
    );
    let r = h.ok().await;
    assert_eq!(r.counts.failed, 3);
    assert_eq!(r.counts.written, 497);
    let mut rejected = r.rejected.clone();
    rejected.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<_> = rejected.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, vec!["id=17", "id=222", "id=401"]);
    let message = |k: &str| {
        rejected
            .iter()
            .find(|r| r.key == k)
            .unwrap()
            .message
            .clone()
    };
    assert!(
        message("id=17").contains("null value"),
        "{}",
        message("id=17")
    );
    assert!(
        message("id=222").contains("check constraint"),
        "{}",
        message("id=222")
    );
    assert!(
        message("id=401").contains("foreign key"),
        "{}",
        message("id=401")
    );
    assert_eq!(
        scalar(&pool, &format!("SELECT count(*) FROM {dst}")).await,
        497
    );

    // Fix the source: exactly the three rejected rows are retried, then all is clean.
    exec(
        &pool,
        &format!(
            "UPDATE {src} SET name = 'fixed' WHERE id = 17;
             UPDATE {src} SET score = 5 WHERE id = 222;
             UPDATE {src} SET team_id = 2 WHERE id = 401;"
        ),
    )
    .await;
    let r = h.ok().await;
    assert_eq!(
        (r.counts.added, r.counts.written, r.counts.failed),
        (3, 3, 0)
    );
    assert_eq!(difference(&pool, &dst, &src).await, 0);
    let r = h.ok().await;
    assert_eq!(
        (r.counts.written, r.counts.failed, r.counts.unchanged),
        (0, 0, 500)
    );
}

async fn source_table(pool: &sqlx::PgPool, rows: i64) -> String {
    let src = unique("src");
    exec(
        pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, payload text);
             INSERT INTO {src} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, {rows}) g;"
        ),
    )
    .await;
    src
}

#[tokio::test]
async fn an_aborted_run_converges_on_the_next_run() {
    let pool = pg().await;
    let src = source_table(&pool, 30_000).await;
    let dst = unique("dst");
    let mut h = pg_sync(
        "abort",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Mirror,
    );
    // Start a run and abort its task once part of the data has landed.
    let engine = h.engine.clone();
    let (spec, source, destination) = (h.spec.clone(), h.source.clone(), h.destination.clone());
    let task = tokio::spawn(async move {
        engine
            .run(backflow_engine::RunInput {
                run_id: "aborted",
                spec: &spec,
                source: source.as_ref(),
                destination: destination.as_ref(),
                previous: None,
                full_resync: false,
                progress: None,
            })
            .await
    });
    let mut landed = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        landed = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {dst}"))
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if landed > 0 {
            break;
        }
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(
        landed > 0 && landed < 30_000,
        "abort came too late to test anything: {landed}"
    );
    assert!(h.committed.is_none());

    // A little change in between, then the next run converges exactly.
    exec(
        &pool,
        &format!("UPDATE {src} SET payload = 'after abort' WHERE id % 1000 = 0"),
    )
    .await;
    let r = h.ok().await;
    assert_eq!(r.counts.read, 30_000);
    assert_eq!(r.counts.failed, 0);
    assert_eq!(difference(&pool, &dst, &src).await, 0);
    assert_eq!(
        scalar(&pool, &format!("SELECT count(*) FROM {dst}")).await,
        30_000
    );
}

#[tokio::test]
async fn a_dropped_destination_connection_fails_retryably_and_the_next_run_converges() {
    let pool = pg().await;
    let src = source_table(&pool, 30_000).await;
    let dst = unique("dst");
    let mut h = pg_sync(
        "drop",
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Upsert,
    );
    let killer = {
        use std::str::FromStr;
        // Its own pool, named, so it never terminates itself or the test's other connections.
        let options = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
            .unwrap()
            .application_name("backflow-test-killer");
        let pool = sqlx::PgPool::connect_with(options).await.unwrap();
        let dst = dst.clone();
        tokio::spawn(async move {
            // Wait for rows to land, then terminate whatever backend is writing the table.
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let landed = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {dst}"))
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0);
                if landed > 0 {
                    break;
                }
            }
            sqlx::query_scalar::<_, i64>(&format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND datname = current_database()
                   AND application_name <> 'backflow-test-killer'
                   AND query ILIKE '%{dst}%'"
            ))
            .fetch_one(&pool)
            .await
            .unwrap()
        })
    };
    let outcome = h.run().await;
    let killed = killer.await.unwrap();
    assert!(killed > 0, "no writing backend was found to terminate");
    match outcome {
        Err(e @ EngineError::Destination(_)) => assert!(e.is_retryable(), "{e}"),
        Err(e @ EngineError::Source(_)) => assert!(e.is_retryable(), "{e}"),
        other => panic!("expected a retryable connection error, got {other:?}"),
    }
    assert!(h.committed.is_none());
    let r = h.ok().await;
    assert_eq!(r.counts.read, 30_000);
    assert_eq!(difference(&pool, &dst, &src).await, 0);
}
