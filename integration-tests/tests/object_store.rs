//! Snapshots in object storage across machines: a control plane configured with
//! `--snapshots s3://bucket/prefix` (moto, from `scripts/services.sh start`), and two
//! `backflow worker` processes, each in an empty working directory of its own, taking turns on
//! one sync. The worker that runs a sync has never seen its previous snapshot on disk: only the
//! bucket has it, so a run that writes only the changed rows proves the state moved between
//! machines through the object store.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use backflow_proto::v1;
use common::*;

/// The S3 test server and the `AWS_*` environment every process gets.
struct S3 {
    endpoint: String,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

impl S3 {
    fn from_services() -> Result<S3> {
        let endpoint = service_env("BACKFLOW_TEST_S3_ENDPOINT")?;
        let env = vec![
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            (
                "AWS_ACCESS_KEY_ID",
                service_env("BACKFLOW_TEST_S3_ACCESS_KEY_ID")?,
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                service_env("BACKFLOW_TEST_S3_SECRET_ACCESS_KEY")?,
            ),
            ("AWS_REGION", service_env("BACKFLOW_TEST_S3_REGION")?),
            // The test server speaks plain HTTP on loopback.
            ("AWS_ALLOW_HTTP", "true".into()),
        ];
        Ok(S3 {
            endpoint,
            env,
            http: reqwest::Client::new(),
        })
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// A bucket no other test uses. Moto does not check signatures, so a bare `PUT` creates it.
    async fn create_bucket(&self) -> Result<String> {
        let name = format!("bf-e2e-{}", random_suffix(16));
        let response = self
            .http
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .with_context(|| {
                format!(
                    "the S3 test server at {} is unreachable; run scripts/services.sh start",
                    self.endpoint
                )
            })?;
        ensure!(
            response.status().is_success(),
            "creating bucket {name} answered {}",
            response.status()
        );
        Ok(name)
    }

    /// Every key under `prefix` in `bucket`, sorted (ListObjectsV2; tests hold few objects).
    async fn keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let body = self
            .http
            .get(format!("{}/{bucket}", self.endpoint))
            .query(&[("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")])
            .send()
            .await
            .context("listing the bucket")?
            .error_for_status()
            .context("listing the bucket")?
            .text()
            .await?;
        ensure!(
            !body.contains("<IsTruncated>true</IsTruncated>"),
            "more than 1000 keys under {prefix}"
        );
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// Starts `backflow worker` in a working directory of its own with only `envs` (the object
/// store's settings) on top of a clean environment.
fn start_worker_in(
    env: &TestEnv,
    name: &str,
    cwd: &Path,
    addr: &str,
    envs: &[(&str, &str)],
) -> Result<Proc> {
    let server = format!("http://{addr}");
    Proc::spawn_in(
        env,
        name,
        cwd,
        &["worker", "--server", &server, "--concurrency", "1"],
        envs,
    )
}

/// Fails unless `dir` is empty: the worker kept no state of its own.
fn ensure_empty(dir: &Path) -> Result<()> {
    let entries: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    ensure!(
        entries.is_empty(),
        "the worker left files in its working directory {}: {entries:?}",
        dir.display()
    );
    Ok(())
}

/// Triggers the sync on `worker` and returns its run once final and succeeded.
async fn run_on(api: &Api, worker: &mut Proc) -> Result<v1::Run> {
    let name = api.trigger_new("orders").await?;
    let runs = wait_final(api, std::slice::from_ref(&name), Duration::from_secs(40))
        .await
        .with_context(|| format!("{}'s log:\n{}", worker.name, tail(&worker.log, 40)))?;
    worker.ensure_running()?;
    if runs[0].state() != v1::RunState::Succeeded {
        bail!(
            "{} on {}; its log:\n{}",
            describe_run(&runs[0]),
            worker.name,
            tail(&worker.log, 40)
        );
    }
    Ok(runs.into_iter().next().expect("one run"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_without_local_state_alternate_on_s3_snapshots() -> Result<()> {
    let env = TestEnv::new("object_store_workers").await?;
    let result = within(TEST_LIMIT, alternate_body(&env)).await;
    env.finish(result).await
}

async fn alternate_body(env: &TestEnv) -> Result<()> {
    const ROWS: u64 = 3000;
    let s3 = S3::from_services()?;
    let bucket = s3.create_bucket().await?;
    let snapshots = format!("s3://{bucket}/backflow");
    let store = env.create_database("store").await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let listen = addr.clone();
    let mut cp = Proc::spawn(
        env,
        "cp",
        &[
            "control-plane",
            "--listen",
            &listen,
            "--store",
            &store,
            "--snapshots",
            &snapshots,
        ],
        &s3.env(),
    )?;
    wait_serving(&mut cp, &listen, Duration::from_secs(30)).await?;
    let api = Api::new(&addr, None)?;
    let (_, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", ROWS as i64, 21).await?;
    let mut sync = pg_sync(&plain_query("src.t"), "dst.t", Some(700));
    sync.destination.as_mut().context("no destination")?.mode = v1::SyncMode::Mirror as i32;
    api.create_sync("orders", sync).await?;

    // Run 1 on worker A: every row.
    let cwd_a = env.path().join("worker-a-cwd");
    let cwd_b = env.path().join("worker-b-cwd");
    let mut a = start_worker_in(env, "worker-a", &cwd_a, &addr, &s3.env())?;
    let first = run_on(&api, &mut a).await?;
    ensure_first_run_counts(&first, ROWS)?;
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    a.stop().await?;
    let stored = s3.keys(&bucket, "backflow/syncs/orders/").await?;
    ensure!(
        stored.len() == 1 && stored[0].ends_with(".parquet"),
        "after run 1 the bucket should hold one snapshot and no journal: {stored:?}"
    );

    // The source changes: 10 rows updated, 5 deleted, 7 added.
    let expected = change_ten_five_seven(&data, ROWS).await?;

    // Run 2 on worker B, a fresh machine: it diffs against A's snapshot from the bucket.
    let mut b = start_worker_in(env, "worker-b", &cwd_b, &addr, &s3.env())?;
    let second = run_on(&api, &mut b).await?;
    let got = second.counts.unwrap_or_default();
    ensure!(
        got == expected,
        "run 2 on worker B should apply only the changes:\n  got      {got:?}\n  expected \
         {expected:?}"
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    b.stop().await?;

    // Run 3 back on worker A, against B's snapshot: 3 rows updated, 2 added.
    sqlx::query("UPDATE src.t SET score = -1 WHERE id IN (1, 2, 3)")
        .execute(&data)
        .await?;
    sqlx::query(
        "INSERT INTO src.t (id, name, score, active, updated_at) \
         SELECT g, 'newer-' || g, 1, false, now() FROM generate_series(200001, 200002) g",
    )
    .execute(&data)
    .await?;
    let mut a = start_worker_in(env, "worker-a", &cwd_a, &addr, &s3.env())?;
    let third = run_on(&api, &mut a).await?;
    let rows = ROWS - 5 + 7 + 2;
    let expected = v1::RunCounts {
        read: rows,
        added: 2,
        changed: 3,
        unchanged: rows - 2 - 3,
        removed: 0,
        written: 5,
        deleted: 0,
        failed: 0,
        skipped: 0,
    };
    let got = third.counts.unwrap_or_default();
    ensure!(
        got == expected,
        "run 3 on worker A should apply only the changes:\n  got      {got:?}\n  expected \
         {expected:?}"
    );
    ensure_same_rows(&data, "src.t", "dst.t").await?;
    a.stop().await?;

    // No process kept state of its own: the workers' directories are empty, the control plane
    // made no local snapshot directory, and the bucket holds the one current snapshot (each
    // commit deleted the one before and cleared the journal).
    ensure_empty(&cwd_a)?;
    ensure_empty(&cwd_b)?;
    ensure!(
        !env.path().join("snapshots").exists() && !env.path().join(".backflow").exists(),
        "a local snapshot directory was created"
    );
    let stored = s3.keys(&bucket, "backflow/").await?;
    ensure!(
        stored.len() == 1
            && stored[0].starts_with("backflow/syncs/orders/")
            && stored[0].ends_with(".parquet"),
        "after run 3 the bucket should hold only the current snapshot: {stored:?}"
    );
    Ok(())
}
