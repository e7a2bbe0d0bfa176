//! Definitions that would silently go wrong are refused, through the API and through
//! `backflow apply`, against real `backflow` processes and the PostgreSQL test server:
//! destination names PostgreSQL would truncate (named by field, quoted briefly), two syncs
//! writing one table, and a file with one bad sync (which must change nothing at all). And a
//! password written inside a connection URL never reaches `connections get` or `list`, while
//! runs still connect with it.

mod common;

use anyhow::{bail, ensure, Context as _, Result};
use backflow_proto::v1;
use common::*;

async fn connection_ids(api: &Api) -> Result<Vec<String>> {
    Ok(api
        .connections
        .clone()
        .list_connections(v1::ListConnectionsRequest::default())
        .await?
        .into_inner()
        .connections
        .into_iter()
        .map(|c| c.name)
        .collect())
}

async fn sync_ids(api: &Api) -> Result<Vec<String>> {
    Ok(api
        .syncs
        .clone()
        .list_syncs(v1::ListSyncsRequest::default())
        .await?
        .into_inner()
        .syncs
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// A file with a new connection `fresh` and one sync `long` writing `table` through it.
fn file_with_table(url: &str, table: &str) -> String {
    format!(
        "connections:\n  - name: fresh\n    type: postgres\n    config: {{ url: \"{url}\" }}\n\
         syncs:\n  - name: long\n    source: {{ connection: fresh, query: \"SELECT 1 AS id\" }}\n\
         \x20   primary_key: [id]\n    destination: {{ connection: fresh, table: \"{table}\", mode: upsert }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_names_are_refused_by_create_sync_and_by_apply() -> Result<()> {
    let env = TestEnv::new("overlong_names").await?;
    let result = within(TEST_LIMIT, overlong_names_body(&env)).await;
    env.finish(result).await
}

async fn overlong_names_body(env: &TestEnv) -> Result<()> {
    let (_cp, addr) = sqlite_control_plane(env, &[]).await?;
    let api = Api::new(&addr, None)?;
    let url = postgres_url();
    api.create_pg_connection("src", &url).await?;
    api.create_pg_connection("dst", &url).await?;

    // PostgreSQL keeps 63 bytes of a name: 64 would write into another sync's table.
    let t64 = "t".repeat(64);
    let huge = "t".repeat(1 << 20);
    for (id, table) in [("t64", &t64), ("t1mb", &huge)] {
        let status = api
            .syncs
            .clone()
            .create_sync(v1::CreateSyncRequest {
                sync_id: id.into(),
                sync: Some(pg_sync("SELECT 1 AS id", table, None)),
            })
            .await
            .err()
            .with_context(|| format!("CreateSync {id} was accepted"))?;
        let fields = violated_fields(&status).with_context(|| format!("CreateSync {id}"))?;
        ensure!(
            fields == ["sync.destination.object"],
            "CreateSync {id} names {fields:?}"
        );
        ensure!(
            status.message().len() < 1000,
            "CreateSync {id}: the status message is {} bytes",
            status.message().len()
        );
    }
    ensure!(
        sync_ids(&api).await?.is_empty(),
        "a refused sync was stored"
    );
    api.create_sync("t63", pg_sync("SELECT 1 AS id", &"t".repeat(63), None))
        .await
        .context("a 63-byte table name is PostgreSQL's limit and allowed")?;

    // `apply` refuses the same, names the sync and the field, and creates not even the
    // file's valid connection.
    std::fs::write(env.path().join("t64.yaml"), file_with_table(&url, &t64))?;
    let out = run_cli(env, &addr, &["apply", "-f", "t64.yaml"]).await?;
    ensure!(
        out.code != 0,
        "apply of a 64-byte table name succeeded: {out:?}"
    );
    ensure!(
        out.stderr.contains("sync long")
            && out.stderr.contains("sync.destination.object")
            && out.stderr.contains("64 bytes long"),
        "apply's error should name the sync, the field and the length: {:?}",
        out.stderr
    );
    ensure!(
        out.stderr.contains("nothing was applied") && !out.stdout.contains("created"),
        "apply should change nothing: {out:?}"
    );
    ensure!(
        !connection_ids(&api)
            .await?
            .contains(&"connections/fresh".to_owned()),
        "apply created the connection of a file whose sync is invalid"
    );

    // A 1 MB name: refused, and the error quotes a few hundred bytes of it, not all.
    std::fs::write(env.path().join("huge.yaml"), file_with_table(&url, &huge))?;
    let out = run_cli(env, &addr, &["apply", "-f", "huge.yaml"]).await?;
    ensure!(out.code != 0, "apply of a 1 MB table name succeeded");
    ensure!(
        out.stderr.len() < 4000 && out.stderr.contains("1048576 bytes"),
        "apply's error should quote the name briefly with its length ({} bytes): {}",
        out.stderr.len(),
        &out.stderr[..out.stderr.len().min(2000)]
    );
    ensure!(
        !connection_ids(&api)
            .await?
            .contains(&"connections/fresh".to_owned()),
        "apply created the connection of a file whose sync is invalid"
    );
    Ok(())
}

/// Two syncs writing `dst.t` from the connection `app`; `shared` goes on both destinations.
fn two_writers(url: &str, shared: bool) -> String {
    let shared = if shared { ", shared: true" } else { "" };
    format!(
        "connections:\n\
         \x20 - name: wh\n    type: postgres\n    config: {{ url: \"{url}\" }}\n\
         \x20 - name: app\n    type: postgres\n    config: {{ url: \"{url}\" }}\n\
         syncs:\n\
         \x20 - name: evens\n\
         \x20   source: {{ connection: wh, query: \"SELECT id, name FROM src.t WHERE id % 2 = 0\" }}\n\
         \x20   primary_key: [id]\n\
         \x20   destination: {{ connection: app, table: dst.t, mode: upsert, create_table: true{shared} }}\n\
         \x20 - name: odds\n\
         \x20   source: {{ connection: wh, query: \"SELECT id, name FROM src.t WHERE id % 2 = 1\" }}\n\
         \x20   primary_key: [id]\n\
         \x20   destination: {{ connection: app, table: dst.t, mode: upsert{shared} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_changes_nothing_unless_the_whole_file_is_valid() -> Result<()> {
    let env = TestEnv::new("apply_whole_file").await?;
    let result = within(TEST_LIMIT, apply_whole_file_body(&env)).await;
    env.finish(result).await
}

async fn apply_whole_file_body(env: &TestEnv) -> Result<()> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 1, &[]).await?;
    let api = Api::new(&addr, None)?;
    let data_url = env.create_database("data").await?;
    let data = connect_pg(&data_url, 2).await?;
    sqlx::query("CREATE SCHEMA src").execute(&data).await?;
    sqlx::query("CREATE SCHEMA dst").execute(&data).await?;
    sqlx::query(
        "CREATE TABLE src.t AS SELECT g AS id, 'n' || g AS name FROM generate_series(1, 30) g",
    )
    .execute(&data)
    .await?;

    // Two syncs, one table: the file is refused as a whole, connections included.
    std::fs::write(env.path().join("twice.yaml"), two_writers(&data_url, false))?;
    let out = run_cli(env, &addr, &["apply", "-f", "twice.yaml"]).await?;
    ensure!(
        out.code != 0,
        "apply of two writers of dst.t succeeded: {out:?}"
    );
    ensure!(
        out.stderr.contains("sync `evens` already writes `dst.t`")
            && out.stderr.contains("nothing was applied"),
        "apply should name the other sync and change nothing: {:?}",
        out.stderr
    );
    ensure!(
        connection_ids(&api).await?.is_empty() && sync_ids(&api).await?.is_empty(),
        "a refused file created connections or syncs"
    );
    // A dry run reports the same and changes nothing either.
    let dry = run_cli(env, &addr, &["apply", "-f", "twice.yaml", "--dry-run"]).await?;
    ensure!(
        dry.code != 0 && dry.stderr.contains("already writes"),
        "{dry:?}"
    );

    // Both say they share it: applied.
    std::fs::write(env.path().join("shared.yaml"), two_writers(&data_url, true))?;
    let out = run_cli(env, &addr, &["apply", "-f", "shared.yaml"]).await?;
    out.ensure_ok("apply shared.yaml")?;
    ensure!(
        out.stdout.lines().collect::<Vec<_>>()
            == [
                "created connection wh",
                "created connection app",
                "created sync evens",
                "created sync odds"
            ],
        "{:?}",
        out.stdout
    );

    // The URL holds a literal password: never shown, yet compared (unchanged) and used.
    let password = url::Url::parse(&data_url)?
        .password()
        .map(str::to_owned)
        .context("the test database URL has no password")?;
    // The test server's password may equal its user name: look where a URL holds it.
    let userinfo = format!(":{password}@");
    for args in [
        &["connections", "get", "app"][..],
        &["connections", "get", "app", "--output", "json"],
        &["connections", "list", "--output", "json"],
    ] {
        let out = run_cli(env, &addr, args).await?;
        out.ensure_ok(&args.join(" "))?;
        ensure!(
            !out.stdout.contains(&userinfo) && !out.stderr.contains(&userinfo),
            "`{}` printed the password",
            args.join(" ")
        );
    }
    let shown = run_cli(
        env,
        &addr,
        &["connections", "get", "app", "--output", "json"],
    )
    .await?;
    ensure!(
        shown.stdout.contains(":***@"),
        "no masked URL in {:?}",
        shown.stdout
    );
    let got = api
        .connections
        .clone()
        .get_connection(v1::GetConnectionRequest {
            name: "connections/app".into(),
        })
        .await?
        .into_inner();
    ensure!(
        !format!("{got:?}").contains(&userinfo),
        "GetConnection returned the password"
    );
    let again = run_cli(env, &addr, &["apply", "-f", "shared.yaml"]).await?;
    again.ensure_ok("apply shared.yaml (again)")?;
    ensure!(
        again.stdout.lines().all(|l| l.starts_with("unchanged ")),
        "a second apply of the same file changed something: {:?}",
        again.stdout
    );
    // A new password in the file is an update, though the server shows neither.
    let changed = two_writers(&data_url, true).replacen(&userinfo, ":other-password@", 1);
    std::fs::write(env.path().join("changed.yaml"), changed)?;
    let dry = run_cli(env, &addr, &["apply", "-f", "changed.yaml", "--dry-run"]).await?;
    dry.ensure_ok("apply changed.yaml --dry-run")?;
    ensure!(
        dry.stdout.contains("would update connection wh (config)")
            && dry.stdout.contains("unchanged connection app"),
        "{:?}",
        dry.stdout
    );

    for sync in ["evens", "odds"] {
        let out = run_cli(env, &addr, &["trigger", sync, "--wait"]).await?;
        out.ensure_ok(&format!("trigger {sync} --wait"))?;
    }
    ensure_same_rows_by_id(&data).await
}

async fn ensure_same_rows_by_id(data: &sqlx::PgPool) -> Result<()> {
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM src.t s LEFT JOIN dst.t d USING (id) \
         WHERE d.id IS NULL OR d.name IS DISTINCT FROM s.name",
    )
    .fetch_one(data)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM dst.t")
        .fetch_one(data)
        .await?;
    if missing != 0 || total != 30 {
        bail!("dst.t holds {total} rows, {missing} of src.t's 30 missing or different");
    }
    Ok(())
}
