//! The source contract suite against PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backflow_connector_contract::source::{
    server_url, through_proxy, upstream_of, Applies, BadQuery, SeriesSpec, SourceCapabilities,
    SourceHarness, TableSpec, TestTable, DEFAULT_LARGE_RESULT_ROWS,
};
use backflow_connector_contract::{unique_name, HarnessResult};
use backflow_connector_core::{CanonicalType, Source};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

/// Creates tables over its own connection; the source under test connects by itself.
struct PgSourceHarness {
    url: String,
    upstream: SocketAddr,
}

impl PgSourceHarness {
    /// A harness against `BACKFLOW_TEST_POSTGRES_URL`; panics with a clear message when the
    /// variable is missing or the server is down.
    async fn new() -> Self {
        let url = server_url("BACKFLOW_TEST_POSTGRES_URL");
        let upstream = upstream_of(&url, 5432);
        let harness = Self { url, upstream };
        if let Err(e) = harness.conn().await {
            panic!("PostgreSQL is unreachable ({e}); start it with scripts/services.sh start");
        }
        harness
    }

    async fn conn(&self) -> HarnessResult<PgConnection> {
        Ok(PgConnection::connect(&self.url).await?)
    }

    fn source_at(&self, url: &str) -> Arc<dyn Source> {
        Arc::new(
            backflow_postgres::validate_source(&serde_json::json!({ "url": url }))
                .expect("valid test config"),
        )
    }
}

/// The native type the harness gives a canonical column.
fn native(ty: &CanonicalType) -> String {
    match ty {
        CanonicalType::Int16 => "int2".into(),
        CanonicalType::Int32 => "int4".into(),
        CanonicalType::Int64 => "int8".into(),
        CanonicalType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        CanonicalType::Float32 => "float4".into(),
        CanonicalType::Float64 => "float8".into(),
        CanonicalType::Boolean => "bool".into(),
        CanonicalType::Text => "text".into(),
        CanonicalType::Binary => "bytea".into(),
        CanonicalType::Date => "date".into(),
        CanonicalType::Time => "time".into(),
        CanonicalType::Timestamp => "timestamp".into(),
        CanonicalType::TimestampTz => "timestamptz".into(),
        CanonicalType::Json => "jsonb".into(),
        CanonicalType::Uuid => "uuid".into(),
    }
}

/// A SQL literal for a canonical JSON value of a column of `ty`.
fn literal(value: &Value, ty: &CanonicalType) -> String {
    let text = match (value, ty) {
        (Value::Null, _) => return "NULL".into(),
        (v, CanonicalType::Json) => v.to_string(),
        (Value::String(s), CanonicalType::Binary) => format!("\\x{s}"),
        (Value::String(s), _) => s.clone(),
        (v, _) => v.to_string(),
    };
    format!("'{}'::{}", text.replace('\'', "''"), native(ty))
}

#[async_trait::async_trait]
impl SourceHarness for PgSourceHarness {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn connector(&self) -> &'static dyn backflow_connector_core::Connector {
        &backflow_postgres::PostgresConnector
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            large_result_rows: DEFAULT_LARGE_RESULT_ROWS,
            cut_connection: Applies::Yes(self.upstream),
            kill_session: Applies::Yes(()),
            bounded_memory: Applies::Yes(()),
        }
    }

    async fn create_table(&self, spec: &TableSpec) -> HarnessResult<TestTable> {
        let table = format!("public.{}", spec.name);
        let columns: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, native(&c.ty)))
            .collect();
        let mut conn = self.conn().await?;
        conn.execute(format!("CREATE TABLE {table} ({})", columns.join(", ")).as_str())
            .await?;
        for row in &spec.rows {
            let values: Vec<String> = spec
                .columns
                .iter()
                .map(|c| literal(&row[&c.name], &c.ty))
                .collect();
            conn.execute(format!("INSERT INTO {table} VALUES ({})", values.join(", ")).as_str())
                .await?;
        }
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(TestTable {
            source: self.source_at(&self.url),
            query: format!("SELECT {} FROM {table}", names.join(", ")),
            name: spec.name.clone(),
        })
    }

    async fn series(&self, spec: &SeriesSpec) -> HarnessResult<TestTable> {
        Ok(TestTable {
            source: self.source_at(&self.url),
            query: format!(
                "SELECT i::int8 AS id, lpad(i::text, {width}, 'x') AS payload \
                 FROM generate_series(1, {rows}) AS {name}(i)",
                width = spec.payload_width,
                rows = spec.rows,
                name = spec.name
            ),
            name: spec.name.clone(),
        })
    }

    async fn bad_queries(&self) -> HarnessResult<Vec<BadQuery>> {
        let source = self.source_at(&self.url);
        Ok(vec![
            BadQuery {
                source: source.clone(),
                query: format!("SELECT * FROM public.{}", unique_name("missing")),
                code: Some("42P01".into()),
                message_contains: "does not exist".into(),
            },
            BadQuery {
                source,
                query: "SELEC 1".into(),
                code: Some("42601".into()),
                message_contains: "syntax error".into(),
            },
        ])
    }

    fn source_through(&self, proxy: SocketAddr) -> HarnessResult<Arc<dyn Source>> {
        Ok(self.source_at(&through_proxy(&self.url, proxy)?))
    }

    async fn kill_session(&self, table: &TestTable) -> HarnessResult<()> {
        let mut conn = self.conn().await?;
        let pattern = format!("%{}%", table.name);
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE $1 AND pid <> pg_backend_pid()",
        )
        .bind(&pattern)
        .fetch_all(&mut conn)
        .await?;
        if !killed.iter().any(|k| *k) {
            return Err(format!("no session was reading {}", table.name).into());
        }
        for _ in 0..100 {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            )
            .bind(&pattern)
            .fetch_one(&mut conn)
            .await?;
            if left == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the session reading {} did not end", table.name).into())
    }

    async fn drop_table(&self, table: &TestTable) -> HarnessResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(format!("DROP TABLE IF EXISTS public.{}", table.name).as_str())
            .await?;
        Ok(())
    }
}

backflow_connector_contract::source_contract_suite!(PgSourceHarness::new().await);
