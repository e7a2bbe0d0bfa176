//! Warehouse sources end to end, through the CLI a user would type: a table in the warehouse,
//! `backflow apply` of a mirror sync into PostgreSQL, `backflow trigger --wait`, then a round of
//! updates, deletes and inserts in the warehouse table, a second `trigger --wait` that must move
//! exactly the changed rows, and PostgreSQL read back must equal the warehouse.
//!
//! Servers: fakesnow (Snowflake's HTTP API over DuckDB) and goccy's BigQuery emulator stand in
//! for the cloud services, which cannot be reached from here; PostgreSQL is the destination.
//! All are started by `scripts/services.sh start`. A missing server fails the test with the
//! variable to set.

mod common;

use anyhow::{ensure, Context as _, Result};
use common::scores::{ensure_equal, read_pg, Rows, Score};
use common::*;

/// Rows in the warehouse table at the first run.
const ROWS: i64 = 2000;
/// Rows per multi-row `INSERT`, small enough for every warehouse's statement-size limit.
const INSERT_CHUNK: usize = 500;

/// The row the warehouse table starts with for key `id`; every 7th score is NULL.
fn initial_row(id: i64) -> Score {
    Score {
        name: format!("name-{id}-ü"),
        score: (id % 7 != 0).then(|| id as f64 / 8.0),
        active: id % 3 == 0,
        updated_at_micros: (1_700_000_000 + id * 61) * 1_000_000,
    }
}

/// A warehouse under test: how to run SQL in it, and how a sync reads from it.
enum Warehouse {
    /// fakesnow: `url` is its HTTP endpoint; each test uses a database of its own.
    Snowflake { url: String, database: String },
    /// The BigQuery emulator: REST and Storage Read endpoints, one dataset per test.
    BigQuery {
        url: String,
        grpc: String,
        project: String,
        dataset: String,
    },
}

impl Warehouse {
    fn kind(&self) -> &'static str {
        match self {
            Warehouse::Snowflake { .. } => "snowflake",
            Warehouse::BigQuery { .. } => "bigquery",
        }
    }

    /// The `config:` of the source connection, as a YAML flow mapping.
    fn config(&self) -> String {
        match self {
            Warehouse::Snowflake { url, database } => {
                let url = url::Url::parse(url).expect("the fakesnow URL parses");
                format!(
                    "{{ account: fakesnow, user: backflow, credential: {{ password: \"${{env:SNOWFLAKE_PASSWORD}}\" }}, \
                       warehouse: compute_wh, database: {database}, schema: public, \
                       protocol: {}, host: \"{}\", port: {} }}",
                    url.scheme(),
                    url.host_str().expect("the fakesnow URL has a host"),
                    url.port_or_known_default().expect("the fakesnow URL has a port"),
                )
            }
            Warehouse::BigQuery {
                url,
                grpc,
                project,
                dataset,
            } => format!(
                "{{ project: {project}, location: US, dataset: {dataset}, \
                   api_endpoint: \"{url}\", storage_endpoint: \"http://{grpc}\" }}"
            ),
        }
    }

    /// The table's name as the source query and the DML below spell it.
    fn table(&self) -> String {
        match self {
            Warehouse::Snowflake { .. } => "scores".into(),
            Warehouse::BigQuery { dataset, .. } => format!("{dataset}.scores"),
        }
    }

    /// The sync's source query. Snowflake folds unquoted names to upper case (`ID`), as users
    /// of it know, so its query names the columns in the case PostgreSQL should get.
    fn query(&self) -> String {
        let table = self.table();
        match self {
            Warehouse::Snowflake { .. } => format!(
                "SELECT id AS \"id\", name AS \"name\", score AS \"score\", \
                 active AS \"active\", updated_at AS \"updated_at\" FROM {table}"
            ),
            Warehouse::BigQuery { .. } => {
                format!("SELECT id, name, score, active, updated_at FROM {table}")
            }
        }
    }

    /// A literal of a timestamp in microseconds in this warehouse's dialect.
    fn timestamp(&self, micros: i64) -> String {
        let ts = chrono::DateTime::from_timestamp_micros(micros)
            .expect("test timestamps are in range")
            .format("%Y-%m-%d %H:%M:%S%.6f");
        match self {
            Warehouse::Snowflake { .. } => format!("'{ts}'::TIMESTAMP_NTZ"),
            Warehouse::BigQuery { .. } => format!("TIMESTAMP '{ts}+00'"),
        }
    }

    fn create_table(&self) -> String {
        let table = self.table();
        match self {
            Warehouse::Snowflake { .. } => format!(
                "CREATE TABLE {table} (id BIGINT, name VARCHAR, score FLOAT, active BOOLEAN, \
                 updated_at TIMESTAMP_NTZ)"
            ),
            Warehouse::BigQuery { .. } => format!(
                "CREATE TABLE {table} (id INT64, name STRING, score FLOAT64, active BOOL, \
                 updated_at TIMESTAMP)"
            ),
        }
    }

    /// Multi-row `INSERT`s of `rows`, in chunks.
    fn inserts(&self, rows: &Rows) -> Vec<String> {
        let table = self.table();
        let rows: Vec<_> = rows.iter().collect();
        rows.chunks(INSERT_CHUNK)
            .map(|chunk| {
                let values: Vec<String> = chunk
                    .iter()
                    .map(|(id, r)| {
                        let score = r.score.map_or("NULL".to_owned(), |s| s.to_string());
                        format!(
                            "({id}, '{}', {score}, {}, {})",
                            r.name,
                            r.active,
                            self.timestamp(r.updated_at_micros)
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO {table} (id, name, score, active, updated_at) VALUES {}",
                    values.join(", ")
                )
            })
            .collect()
    }

    /// Runs one statement, failing with the warehouse's own message.
    async fn execute(&self, http: &reqwest::Client, sql: &str) -> Result<()> {
        match self {
            Warehouse::Snowflake { url, database } => {
                snowflake_execute(http, url, database, sql).await
            }
            Warehouse::BigQuery { url, project, .. } => {
                bigquery_execute(http, url, project, sql).await
            }
        }
    }
}

/// Posts JSON and returns the answer's status and JSON body.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json = serde_json::from_str(&text)
        .with_context(|| format!("POST {url} answered {status} with non-JSON `{text}`"))?;
    Ok((status, json))
}

/// Logs in to fakesnow (in-memory, shared by every session) and runs `sql` in `database`.
async fn snowflake_execute(
    http: &reqwest::Client,
    url: &str,
    database: &str,
    sql: &str,
) -> Result<()> {
    let (_, login) = post_json(
        http,
        &format!("{url}/session/v1/login-request?databaseName={database}&schemaName=public"),
        &[],
        serde_json::json!({ "data": {
            "LOGIN_NAME": "backflow", "PASSWORD": "backflow", "SESSION_PARAMETERS": {}
        }}),
    )
    .await?;
    let token = login["data"]["token"]
        .as_str()
        .with_context(|| format!("fakesnow login answered {login}"))?;
    let (_, answer) = post_json(
        http,
        &format!("{url}/queries/v1/query-request"),
        &[("authorization", format!("Snowflake Token=\"{token}\""))],
        serde_json::json!({ "sqlText": sql, "sequenceId": 1 }),
    )
    .await?;
    ensure!(
        answer["success"].as_bool() == Some(true),
        "fakesnow refused `{}`: {answer}",
        truncate(sql)
    );
    Ok(())
}

/// Runs `sql` as a query job in the emulator and waits for it.
async fn bigquery_execute(
    http: &reqwest::Client,
    url: &str,
    project: &str,
    sql: &str,
) -> Result<()> {
    let (status, answer) = post_json(
        http,
        &format!("{url}/bigquery/v2/projects/{project}/queries"),
        &[],
        serde_json::json!({ "query": sql, "useLegacySql": false, "timeoutMs": 60000 }),
    )
    .await?;
    ensure!(
        status == 200 && answer.get("errors").is_none(),
        "the BigQuery emulator refused `{}` ({status}): {answer}",
        truncate(sql)
    );
    ensure!(
        answer["jobComplete"].as_bool() != Some(false),
        "the BigQuery emulator did not finish `{}` within 60 s",
        truncate(sql)
    );
    Ok(())
}

fn truncate(sql: &str) -> &str {
    &sql[..sql.len().min(120)]
}

async fn mirror_from(name: &str, warehouse: Warehouse) -> Result<()> {
    let env = TestEnv::new(name).await?;
    let result = within(
        std::time::Duration::from_secs(240),
        mirror_body(&env, &warehouse),
    )
    .await;
    env.finish(result).await
}

async fn mirror_body(env: &TestEnv, warehouse: &Warehouse) -> Result<()> {
    let kind = warehouse.kind();
    let http = reqwest::Client::new();
    let mut model: Rows = (1..=ROWS).map(|id| (id, initial_row(id))).collect();
    warehouse.execute(&http, &warehouse.create_table()).await?;
    for insert in warehouse.inserts(&model) {
        warehouse.execute(&http, &insert).await?;
    }

    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let _standalone = start_standalone(
        env,
        "standalone",
        port,
        1,
        &[("SNOWFLAKE_PASSWORD", "backflow")],
    )
    .await?;
    let app_url = env.create_database("app").await?;
    let app = connect_pg(&app_url, 1).await?;
    sqlx::query("CREATE SCHEMA dst").execute(&app).await?;

    let yaml = format!(
        "connections:\n\
         \x20 - name: warehouse\n    type: {kind}\n    config: {}\n\
         \x20 - name: app\n    type: postgres\n    config: {{ url: \"{app_url}\" }}\n\
         syncs:\n\
         \x20 - name: scores\n\
         \x20   source: {{ connection: warehouse, query: '{}' }}\n\
         \x20   primary_key: [id]\n\
         \x20   destination: {{ connection: app, table: dst.scores, mode: mirror, create_table: true }}\n\
         \x20   options: {{ batch_size: 700 }}\n",
        warehouse.config(),
        warehouse.query()
    );
    std::fs::write(env.path().join("backflow.yaml"), yaml)?;
    run_cli(env, &addr, &["apply", "-f", "backflow.yaml"])
        .await?
        .ensure_ok(&format!("{kind}: apply"))?;
    run_cli(env, &addr, &["trigger", "scores", "--wait"])
        .await?
        .ensure_ok(&format!("{kind}: first trigger --wait"))?;
    ensure_last_run_counts(env, &addr, kind, (ROWS as u64, 0, 0)).await?;
    ensure_equal(kind, &model, &read_pg(&app, "dst.scores").await?)?;

    // A round of changes in the warehouse: 100 updated, 67 deleted, 40 inserted.
    let table = warehouse.table();
    let updated: Vec<i64> = model.keys().copied().filter(|id| id % 20 == 0).collect();
    for id in &updated {
        let row = model.get_mut(id).expect("updated keys exist");
        row.name.push_str("-v2");
        row.score = Some(row.score.unwrap_or(0.0) + 1.0);
    }
    warehouse
        .execute(
            &http,
            &format!(
                "UPDATE {table} SET name = CONCAT(name, '-v2'), score = COALESCE(score, 0) + 1 \
                 WHERE MOD(id, 20) = 0"
            ),
        )
        .await?;
    let deleted: Vec<i64> = model.keys().copied().filter(|id| id % 30 == 1).collect();
    model.retain(|id, _| id % 30 != 1);
    warehouse
        .execute(&http, &format!("DELETE FROM {table} WHERE MOD(id, 30) = 1"))
        .await?;
    let inserted: Rows = (ROWS + 1..=ROWS + 40)
        .map(|id| (id, initial_row(id)))
        .collect();
    for insert in warehouse.inserts(&inserted) {
        warehouse.execute(&http, &insert).await?;
    }
    model.extend(inserted.clone());

    run_cli(env, &addr, &["trigger", "scores", "--wait"])
        .await?
        .ensure_ok(&format!("{kind}: second trigger --wait"))?;
    ensure_last_run_counts(
        env,
        &addr,
        kind,
        (
            inserted.len() as u64,
            updated.len() as u64,
            deleted.len() as u64,
        ),
    )
    .await?;
    ensure_equal(kind, &model, &read_pg(&app, "dst.scores").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_to_postgres_mirror_moves_only_changes() -> Result<()> {
    mirror_from(
        "wh_snowflake",
        Warehouse::Snowflake {
            url: service_env("BACKFLOW_TEST_SNOWFLAKE_URL")?,
            database: format!("BF_E2E_{}", random_suffix(10).to_uppercase()),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_to_postgres_mirror_moves_only_changes() -> Result<()> {
    let url = service_env("BACKFLOW_TEST_BIGQUERY_URL")?;
    let project = service_env("BACKFLOW_TEST_BIGQUERY_PROJECT")?;
    let dataset = format!("bf_e2e_{}", random_suffix(10));
    let http = reqwest::Client::new();
    let (status, answer) = post_json(
        &http,
        &format!("{url}/bigquery/v2/projects/{project}/datasets"),
        &[],
        serde_json::json!({ "datasetReference": { "projectId": project, "datasetId": dataset } }),
    )
    .await?;
    ensure!(
        status == 200,
        "creating dataset {dataset} answered {status}: {answer}"
    );
    mirror_from(
        "wh_bigquery",
        Warehouse::BigQuery {
            url,
            grpc: service_env("BACKFLOW_TEST_BIGQUERY_GRPC")?,
            project,
            dataset,
        },
    )
    .await
}
