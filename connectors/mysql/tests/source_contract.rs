//! The source contract suite against MariaDB.

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
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};

/// Creates tables over its own connection; the source under test connects by itself.
struct MariaDbHarness {
    url: String,
    upstream: SocketAddr,
}

impl MariaDbHarness {
    /// A harness against `BACKFLOW_TEST_MYSQL_URL`; panics with a clear message when the
    /// variable is missing or the server is down.
    async fn new() -> Self {
        let url = server_url("BACKFLOW_TEST_MYSQL_URL");
        let upstream = upstream_of(&url, 3306);
        let harness = Self { url, upstream };
        if let Err(e) = harness.conn().await {
            panic!("MariaDB is unreachable ({e}); start it with scripts/services.sh start");
        }
        harness
    }

    async fn conn(&self) -> HarnessResult<MySqlConnection> {
        let mut conn = MySqlConnection::connect(&self.url).await?;
        conn.execute("SET time_zone = '+00:00'").await?;
        Ok(conn)
    }

    fn source_at(&self, url: &str) -> Arc<dyn Source> {
        Arc::new(
            backflow_mysql::validate_source(&serde_json::json!({ "url": url }))
                .expect("valid test config"),
        )
    }
}

/// The native type the harness gives a canonical column.
fn native(ty: &CanonicalType) -> String {
    match ty {
        CanonicalType::Int16 => "SMALLINT".into(),
        CanonicalType::Int32 => "INT".into(),
        CanonicalType::Int64 => "BIGINT".into(),
        CanonicalType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        CanonicalType::Float32 => "FLOAT".into(),
        CanonicalType::Float64 => "DOUBLE".into(),
        CanonicalType::Boolean => "BOOLEAN".into(),
        CanonicalType::Text => "LONGTEXT".into(),
        CanonicalType::Binary => "LONGBLOB".into(),
        CanonicalType::Date => "DATE".into(),
        CanonicalType::Time => "TIME(6)".into(),
        CanonicalType::Timestamp => "DATETIME(6)".into(),
        CanonicalType::TimestampTz => "TIMESTAMP(6) NULL".into(),
        CanonicalType::Json => "JSON".into(),
        CanonicalType::Uuid => "UUID".into(),
    }
}

/// A SQL literal for a canonical JSON value of a column of `ty`.
fn literal(value: &Value, ty: &CanonicalType) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    match (value, ty) {
        (Value::Null, _) => "NULL".into(),
        (v, CanonicalType::Json) => quote(&v.to_string()),
        (Value::String(s), CanonicalType::Binary) => format!("X'{s}'"),
        // Unquoted, so the server reads an exact decimal rather than converting a string.
        (Value::String(s), CanonicalType::Decimal { .. }) => s.clone(),
        (Value::String(s), _) => quote(s),
        (v, _) => v.to_string(),
    }
}

#[async_trait::async_trait]
impl SourceHarness for MariaDbHarness {
    fn name(&self) -> &'static str {
        "mysql (mariadb)"
    }

    fn connector(&self) -> &'static dyn backflow_connector_core::Connector {
        &backflow_mysql::MysqlConnector
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
            // MariaDB's JSON is LONGTEXT with a json_valid check, which a query result does not
            // carry: it arrives as text holding the JSON.
            CanonicalType::Json => TypeSupport::As(CanonicalType::Text),
            CanonicalType::TimestampTz => TypeSupport::Unsupported {
                reason: "MariaDB's only zoned type, TIMESTAMP, holds 1970-01-01 00:00:01 to \
                         2038-01-19 UTC, not the suite's 1900-2100 instants",
            },
            _ => TypeSupport::Exact,
        }
    }

    async fn create_table(&self, spec: &TableSpec) -> HarnessResult<TestTable> {
        let columns: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("`{}` {}", c.name, native(&c.ty)))
            .collect();
        let mut conn = self.conn().await?;
        conn.execute(
            format!(
                "CREATE TABLE `{}` ({}) DEFAULT CHARSET = utf8mb4",
                spec.name,
                columns.join(", ")
            )
            .as_str(),
        )
        .await?;
        for row in &spec.rows {
            let values: Vec<String> = spec
                .columns
                .iter()
                .map(|c| literal(&row[&c.name], &c.ty))
                .collect();
            conn.execute(
                format!("INSERT INTO `{}` VALUES ({})", spec.name, values.join(", ")).as_str(),
            )
            .await?;
        }
        let names: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect();
        Ok(TestTable {
            source: self.source_at(&self.url),
            query: format!("SELECT {} FROM `{}`", names.join(", "), spec.name),
            name: spec.name.clone(),
        })
    }

    async fn series(&self, spec: &SeriesSpec) -> HarnessResult<TestTable> {
        Ok(TestTable {
            source: self.source_at(&self.url),
            query: format!(
                "SELECT CAST(seq AS SIGNED) AS id, LPAD(seq, {width}, 'x') AS payload \
                 FROM seq_1_to_{rows} AS {name}",
                width = spec.payload_width,
                rows = spec.rows,
                name = spec.name
            ),
            name: spec.name.clone(),
        })
    }

    async fn bad_queries(&self) -> HarnessResult<Vec<BadQuery>> {
        let source = self.source_at(&self.url);
        let missing = unique_name("missing");
        Ok(vec![
            BadQuery {
                source: source.clone(),
                query: format!("SELECT * FROM `{missing}`"),
                code: Some("1146/42S02".into()),
                message_contains: format!("{missing}' doesn't exist"),
            },
            BadQuery {
                source,
                query: "SELEC 1".into(),
                code: Some("1064/42000".into()),
                message_contains: "You have an error in your SQL syntax".into(),
            },
        ])
    }

    fn source_through(&self, proxy: SocketAddr) -> HarnessResult<Arc<dyn Source>> {
        Ok(self.source_at(&through_proxy(&self.url, proxy)?))
    }

    async fn kill_session(&self, table: &TestTable) -> HarnessResult<()> {
        let mut conn = self.conn().await?;
        let pattern = format!("%{}%", table.name);
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
        )
        .bind(&pattern)
        .fetch_all(&mut conn)
        .await?;
        if ids.is_empty() {
            return Err(format!("no session was reading {}", table.name).into());
        }
        for id in &ids {
            conn.execute(format!("KILL CONNECTION {id}").as_str())
                .await?;
        }
        for _ in 0..100 {
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
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
        conn.execute(format!("DROP TABLE IF EXISTS `{}`", table.name).as_str())
            .await?;
        Ok(())
    }
}

backflow_connector_contract::source_contract_suite!(MariaDbHarness::new().await);
