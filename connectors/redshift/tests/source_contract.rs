//! The source contract suite for the Redshift source, run against PostgreSQL.
//!
//! Tables use Redshift's type names. PostgreSQL has no `SUPER` or `VARBYTE`, so the harness
//! creates domains of those names over `jsonb` and `bytea` (test fixtures only: the source
//! itself issues only statements Redshift supports and maps types by name).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backflow_connector_contract::source::{
    server_url, through_proxy, upstream_of, Applies, BadQuery, SeriesSpec, SourceCapabilities,
    SourceHarness, TableSpec, TestTable, TypeSupport, DEFAULT_LARGE_RESULT_ROWS,
};
use backflow_connector_contract::{unique_name, HarnessResult};
use backflow_connector_core::{CanonicalType, Source};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

/// Creates tables over its own connection; the source under test connects by itself.
struct RedshiftHarness {
    url: String,
    upstream: SocketAddr,
}

impl RedshiftHarness {
    /// A harness against `BACKFLOW_TEST_POSTGRES_URL`; panics with a clear message when the
    /// variable is missing or the server is down.
    async fn new() -> Self {
        let url = server_url("BACKFLOW_TEST_POSTGRES_URL");
        let upstream = upstream_of(&url, 5432);
        let harness = Self { url, upstream };
        let mut conn = harness.conn().await.unwrap_or_else(|e| {
            panic!("PostgreSQL is unreachable ({e}); start it with scripts/services.sh start")
        });
        for (name, base) in [("super", "jsonb"), ("varbyte", "bytea")] {
            // Parallel tests race to create them; "already exists" (42710) is success.
            let created = conn
                .execute(format!("CREATE DOMAIN public.{name} AS {base}").as_str())
                .await;
            if let Err(e) = created {
                let exists = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42710" || c == "23505");
                assert!(exists, "create the {name} domain: {e}");
            }
        }
        harness
    }

    async fn conn(&self) -> HarnessResult<PgConnection> {
        Ok(PgConnection::connect(&self.url).await?)
    }

    fn source_at(&self, url: &str) -> Arc<dyn Source> {
        Arc::new(
            backflow_redshift::validate_source(&serde_json::json!({ "url": url }))
                .expect("valid test config"),
        )
    }
}

/// The Redshift type the harness gives a canonical column.
fn native(ty: &CanonicalType) -> String {
    match ty {
        CanonicalType::Int16 => "SMALLINT".into(),
        CanonicalType::Int32 => "INTEGER".into(),
        CanonicalType::Int64 => "BIGINT".into(),
        CanonicalType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        CanonicalType::Float32 => "REAL".into(),
        CanonicalType::Float64 => "DOUBLE PRECISION".into(),
        CanonicalType::Boolean => "BOOLEAN".into(),
        CanonicalType::Text => "VARCHAR(65535)".into(),
        CanonicalType::Binary => "VARBYTE".into(),
        CanonicalType::Date => "DATE".into(),
        CanonicalType::Time => "TIME".into(),
        CanonicalType::Timestamp => "TIMESTAMP".into(),
        CanonicalType::TimestampTz => "TIMESTAMPTZ".into(),
        CanonicalType::Json => "SUPER".into(),
        // Redshift has no UUID type: UUIDs live in CHAR(36).
        CanonicalType::Uuid => "CHAR(36)".into(),
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
    format!("'{}'", text.replace('\'', "''"))
}

#[async_trait::async_trait]
impl SourceHarness for RedshiftHarness {
    fn name(&self) -> &'static str {
        "redshift (on postgres)"
    }

    fn connector(&self) -> &'static dyn backflow_connector_core::Connector {
        &backflow_redshift::RedshiftConnector
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            large_result_rows: DEFAULT_LARGE_RESULT_ROWS,
            cut_connection: Applies::Yes(self.upstream),
            kill_session: Applies::Yes(()),
            bounded_memory: Applies::Yes(()),
        }
    }

    fn type_support(&self, ty: &CanonicalType) -> TypeSupport {
        match ty {
            CanonicalType::Uuid => TypeSupport::As(CanonicalType::Text),
            _ => TypeSupport::Exact,
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
            query: format!("SELECT {} FROM {table};", names.join(", ")),
            name: spec.name.clone(),
        })
    }

    async fn series(&self, spec: &SeriesSpec) -> HarnessResult<TestTable> {
        // A one-row table joined in names the read: its lock tells kill_session which
        // session to end (the session's current statement is a FETCH naming only the cursor).
        let mut conn = self.conn().await?;
        conn.execute(format!("CREATE TABLE public.{} (one INTEGER)", spec.name).as_str())
            .await?;
        conn.execute(format!("INSERT INTO public.{} VALUES (1)", spec.name).as_str())
            .await?;
        Ok(TestTable {
            source: self.source_at(&self.url),
            query: format!(
                "SELECT i::BIGINT AS id, LPAD(i::VARCHAR, {width}, 'x') AS payload \
                 FROM generate_series(1, {rows}) AS g(i) CROSS JOIN public.{name}",
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
        let holders = "SELECT DISTINCT l.pid FROM pg_locks l \
                       JOIN pg_class c ON c.oid = l.relation \
                       WHERE c.relname = $1 AND l.pid <> pg_backend_pid()";
        let killed: Vec<bool> = sqlx::query_scalar(&format!(
            "SELECT pg_terminate_backend(pid) FROM ({holders}) AS h"
        ))
        .bind(&table.name)
        .fetch_all(&mut conn)
        .await?;
        if !killed.iter().any(|k| *k) {
            return Err(format!("no session was reading {}", table.name).into());
        }
        for _ in 0..100 {
            let left: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({holders}) AS h"))
                .bind(&table.name)
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

backflow_connector_contract::source_contract_suite!(RedshiftHarness::new().await);
