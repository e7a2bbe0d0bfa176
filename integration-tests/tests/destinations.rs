//! Every application-database destination end to end, through the CLI a user would type:
//! `backflow apply` of a mirror sync from PostgreSQL, `backflow trigger --wait`, then a round of
//! updates, deletes and inserts in the source, a second `trigger --wait`, and the destination
//! read back with that database's own client must equal the source.
//!
//! Servers: PostgreSQL (also the stand-in for CockroachDB, which cannot run here), MariaDB,
//! FerretDB (the MongoDB-compatible server) and the Firestore emulator, all started by
//! `scripts/services.sh start`. A missing server fails the test with the variable to set.

mod common;

use anyhow::{Context as _, Result};
use common::scores::{ensure_equal, read_pg, Rows, Score};
use common::*;
use sqlx::Row as _;

/// Rows in the source at the first run.
const ROWS: i64 = 3000;

/// A destination under test: its connection YAML, the object a sync writes, and how to read
/// that object back.
enum Target {
    Postgres { url: String },
    Cockroach { url: String },
    Mysql { url: String },
    Mongo { url: String, database: String },
    Firestore { host: String, project: String },
}

impl Target {
    fn kind(&self) -> &'static str {
        match self {
            Target::Postgres { .. } => "postgres",
            Target::Cockroach { .. } => "cockroachdb",
            Target::Mysql { .. } => "mysql",
            Target::Mongo { .. } => "mongodb",
            Target::Firestore { .. } => "firestore",
        }
    }

    /// The `config:` of the destination connection, as YAML flow mapping.
    fn config(&self) -> String {
        match self {
            Target::Postgres { url } | Target::Cockroach { url } | Target::Mysql { url } => {
                format!("{{ url: \"{url}\" }}")
            }
            Target::Mongo { url, database } => {
                format!("{{ url: \"{url}\", database: {database} }}")
            }
            Target::Firestore { host, project } => {
                format!("{{ project: {project}, emulator_host: \"{host}\" }}")
            }
        }
    }

    /// How the sync names its destination object.
    fn object(&self) -> &'static str {
        match self {
            Target::Postgres { .. } | Target::Cockroach { .. } => "table: dst.scores",
            Target::Mysql { .. } => "table: scores",
            Target::Mongo { .. } | Target::Firestore { .. } => "collection: scores",
        }
    }

    async fn read(&self) -> Result<Rows> {
        match self {
            Target::Postgres { url } | Target::Cockroach { url } => {
                let pool = connect_pg(url, 1).await?;
                read_pg(&pool, "dst.scores").await
            }
            Target::Mysql { url } => read_mysql(url).await,
            Target::Mongo { url, database } => read_mongo(url, database).await,
            Target::Firestore { host, project } => read_firestore(host, project).await,
        }
    }
}

async fn read_mysql(url: &str) -> Result<Rows> {
    use sqlx::Connection as _;
    let mut conn = sqlx::MySqlConnection::connect(url)
        .await
        .context("connecting to MariaDB")?;
    // DATETIME columns hold UTC wall-clock time (the connector's documented mapping).
    let rows = sqlx::query(
        "SELECT id, CONVERT(name USING utf8mb4) AS name, score, active, \
                CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', updated_at) AS SIGNED) AS micros \
         FROM scores",
    )
    .fetch_all(&mut conn)
    .await
    .context("reading scores from MariaDB")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("id")?,
                Score {
                    name: r.try_get("name")?,
                    score: r.try_get("score")?,
                    active: r.try_get::<bool, _>("active")?,
                    updated_at_micros: r.try_get("micros")?,
                },
            ))
        })
        .collect()
}

async fn read_mongo(url: &str, database: &str) -> Result<Rows> {
    use futures::TryStreamExt as _;
    use mongodb::bson::{Bson, Document};
    let client = mongodb::Client::with_uri_str(url)
        .await
        .context("connecting to the MongoDB-compatible server")?;
    let docs: Vec<Document> = client
        .database(database)
        .collection::<Document>("scores")
        .find(Document::new())
        .await
        .context("querying scores")?
        .try_collect()
        .await
        .context("reading scores")?;
    docs.iter()
        .map(|doc| {
            // A single-column key is the document's `_id` (the connector's default mapping).
            let id = match doc.get("_id") {
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Int32(v)) => i64::from(*v),
                other => anyhow::bail!("unexpected _id {other:?}"),
            };
            let score = match doc.get("score") {
                None | Some(Bson::Null) => None,
                Some(Bson::Double(v)) => Some(*v),
                other => anyhow::bail!("unexpected score {other:?} in {id}"),
            };
            let updated_at_micros = match doc.get("updated_at") {
                Some(Bson::DateTime(t)) => t.timestamp_millis() * 1000,
                other => anyhow::bail!("unexpected updated_at {other:?} in {id}"),
            };
            Ok((
                id,
                Score {
                    name: doc
                        .get_str("name")
                        .with_context(|| format!("name of {id}"))?
                        .to_owned(),
                    score,
                    active: doc
                        .get_bool("active")
                        .with_context(|| format!("active of {id}"))?,
                    updated_at_micros,
                },
            ))
        })
        .collect()
}

async fn read_firestore(host: &str, project: &str) -> Result<Rows> {
    // The emulator has no ListDocuments; a structured query over the collection reads it all.
    use googleapis_tonic_google_firestore_v1::google::firestore::v1::{
        firestore_client::FirestoreClient, run_query_request::QueryType, structured_query,
        value::ValueType, RunQueryRequest, StructuredQuery,
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{host}"))?
        .connect()
        .await
        .context("connecting to the Firestore emulator")?;
    let mut client = FirestoreClient::new(channel);
    let mut request = tonic::Request::new(RunQueryRequest {
        parent: format!("projects/{project}/databases/(default)/documents"),
        query_type: Some(QueryType::StructuredQuery(StructuredQuery {
            from: vec![structured_query::CollectionSelector {
                collection_id: "scores".into(),
                all_descendants: false,
            }],
            ..Default::default()
        })),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer owner".parse()?);
    let mut stream = client
        .run_query(request)
        .await
        .context("querying scores in the Firestore emulator")?
        .into_inner();
    let mut rows = Rows::new();
    while let Some(item) = stream.message().await? {
        let Some(doc) = item.document else { continue };
        let field = |name: &str| doc.fields.get(name).and_then(|v| v.value_type.clone());
        let id = match field("id") {
            Some(ValueType::IntegerValue(v)) => v,
            other => anyhow::bail!("unexpected id {other:?} in {}", doc.name),
        };
        let score = match field("score") {
            None | Some(ValueType::NullValue(_)) => None,
            Some(ValueType::DoubleValue(v)) => Some(v),
            other => anyhow::bail!("unexpected score {other:?} in {}", doc.name),
        };
        let name = match field("name") {
            Some(ValueType::StringValue(v)) => v,
            other => anyhow::bail!("unexpected name {other:?} in {}", doc.name),
        };
        let active = match field("active") {
            Some(ValueType::BooleanValue(v)) => v,
            other => anyhow::bail!("unexpected active {other:?} in {}", doc.name),
        };
        let updated_at_micros = match field("updated_at") {
            Some(ValueType::TimestampValue(t)) => t.seconds * 1_000_000 + i64::from(t.nanos) / 1000,
            other => anyhow::bail!("unexpected updated_at {other:?} in {}", doc.name),
        };
        rows.insert(
            id,
            Score {
                name,
                score,
                active,
                updated_at_micros,
            },
        );
    }
    Ok(rows)
}

async fn mirror_round_trip(
    name: &str,
    make: impl AsyncFnOnce(&TestEnv) -> Result<Target>,
) -> Result<()> {
    let env = TestEnv::new(name).await?;
    let result = within(TEST_LIMIT, async {
        let target = make(&env).await?;
        mirror_body(&env, &target).await
    })
    .await;
    env.finish(result).await
}

/// How long one destination's round trip may take.
const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

async fn mirror_body(env: &TestEnv, target: &Target) -> Result<()> {
    let kind = target.kind();
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(env, "standalone", port, 1, &[]).await?;
    let source_url = env.create_database("source").await?;
    let source = connect_pg(&source_url, 2).await?;
    sqlx::query("CREATE SCHEMA src").execute(&source).await?;
    create_source_table(&source, "src.scores", ROWS, 11).await?;

    let yaml = format!(
        "connections:\n\
         \x20 - name: warehouse\n    type: postgres\n    config: {{ url: \"{source_url}\" }}\n\
         \x20 - name: app\n    type: {kind}\n    config: {}\n\
         syncs:\n\
         \x20 - name: scores\n\
         \x20   source: {{ connection: warehouse, query: \"SELECT {COLUMNS} FROM src.scores\" }}\n\
         \x20   primary_key: [id]\n\
         \x20   destination: {{ connection: app, {}, mode: mirror, create_table: true }}\n\
         \x20   options: {{ batch_size: 1000 }}\n",
        target.config(),
        target.object()
    );
    std::fs::write(env.path().join("backflow.yaml"), yaml)?;
    run_cli(env, &addr, &["apply", "-f", "backflow.yaml"])
        .await?
        .ensure_ok("apply")?;

    run_cli(env, &addr, &["trigger", "scores", "--wait"])
        .await?
        .ensure_ok(&format!("{kind}: first trigger --wait"))?;
    ensure_last_run_counts(env, &addr, kind, (ROWS as u64, 0, 0)).await?;
    ensure_equal(
        kind,
        &read_pg(&source, "src.scores").await?,
        &target.read().await?,
    )?;

    // A round of changes: 150 updated, 100 deleted, 80 inserted.
    sqlx::query(
        "UPDATE src.scores SET name = name || '-v2', score = coalesce(score, 0) + 1 \
         WHERE id % 20 = 0",
    )
    .execute(&source)
    .await?;
    sqlx::query("DELETE FROM src.scores WHERE id % 30 = 1")
        .execute(&source)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO src.scores ({COLUMNS}) \
         SELECT g, 'new-' || g, g / 4.0, g % 2 = 0, timestamptz '2025-06-01 00:00:00+00' + make_interval(secs => g) \
         FROM generate_series({}, {}) AS g",
        ROWS + 1,
        ROWS + 80
    ))
    .execute(&source)
    .await?;

    run_cli(env, &addr, &["trigger", "scores", "--wait"])
        .await?
        .ensure_ok(&format!("{kind}: second trigger --wait"))?;
    ensure_last_run_counts(env, &addr, kind, (80, 150, 100)).await?;
    ensure_equal(
        kind,
        &read_pg(&source, "src.scores").await?,
        &target.read().await?,
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_postgres", async |env: &TestEnv| {
        let url = env.create_database("app").await?;
        let pool = connect_pg(&url, 1).await?;
        sqlx::query("CREATE SCHEMA dst").execute(&pool).await?;
        Ok(Target::Postgres { url })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockroachdb_statements_mirror_converges_through_the_cli() -> Result<()> {
    // No CockroachDB server runs here: the CockroachDB statement set runs against PostgreSQL.
    mirror_round_trip("dest_cockroachdb", async |env: &TestEnv| {
        let url = env.create_database("app").await?;
        let pool = connect_pg(&url, 1).await?;
        sqlx::query("CREATE SCHEMA dst").execute(&pool).await?;
        Ok(Target::Cockroach { url })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_mysql", async |_env: &TestEnv| {
        use sqlx::Connection as _;
        let admin_url = service_env("BACKFLOW_TEST_MYSQL_URL")?;
        let database = format!("bf_e2e_{}", random_suffix(10));
        let mut admin = sqlx::MySqlConnection::connect(&admin_url)
            .await
            .context("connecting to MariaDB")?;
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await?;
        let mut url = url::Url::parse(&admin_url)?;
        url.set_path(&database);
        Ok(Target::Mysql {
            url: url.to_string(),
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_mongodb", async |_env: &TestEnv| {
        Ok(Target::Mongo {
            url: service_env("BACKFLOW_TEST_MONGODB_URL")?,
            database: format!("bf_e2e_{}", random_suffix(10)),
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_mirror_converges_through_the_cli() -> Result<()> {
    mirror_round_trip("dest_firestore", async |_env: &TestEnv| {
        Ok(Target::Firestore {
            host: service_env("BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST")?,
            project: format!("bf-e2e-{}", random_suffix(10)),
        })
    })
    .await
}
