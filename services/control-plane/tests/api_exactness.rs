//! The API refuses what would silently go wrong, against a control plane served in process
//! and the real PostgreSQL test server:
//!
//! - destination names PostgreSQL would truncate (a 64-byte table, a 1 MB one, a long mapped
//!   column) are INVALID_ARGUMENT naming the field, and the error quotes only a few hundred
//!   bytes of the name;
//! - two syncs writing one table are refused (FAILED_PRECONDITION naming the other) unless
//!   both set `destination.shared`, also when the creates race, on both store backends;
//! - a password written inside a connection URL is never returned, a masked config written
//!   back keeps it, and the worker still gets it through its lease (a real run succeeds).

mod common;

use common::{wait_run_ended, with_database};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use backflow_control_plane::api::{ControlPlane, ControlPlaneConfig};
use backflow_control_plane::auth::AuthConfig;
use backflow_control_plane::store::Store;
use backflow_proto::json::{struct_from_json, struct_to_json};
use backflow_proto::v1;
use backflow_proto::v1::connection_service_client::ConnectionServiceClient;
use backflow_proto::v1::sync_service_client::SyncServiceClient;
use backflow_worker::runner::{run_worker, WorkerConfig};
use sqlx::{Connection as _, Executor as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt as _;

const DEFAULT_POSTGRES_URL: &str = "postgres://backflow:backflow@127.0.0.1:55432/backflow";

fn postgres_url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// A control plane serving on a free loopback port until the returned token is cancelled.
struct Server {
    addr: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(store: Option<Store>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = match store {
            Some(store) => store,
            None => {
                Store::connect_and_migrate(&format!(
                    "sqlite:{}?mode=rwc",
                    dir.path().join("state.db").display()
                ))
                .await?
            }
        };
        let mut config =
            ControlPlaneConfig::new(dir.path().join("snapshots").display().to_string());
        config.heartbeat_interval = Duration::from_secs(1);
        let cp = ControlPlane::new(store, config);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        tokio::spawn(backflow_control_plane::server::serve(
            cp,
            listener,
            AuthConfig::default(),
            None,
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            addr,
            stop,
            _dir: dir,
        })
    }

    async fn channel(&self) -> Result<Channel> {
        Ok(tonic::transport::Endpoint::from_shared(self.addr.clone())?
            .connect()
            .await?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The password of `scheme://user:password@host/…`, empty when there is none.
fn url_password(url: &str) -> String {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .unwrap_or_default()
}

/// A fresh PostgreSQL database for a store, dropped when the test ends.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> Result<Self> {
        let admin_url = postgres_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL is unreachable at {}; start it with `scripts/services.sh start`",
                    backflow_connector_core::secret::redact_url(&admin_url)
                )
            })?;
        let name = format!("bf_cp_api_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Ok(Self {
            admin_url,
            name,
            url,
        })
    }

    async fn drop_now(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
        }
    }
}

async fn create_pg_connection(channel: &Channel, id: &str, url: &str) -> Result<v1::Connection> {
    ConnectionServiceClient::new(channel.clone())
        .create_connection(v1::CreateConnectionRequest {
            connection_id: id.into(),
            connection: Some(v1::Connection {
                r#type: "postgres".into(),
                config: Some(struct_from_json(&serde_json::json!({ "url": url }))),
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .with_context(|| format!("CreateConnection {id}"))?
        .into_inner()
        .connection
        .context("no connection")
}

fn sync(query: &str, object: &str, key: &str) -> v1::Sync {
    v1::Sync {
        source: Some(v1::SyncSource {
            connection: "connections/src".into(),
            query: query.into(),
        }),
        primary_key: vec![key.into()],
        destination: Some(v1::SyncDestination {
            connection: "connections/dst".into(),
            object: object.into(),
            mode: v1::SyncMode::Upsert as i32,
            create_table: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_sync(
    channel: &Channel,
    id: &str,
    sync: v1::Sync,
) -> Result<v1::Sync, tonic::Status> {
    SyncServiceClient::new(channel.clone())
        .create_sync(v1::CreateSyncRequest {
            sync_id: id.into(),
            sync: Some(sync),
        })
        .await
        .map(|r| r.into_inner().sync.unwrap_or_default())
}

/// The fields of an INVALID_ARGUMENT status's `BadRequest` detail, checking that neither the
/// message nor any description quotes more than a few hundred bytes.
fn violated_fields(status: &tonic::Status) -> Result<Vec<String>> {
    ensure!(
        status.code() == Code::InvalidArgument,
        "expected INVALID_ARGUMENT, got {:?}: {}",
        status.code(),
        &status.message()[..status.message().len().min(500)]
    );
    ensure!(
        status.message().len() < 1000,
        "the status message is {} bytes",
        status.message().len()
    );
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .context("INVALID_ARGUMENT without a BadRequest detail")?;
    for v in &bad.field_violations {
        ensure!(
            v.description.len() < 600,
            "the violation of {} is {} bytes",
            v.field,
            v.description.len()
        );
    }
    Ok(bad
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_postgres_would_truncate_are_invalid_arguments_naming_the_field() -> Result<()> {
    let server = Server::start(None).await?;
    let channel = server.channel().await?;
    let url = postgres_url();
    create_pg_connection(&channel, "src", &url).await?;
    create_pg_connection(&channel, "dst", &url).await?;

    let t64 = "t".repeat(64);
    let huge = "t".repeat(1 << 20);
    let mut long_mapping = sync("SELECT 1 AS id, 2 AS v", "ok_table", "id");
    long_mapping.mappings.push(v1::Mapping {
        from: "v".into(),
        to: "v".repeat(64),
    });
    let cases = [
        (
            "table64",
            sync("SELECT 1 AS id", &t64, "id"),
            "sync.destination.object",
        ),
        (
            "schema64",
            sync("SELECT 1 AS id", &format!("{t64}.t"), "id"),
            "sync.destination.object",
        ),
        (
            "table1mb",
            sync("SELECT 1 AS id", &huge, "id"),
            "sync.destination.object",
        ),
        ("mapping64", long_mapping, "sync.mappings[0].to"),
        (
            "key64",
            sync(&format!("SELECT 1 AS {t64}"), "ok_table", &t64),
            "sync.primary_key[0]",
        ),
    ];
    for (id, definition, field) in cases {
        let status = create_sync(&channel, id, definition)
            .await
            .err()
            .with_context(|| format!("CreateSync {id} was accepted"))?;
        let fields = violated_fields(&status).with_context(|| format!("CreateSync {id}"))?;
        ensure!(
            fields == [field],
            "CreateSync {id}: the violations name {fields:?}, not {field}"
        );
    }
    let listed = SyncServiceClient::new(channel.clone())
        .list_syncs(v1::ListSyncsRequest::default())
        .await?
        .into_inner()
        .syncs;
    ensure!(listed.is_empty(), "refused syncs were stored: {listed:?}");

    // 63 bytes is PostgreSQL's limit, and allowed; an update to 64 is refused like a create.
    let t63 = "t".repeat(63);
    create_sync(&channel, "table63", sync("SELECT 1 AS id", &t63, "id"))
        .await
        .context("CreateSync with a 63-byte table name")?;
    let mut longer = sync("SELECT 1 AS id", &t64, "id");
    longer.name = "syncs/table63".into();
    let status = SyncServiceClient::new(channel.clone())
        .update_sync(v1::UpdateSyncRequest {
            sync: Some(longer),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["destination.object".into()],
            }),
        })
        .await
        .err()
        .context("UpdateSync to a 64-byte table name was accepted")?;
    ensure!(violated_fields(&status)? == ["sync.destination.object"]);
    let stored = SyncServiceClient::new(channel.clone())
        .get_sync(v1::GetSyncRequest {
            name: "syncs/table63".into(),
        })
        .await?
        .into_inner()
        .sync
        .context("no sync")?;
    ensure!(
        stored.destination.map(|d| d.object) == Some(t63),
        "the refused update changed the sync"
    );
    Ok(())
}

/// Two syncs, one table: refused unless both share it; racing creates let exactly one in.
async fn one_writer_per_object(store: Option<Store>) -> Result<()> {
    let server = Server::start(store).await?;
    let channel = server.channel().await?;
    let url = postgres_url();
    create_pg_connection(&channel, "src", &url).await?;
    create_pg_connection(&channel, "dst", &url).await?;
    create_pg_connection(&channel, "other_dst", &url).await?;
    let query = "SELECT 1 AS id";
    let mut syncs = SyncServiceClient::new(channel.clone());

    create_sync(&channel, "first", sync(query, "public.t", "id")).await?;
    // `t` is `public.t` on PostgreSQL's default search path.
    let status = create_sync(&channel, "second", sync(query, "t", "id"))
        .await
        .err()
        .context("a second sync writing public.t was accepted")?;
    ensure!(
        status.code() == Code::FailedPrecondition && status.message().contains("`first`"),
        "expected FAILED_PRECONDITION naming `first`: {status:?}"
    );
    // Sharing takes both: `first` does not share yet.
    let mut shared = sync(query, "t", "id");
    shared
        .destination
        .as_mut()
        .context("no destination")?
        .shared = true;
    let status = create_sync(&channel, "second", shared.clone())
        .await
        .err()
        .context("sharing was accepted though `first` does not share")?;
    ensure!(status.code() == Code::FailedPrecondition, "{status:?}");
    let mut first_shares = sync(query, "public.t", "id");
    first_shares.name = "syncs/first".into();
    first_shares
        .destination
        .as_mut()
        .context("no destination")?
        .shared = true;
    syncs
        .update_sync(v1::UpdateSyncRequest {
            sync: Some(first_shares),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["destination.shared".into()],
            }),
        })
        .await
        .context("UpdateSync destination.shared")?;
    create_sync(&channel, "second", shared)
        .await
        .context("both share public.t")?;

    // Another destination connection is another object; moving onto a taken one is refused.
    let mut elsewhere = sync(query, "t", "id");
    elsewhere
        .destination
        .as_mut()
        .context("no destination")?
        .connection = "connections/other_dst".into();
    create_sync(&channel, "third", elsewhere.clone())
        .await
        .context("the same table through another connection")?;
    create_sync(&channel, "fourth", sync(query, "u", "id")).await?;
    let mut onto_taken = sync(query, "public.t", "id");
    onto_taken.name = "syncs/fourth".into();
    let status = syncs
        .update_sync(v1::UpdateSyncRequest {
            sync: Some(onto_taken),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["destination.object".into()],
            }),
        })
        .await
        .err()
        .context("moving `fourth` onto public.t was accepted")?;
    ensure!(
        status.code() == Code::FailedPrecondition && status.message().contains("`first`"),
        "{status:?}"
    );

    // Racing creates of one target: exactly one wins, whichever replica-local order.
    let results =
        futures::future::join_all(
            (0..6).map(|i| {
                let channel = channel.clone();
                async move {
                    create_sync(&channel, &format!("race{i}"), sync(query, "race_t", "id")).await
                }
            }),
        )
        .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    ensure!(
        won == 1,
        "{won} of 6 racing creates of one target succeeded: {:?}",
        results
            .iter()
            .map(|r| r.as_ref().map(|_| ()).map_err(tonic::Status::code))
            .collect::<Vec<_>>()
    );
    ensure!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| s.code() == Code::FailedPrecondition),
        "a losing create failed otherwise: {results:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_object_on_a_sqlite_store() -> Result<()> {
    one_writer_per_object(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_object_on_a_postgres_store() -> Result<()> {
    let database = PgDatabase::create().await?;
    let store = Store::connect_and_migrate(&database.url).await?;
    let result = one_writer_per_object(Some(store)).await;
    database.drop_now().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_passwords_are_masked_in_responses_but_reach_the_worker() -> Result<()> {
    let url = postgres_url();
    let password = url_password(&url);
    ensure!(
        password.len() >= 3,
        "the test needs a PostgreSQL URL with a password (BACKFLOW_TEST_POSTGRES_URL)"
    );
    let server = Server::start(None).await?;
    let channel = server.channel().await?;
    let mut connections = ConnectionServiceClient::new(channel.clone());
    // The test server's password may equal its user or database name (`backflow`), so look
    // for it where a URL holds it: between `:` and `@`.
    let userinfo = format!(":{password}@");
    let no_password = |what: &str, text: String| {
        ensure!(
            !text.contains(&userinfo),
            "{what} holds the password: {}",
            backflow_connector_core::secret::redact_url(&text)
        );
        ensure!(text.contains(":***@"), "{what} shows no masked URL: {text}");
        Ok(())
    };

    let created = create_pg_connection(&channel, "src", &url).await?;
    no_password("CreateConnection's response", format!("{created:?}"))?;
    let shown = struct_to_json(&created.config.clone().unwrap_or_default());
    ensure!(
        shown["url"] == backflow_connector_core::secret::redact_url(&url),
        "the URL should come back masked: {}",
        shown["url"]
    );
    create_pg_connection(&channel, "dst", &url).await?;
    let got = connections
        .get_connection(v1::GetConnectionRequest {
            name: "connections/src".into(),
        })
        .await?
        .into_inner();
    no_password("GetConnection", format!("{got:?}"))?;
    let listed = connections
        .list_connections(v1::ListConnectionsRequest::default())
        .await?
        .into_inner();
    ensure!(listed.connections.len() == 2, "{listed:?}");
    no_password("ListConnections", format!("{listed:?}"))?;

    // Writing the masked config back unchanged keeps the password and changes nothing.
    let got = got.connection.context("no connection")?;
    let same = connections
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(got.clone()),
            update_mask: None,
            validate_only: false,
        })
        .await
        .context("UpdateConnection with the config as returned")?
        .into_inner()
        .connection
        .context("no connection")?;
    no_password("UpdateConnection's response", format!("{same:?}"))?;
    ensure!(
        same.update_time == got.update_time,
        "an update that changes nothing changed update_time"
    );
    // The mask with another host would send the stored password elsewhere: refused. So is a
    // new connection whose password is the mask.
    let mut moved = got.clone();
    let mut config = struct_to_json(&moved.config.clone().unwrap_or_default());
    config["url"] = serde_json::Value::String(
        config["url"]
            .as_str()
            .unwrap_or_default()
            .replace("127.0.0.1", "localhost"),
    );
    moved.config = Some(struct_from_json(&config));
    let status = connections
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(moved.clone()),
            update_mask: None,
            validate_only: false,
        })
        .await
        .err()
        .context("a masked password with another host was accepted")?;
    ensure!(violated_fields(&status)? == ["connection.config"]);
    let status = connections
        .create_connection(v1::CreateConnectionRequest {
            connection_id: "copy".into(),
            connection: Some(moved),
            validate_only: false,
        })
        .await
        .err()
        .context("a new connection with a masked password was accepted")?;
    ensure!(violated_fields(&status)? == ["connection.config"]);
    // Validate-only stores nothing.
    connections
        .create_connection(v1::CreateConnectionRequest {
            connection_id: "dry".into(),
            connection: Some(v1::Connection {
                r#type: "postgres".into(),
                config: Some(struct_from_json(&serde_json::json!({ "url": url }))),
                ..Default::default()
            }),
            validate_only: true,
        })
        .await
        .context("validate-only CreateConnection")?;
    let status = connections
        .get_connection(v1::GetConnectionRequest {
            name: "connections/dry".into(),
        })
        .await
        .err()
        .context("validate-only CreateConnection stored the connection")?;
    ensure!(status.code() == Code::NotFound, "{status:?}");

    // A run: the worker connects with the real password from its lease.
    let schema = format!("bf_mask_{}", uuid::Uuid::new_v4().simple());
    let mut pg = sqlx::PgConnection::connect(&url).await?;
    pg.execute(
        format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.src AS \
             SELECT g AS id, g * 2 AS v FROM generate_series(1, 40) g"
        )
        .as_str(),
    )
    .await?;
    create_sync(
        &channel,
        "masked",
        sync(
            &format!("SELECT id, v FROM {schema}.src"),
            &format!("{schema}.dst"),
            "id",
        ),
    )
    .await
    .context("CreateSync")?;
    let stop = CancellationToken::new();
    let mut worker = WorkerConfig::new(server.addr.clone());
    worker.concurrency = 1;
    worker.poll_wait = Duration::from_secs(1);
    let worker = tokio::spawn(run_worker(worker, stop.clone().cancelled_owned()));
    let run = SyncServiceClient::new(channel.clone())
        .trigger_sync(v1::TriggerSyncRequest {
            name: "syncs/masked".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .run
        .context("no run")?;
    let finished = wait_run_ended(channel.clone(), &run.name, Duration::from_secs(60)).await?;
    stop.cancel();
    worker.await??;
    ensure!(
        finished.state() == v1::RunState::Succeeded,
        "the run with the masked connection failed: {finished:?}"
    );
    let landed: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.dst"))
        .fetch_one(&mut pg)
        .await?;
    pg.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await?;
    ensure!(landed == 40, "{landed} of 40 rows landed");
    Ok(())
}
