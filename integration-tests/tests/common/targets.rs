//! The application databases the end-to-end suites write to: how a connection to each is
//! configured, how a sync names its object there, and how the object is read back with that
//! database's own client, so a suite can compare it with the source.

use anyhow::{Context as _, Result};
use sqlx::Row as _;

use super::scores::{read_pg, Rows, Score};
use super::{connect_pg, random_suffix, service_env, TestEnv};

/// A destination under test: its connection YAML, the object a sync writes, and how to read
/// that object back.
pub enum Target {
    Postgres { url: String },
    Cockroach { url: String },
    Mysql { url: String },
    Mongo { url: String, database: String },
    Firestore { host: String, project: String },
}

impl Target {
    /// A PostgreSQL database of the test, with the schema `dst`.
    pub async fn postgres(env: &TestEnv) -> Result<Target> {
        Ok(Target::Postgres {
            url: dst_database(env).await?,
        })
    }

    /// The CockroachDB statement set; no CockroachDB server runs here, so it runs against a
    /// PostgreSQL database of the test.
    pub async fn cockroach(env: &TestEnv) -> Result<Target> {
        Ok(Target::Cockroach {
            url: dst_database(env).await?,
        })
    }

    /// A fresh database on the MariaDB server of `scripts/services.sh`.
    pub async fn mysql() -> Result<Target> {
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
    }

    /// A fresh database on the MongoDB-compatible server (FerretDB).
    pub fn mongo() -> Result<Target> {
        Ok(Target::Mongo {
            url: service_env("BACKFLOW_TEST_MONGODB_URL")?,
            database: format!("bf_e2e_{}", random_suffix(10)),
        })
    }

    /// A fresh project on the Firestore emulator.
    pub fn firestore() -> Result<Target> {
        Ok(Target::Firestore {
            host: service_env("BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST")?,
            project: format!("bf-e2e-{}", random_suffix(10)),
        })
    }

    /// The connector type.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Postgres { .. } => "postgres",
            Target::Cockroach { .. } => "cockroachdb",
            Target::Mysql { .. } => "mysql",
            Target::Mongo { .. } => "mongodb",
            Target::Firestore { .. } => "firestore",
        }
    }

    /// The `config:` of the destination connection, as JSON (for the API).
    pub fn config_json(&self) -> serde_json::Value {
        match self {
            Target::Postgres { url } | Target::Cockroach { url } | Target::Mysql { url } => {
                serde_json::json!({ "url": url })
            }
            Target::Mongo { url, database } => {
                serde_json::json!({ "url": url, "database": database })
            }
            Target::Firestore { host, project } => {
                serde_json::json!({ "project": project, "emulator_host": host })
            }
        }
    }

    /// The object a sync writes: `dst.scores`, or `scores` where there are no schemas.
    pub fn object_name(&self) -> &'static str {
        match self {
            Target::Postgres { .. } | Target::Cockroach { .. } => "dst.scores",
            _ => "scores",
        }
    }

    /// The `config:` of the destination connection, as YAML flow mapping.
    pub fn config(&self) -> String {
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
    pub fn object(&self) -> &'static str {
        match self {
            Target::Postgres { .. } | Target::Cockroach { .. } => "table: dst.scores",
            Target::Mysql { .. } => "table: scores",
            Target::Mongo { .. } | Target::Firestore { .. } => "collection: scores",
        }
    }

    /// The object's rows, read with the database's own client.
    pub async fn read(&self) -> Result<Rows> {
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

/// A PostgreSQL database of the test with the schema `dst`.
async fn dst_database(env: &TestEnv) -> Result<String> {
    let url = env.create_database("app").await?;
    let pool = connect_pg(&url, 1).await?;
    sqlx::query("CREATE SCHEMA dst").execute(&pool).await?;
    Ok(url)
}
