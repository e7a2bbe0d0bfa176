//! Snapshots and write journals in object storage: the engine against a real S3-compatible
//! server (moto, started by `scripts/services.sh start`), through `s3://bucket/prefix`
//! locations as the worker and the control plane open them.
//!
//! Each test creates a bucket of its own. The server is required: without it the tests fail,
//! naming the script that starts it.

// Timings of the large-snapshot test go to the test's captured stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::time::Instant;

use arrow::datatypes::{DataType, Field};
use backflow_engine::snapshot::SnapshotBuilder;
use backflow_engine::store::{sync_folder, SYNCS_FOLDER};
use backflow_engine::{Engine, RunInput, Snapshot, SnapshotStore, SyncMode};
use common::*;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The test server's settings, from `eval "$(scripts/services.sh env)"`.
struct S3 {
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
    region: String,
}

fn s3() -> S3 {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run `scripts/services.sh start` and \
                 `eval \"$(scripts/services.sh env)\"` (the S3 test server is required)"
            )
        })
    };
    S3 {
        endpoint: var("BACKFLOW_TEST_S3_ENDPOINT"),
        access_key_id: var("BACKFLOW_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: var("BACKFLOW_TEST_S3_SECRET_ACCESS_KEY"),
        region: var("BACKFLOW_TEST_S3_REGION"),
    }
}

impl S3 {
    /// The settings a deployment would give as `AWS_*` environment variables.
    fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Opens `location` as the worker does, with the test server's settings.
    fn open(&self, location: &str) -> SnapshotStore {
        SnapshotStore::open_with_options(location, self.options())
            .unwrap_or_else(|e| panic!("cannot open {location}: {e}"))
    }

    /// A client on the whole bucket, without the store's prefix, to see where objects land.
    fn raw(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_region(&self.region)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .build()
            .expect("raw S3 client")
    }

    /// Creates a bucket with a name no other test uses. Moto does not check signatures, so a
    /// bare `PUT /bucket` is enough (object_store itself cannot create buckets).
    async fn bucket(&self) -> String {
        let name = format!("bf-test-{}", uuid::Uuid::new_v4().simple());
        let url = url::Url::parse(&self.endpoint).expect("BACKFLOW_TEST_S3_ENDPOINT is a URL");
        let host = url.host_str().expect("the endpoint has a host").to_owned();
        let port = url
            .port_or_known_default()
            .expect("the endpoint has a port");
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the S3 test server at {host}:{port} is unreachable ({e}); run \
                     scripts/services.sh start"
                )
            });
        let request = format!(
            "PUT /{name} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "creating bucket {name} failed: {answer}"
        );
        name
    }
}

/// Every key in the bucket, sorted.
async fn keys(raw: &AmazonS3) -> Vec<String> {
    let mut keys: Vec<String> = raw
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list the bucket");
    keys.sort();
    keys
}

fn int_key() -> Vec<Field> {
    vec![Field::new("id", DataType::Int64, false)]
}

/// The encoded key and a well-spread hash of row `i`.
fn entry(i: u64) -> ([u8; 9], u128) {
    let mut key = [1u8; 9];
    key[1..].copy_from_slice(&i.to_be_bytes());
    // SplitMix64 twice: hashes that do not compress, as real row hashes.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let hash = (u128::from(mix(i)) << 64) | u128::from(mix(!i));
    (key, hash | 1)
}

fn snapshot_of(rows: u64) -> SnapshotBuilder {
    let mut builder = SnapshotBuilder::new(int_key());
    // Added in reverse: the store must sort them.
    for i in (0..rows).rev() {
        let (key, hash) = entry(i);
        builder.push(&key, hash).unwrap();
    }
    builder
}

#[tokio::test]
async fn snapshots_live_under_the_url_prefix_and_round_trip() {
    let s3 = s3();
    let bucket = s3.bucket().await;
    let store = s3.open(&format!("s3://{bucket}/team/backflow/"));
    let raw = s3.raw(&bucket);

    let written = store
        .write(
            "scores",
            "run-1-a1",
            &Snapshot::empty(int_key()),
            snapshot_of(500),
        )
        .await
        .unwrap();
    assert_eq!(written.path, "syncs/scores/run-1-a1.parquet");
    assert_eq!(written.rows, 500);
    assert_eq!(
        keys(&raw).await,
        ["team/backflow/syncs/scores/run-1-a1.parquet"]
    );

    // Another handle on the same location (another machine) reads it back.
    let loaded = s3
        .open(&format!("s3://{bucket}/team/backflow"))
        .load(&written)
        .await
        .unwrap();
    assert_eq!(loaded.len(), 500);
    for i in [0, 1, 250, 499] {
        let (key, hash) = entry(i);
        assert_eq!(loaded.lookup(&key).map(|(_, h)| h), Some(hash), "row {i}");
    }
    assert!(loaded.lookup(&entry(500).0).is_none());
    let (first, _) = entry(0);
    assert_eq!(loaded.key(0), first.as_slice(), "keys are sorted");

    // Listings see the store's own paths, not the bucket's.
    let top = store.list_folder(SYNCS_FOLDER).await.unwrap();
    assert_eq!(top.folders, [sync_folder("scores")]);
    let folder = store.list_folder(&sync_folder("scores")).await.unwrap();
    assert_eq!(folder.objects.len(), 1);
    assert_eq!(folder.objects[0].path, written.path);
    assert!(folder.objects[0].size > 0);

    store.delete(&written).await.unwrap();
    assert!(keys(&raw).await.is_empty());
    // Deleting twice, or through the path API, is not an error.
    store.delete(&written).await.unwrap();
    store.delete_path(&written.path).await.unwrap();

    // A bucket that does not exist fails on first use, with a retryable snapshot error.
    let missing = s3.open("s3://bf-test-no-such-bucket/p");
    let e = missing.load(&written).await.unwrap_err();
    assert_eq!(e.code(), "snapshot_error", "{e}");
    assert!(!e.to_string().contains(&s3.secret_access_key), "{e}");
}

#[tokio::test]
async fn a_million_key_snapshot_goes_multipart_and_loads_back() {
    const ROWS: u64 = 1_000_000;
    let s3 = s3();
    let bucket = s3.bucket().await;
    let store = s3.open(&format!("s3://{bucket}/big"));
    let empty = Snapshot::empty(int_key());

    let started = Instant::now();
    let written = store
        .write("big", "run-1", &empty, snapshot_of(ROWS))
        .await
        .unwrap();
    let s3_write = started.elapsed();
    let started = Instant::now();
    let loaded = store.load(&written).await.unwrap();
    let s3_load = started.elapsed();
    assert_eq!(loaded.len() as u64, ROWS);
    for i in [0, 1, ROWS / 2, ROWS - 1] {
        let (key, hash) = entry(i);
        assert_eq!(loaded.lookup(&key).map(|(_, h)| h), Some(hash), "row {i}");
    }

    // object_store's BufWriter buffers 10 MiB and switches to a multipart upload past it: a
    // multipart object's ETag ends in `-<number of parts>`.
    let meta = s3
        .raw(&bucket)
        .head(&Path::from("big/syncs/big/run-1.parquet"))
        .await
        .unwrap();
    assert!(meta.size > 10 * 1024 * 1024, "only {} bytes", meta.size);
    let etag = meta.e_tag.clone().unwrap_or_default();
    let parts: u32 = etag
        .trim_matches('"')
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1);
    assert!(
        parts >= 2,
        "not a multipart upload: ETag {etag}, {} bytes",
        meta.size
    );

    // The same snapshot in a local directory, for comparison.
    let dir = tempfile::tempdir().unwrap();
    let local = SnapshotStore::local(dir.path()).unwrap();
    let started = Instant::now();
    let local_ref = local
        .write("big", "run-1", &empty, snapshot_of(ROWS))
        .await
        .unwrap();
    let local_write = started.elapsed();
    let started = Instant::now();
    let local_loaded = local.load(&local_ref).await.unwrap();
    let local_load = started.elapsed();
    assert_eq!(local_loaded.len() as u64, ROWS);
    eprintln!(
        "[object_store] {ROWS} keys, {:.1} MiB in {parts} parts: s3 (moto) write {:.2}s load \
         {:.2}s; local directory write {:.2}s load {:.2}s",
        meta.size as f64 / (1024.0 * 1024.0),
        s3_write.as_secs_f64(),
        s3_load.as_secs_f64(),
        local_write.as_secs_f64(),
        local_load.as_secs_f64(),
    );
}

#[tokio::test]
async fn engine_runs_diff_and_journal_through_s3() {
    let s3 = s3();
    let bucket = s3.bucket().await;
    let location = format!("s3://{bucket}/prod/snapshots");
    let pool = pg().await;
    let (src, dst) = (unique("src"), unique("dst"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {src} (id int8 PRIMARY KEY, name text, amount numeric(12,2));
             INSERT INTO {src} SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 2000) g;"
        ),
    )
    .await;
    let name = unique("s3sync");
    let mut h = pg_sync(
        &name,
        &format!("SELECT * FROM {src}"),
        &["id"],
        &dst,
        SyncMode::Mirror,
    );
    h.engine = Engine::new(s3.open(&location));
    let journal = format!("{}/journal", sync_folder(&name));
    let journal_in_bucket = |store: SnapshotStore| {
        let journal = journal.clone();
        async move {
            let mut paths: Vec<String> = store
                .list_all(&journal)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.path)
                .collect();
            paths.sort();
            paths
        }
    };

    // Run 1 writes everything, journaling every batch; its commit clears the journal.
    let first = h.ok().await;
    assert_eq!(first.counts.written, 2000);
    assert!(
        first.journal_stats.segments > 1,
        "{:?}",
        first.journal_stats
    );
    assert_eq!(
        first.journal.paths.len() as u64,
        first.journal_stats.segments
    );
    assert!(journal_in_bucket(s3.open(&location)).await.is_empty());
    assert!(
        keys(&s3.raw(&bucket))
            .await
            .contains(&format!("prod/snapshots/{}", first.snapshot.path)),
        "the snapshot is under the URL's prefix"
    );

    // The source changes, and an attempt on another machine applies the changes but never
    // commits (its worker died): only its journal, in the bucket, knows what it wrote.
    exec(
        &pool,
        &format!(
            "UPDATE {src} SET name = 'changed' WHERE id % 200 = 0;
             DELETE FROM {src} WHERE id BETWEEN 501 AND 505;
             INSERT INTO {src} SELECT g, 'new', 1 FROM generate_series(2001, 2007) g;"
        ),
    )
    .await;
    let lost = Engine::new(s3.open(&location))
        .run(RunInput {
            run_id: "run-2-a1",
            spec: &h.spec,
            source: h.source.as_ref(),
            destination: h.destination.as_ref(),
            previous: h.committed.as_ref(),
            full_resync: false,
            progress: None,
        })
        .await
        .unwrap();
    assert_eq!(
        lost.counts.written + lost.counts.deleted,
        22,
        "{:?}",
        lost.counts
    );
    let mut expected = lost.journal.paths.clone();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(
        journal_in_bucket(s3.open(&location)).await,
        expected,
        "the lost attempt's journal is in the bucket"
    );

    // The rows it added leave the source again before the next run.
    exec(&pool, &format!("DELETE FROM {src} WHERE id > 2000")).await;

    // Run 2, on a third machine, reads that journal from the bucket: the 7 rows only the lost
    // attempt wrote are deleted, and the destination equals the source.
    h.engine = Engine::new(s3.open(&location));
    let second = h.ok().await;
    assert_eq!(
        second.journal_stats.recovered_keys, 22,
        "{:?}",
        second.journal_stats
    );
    // The 5 rows the lost attempt already deleted are gone: their deletes are skipped.
    assert_eq!(
        (
            second.counts.written,
            second.counts.removed,
            second.counts.deleted,
            second.counts.skipped,
            second.counts.failed,
        ),
        (10, 12, 7, 5, 0),
        "{:?}",
        second.counts
    );
    assert_eq!(difference(&pool, &dst, &src).await, 0);
    // Its commit cleared what it read and what it wrote.
    assert!(journal_in_bucket(s3.open(&location)).await.is_empty());

    // Run 3, on yet another handle, after another change: only the changes are written.
    exec(
        &pool,
        &format!("UPDATE {src} SET amount = -1 WHERE id IN (1, 2, 3)"),
    )
    .await;
    h.engine = Engine::new(s3.open(&location));
    let third = h.ok().await;
    assert_eq!(third.journal_stats.recovered_keys, 0);
    assert_eq!(
        (
            third.counts.changed,
            third.counts.added,
            third.counts.removed,
            third.counts.written,
            third.counts.deleted,
        ),
        (3, 0, 0, 3, 0),
        "{:?}",
        third.counts
    );
    assert_eq!(difference(&pool, &dst, &src).await, 0);
    assert!(journal_in_bucket(s3.open(&location)).await.is_empty());
    let folder = h
        .engine
        .snapshots()
        .list_folder(&sync_folder(&name))
        .await
        .unwrap();
    assert!(
        folder.objects.iter().any(|o| o.path == third.snapshot.path),
        "run 3's snapshot is in the bucket"
    );
}
