//! The source contract suite against fakesnow's HTTP server (not Snowflake's service).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use backflow_connector_contract::source::{
    upstream_of, Applies, BadQuery, SeriesSpec, SourceCapabilities, SourceHarness, TableSpec,
    TestTable, TypeSupport, DEFAULT_LARGE_RESULT_ROWS,
};
use backflow_connector_contract::HarnessResult;
use backflow_connector_core::{CanonicalType, Source};
use backflow_snowflake::SnowflakeSource;
use serde_json::Value;

/// Creates tables through the source's own `execute`; reads through fresh sources.
struct FakesnowHarness {
    url: String,
    upstream: SocketAddr,
}

impl FakesnowHarness {
    fn new() -> Self {
        let url = common::fakesnow_url();
        let upstream = upstream_of(&url, 80);
        Self { url, upstream }
    }

    fn source(&self) -> SnowflakeSource {
        backflow_snowflake::validate_source(&common::config_for(&self.url)).expect("valid config")
    }
}

/// The Snowflake type the harness gives a canonical column.
fn native(ty: &CanonicalType) -> String {
    match ty {
        CanonicalType::Int16 | CanonicalType::Int32 | CanonicalType::Int64 => "NUMBER(38,0)".into(),
        CanonicalType::Decimal { precision, scale } => format!("NUMBER({precision},{scale})"),
        CanonicalType::Float32 | CanonicalType::Float64 => "FLOAT".into(),
        CanonicalType::Boolean => "BOOLEAN".into(),
        CanonicalType::Text | CanonicalType::Uuid => "VARCHAR".into(),
        CanonicalType::Binary => "BINARY".into(),
        CanonicalType::Date => "DATE".into(),
        CanonicalType::Time => "TIME(9)".into(),
        CanonicalType::Timestamp => "TIMESTAMP_NTZ(9)".into(),
        CanonicalType::TimestampTz => "TIMESTAMP_TZ(9)".into(),
        CanonicalType::Json => "VARIANT".into(),
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A SQL expression for a canonical JSON value; text travels hex-encoded, so no quoting or
/// escaping rule of the dialect can alter it.
fn literal(value: &Value, ty: &CanonicalType) -> String {
    let text = |s: &str| format!("HEX_DECODE_STRING('{}')", hex(s));
    match (value, ty) {
        (Value::Null, _) => format!("NULL::{}", native(ty)),
        (v, CanonicalType::Json) => format!("PARSE_JSON({})", text(&v.to_string())),
        (Value::String(s), CanonicalType::Binary) => format!("TO_BINARY('{s}', 'HEX')"),
        (Value::String(s), CanonicalType::Text | CanonicalType::Uuid) => text(s),
        (Value::String(s), CanonicalType::TimestampTz) => {
            let s = s
                .strip_suffix('Z')
                .map_or(s.clone(), |b| format!("{b}+00:00"));
            format!("'{s}'::TIMESTAMP_TZ(9)")
        }
        (Value::String(s), ty) => format!("'{s}'::{}", native(ty)),
        (v, CanonicalType::Float32 | CanonicalType::Float64) => format!("{v}::FLOAT"),
        (v, _) => v.to_string(),
    }
}

#[async_trait::async_trait]
impl SourceHarness for FakesnowHarness {
    fn name(&self) -> &'static str {
        "snowflake (fakesnow)"
    }

    fn connector(&self) -> &'static dyn backflow_connector_core::Connector {
        &backflow_snowflake::SnowflakeConnector
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            large_result_rows: DEFAULT_LARGE_RESULT_ROWS,
            cut_connection: Applies::Yes(self.upstream),
            kill_session: Applies::No {
                reason: "fakesnow answers with the whole result inline before the first batch \
                         is yielded, and has no session to kill mid-stream",
            },
            bounded_memory: Applies::Yes(()),
        }
    }

    fn type_support(&self, ty: &CanonicalType) -> TypeSupport {
        match ty {
            // Every Snowflake integer is NUMBER(38,0), read as Int64.
            CanonicalType::Int16 | CanonicalType::Int32 => TypeSupport::As(CanonicalType::Int64),
            // Snowflake's only float is a double.
            CanonicalType::Float32 => TypeSupport::As(CanonicalType::Float64),
            CanonicalType::Uuid => TypeSupport::As(CanonicalType::Text),
            _ => TypeSupport::Exact,
        }
    }

    async fn create_table(&self, spec: &TableSpec) -> HarnessResult<TestTable> {
        let source = self.source();
        let table = spec.name.to_uppercase();
        let columns: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, native(&c.ty)))
            .collect();
        source
            .execute(&format!("CREATE TABLE {table} ({})", columns.join(", ")))
            .await?;
        for row in &spec.rows {
            let values: Vec<String> = spec
                .columns
                .iter()
                .map(|c| literal(&row[&c.name], &c.ty))
                .collect();
            source
                .execute(&format!("INSERT INTO {table} SELECT {}", values.join(", ")))
                .await?;
        }
        let select: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("{} AS \"{}\"", c.name, c.name))
            .collect();
        Ok(TestTable {
            source: Arc::new(source),
            query: format!("SELECT {} FROM {table}", select.join(", ")),
            name: table,
        })
    }

    async fn series(&self, spec: &SeriesSpec) -> HarnessResult<TestTable> {
        Ok(TestTable {
            source: Arc::new(self.source()),
            query: format!(
                "SELECT seq4() + 1 AS \"id\", REPEAT('x', {}) AS \"payload\", '{}' AS \"series\" \
                 FROM TABLE(GENERATOR(ROWCOUNT => {}))",
                spec.payload_width, spec.name, spec.rows
            ),
            name: spec.name.to_uppercase(),
        })
    }

    async fn bad_queries(&self) -> HarnessResult<Vec<BadQuery>> {
        let source: Arc<dyn Source> = Arc::new(self.source());
        Ok(vec![
            BadQuery {
                source: source.clone(),
                query: "SELEC 1".into(),
                code: Some("001003".into()),
                message_contains: "Unexpected token".into(),
            },
            BadQuery {
                source,
                query: "SELECT * FROM NO_SUCH_TABLE_FOR_THE_CONTRACT".into(),
                code: Some("002003".into()),
                message_contains: "NO_SUCH_TABLE_FOR_THE_CONTRACT".into(),
            },
        ])
    }

    fn source_through(&self, proxy: SocketAddr) -> HarnessResult<Arc<dyn Source>> {
        Ok(Arc::new(backflow_snowflake::validate_source(
            &common::config_for(&format!("http://{proxy}")),
        )?))
    }

    async fn drop_table(&self, table: &TestTable) -> HarnessResult<()> {
        self.source()
            .execute(&format!("DROP TABLE IF EXISTS {}", table.name))
            .await?;
        Ok(())
    }
}

backflow_connector_contract::source_contract_suite!(FakesnowHarness::new());
