//! The destination contract suite against MariaDB.

mod common;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use backflow_connector_contract::{
    unique_name, CredentialCase, Harness, HarnessResult, Rejection, Row,
};
use backflow_connector_core::{CanonicalType, Connector, Destination, WriteTarget};
use backflow_mysql::validate_destination;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor, Row as _};

/// Reads and prepares tables over its own connection; the destination under test connects
/// by itself.
struct MariaDbHarness {
    url: String,
}

impl MariaDbHarness {
    async fn new() -> Self {
        // Fails with a clear message when the server is down.
        drop(common::admin().await);
        Self { url: common::url() }
    }

    async fn conn(&self) -> HarnessResult<MySqlConnection> {
        let mut conn = MySqlConnection::connect(&self.url).await?;
        conn.execute("SET time_zone = '+00:00'").await?;
        Ok(conn)
    }

    fn url_with_password(&self, password: &str) -> String {
        let mut u = url::Url::parse(&self.url).expect("test URL parses");
        u.set_password(Some(password))
            .expect("URL takes a password");
        u.to_string()
    }
}

/// A SELECT expression for `column`: numbers as they are (read with the binary protocol, so
/// floats are exact), bytes as hex, everything else as text.
fn render(column: &str, ty: &CanonicalType) -> String {
    let c = format!("`{column}`");
    match ty {
        CanonicalType::Int16
        | CanonicalType::Int32
        | CanonicalType::Int64
        | CanonicalType::Boolean
        | CanonicalType::Float32
        | CanonicalType::Float64 => c,
        CanonicalType::Binary | CanonicalType::Uuid => format!("HEX({c})"),
        CanonicalType::Decimal { .. }
        | CanonicalType::Text
        | CanonicalType::Date
        | CanonicalType::Time
        | CanonicalType::Timestamp
        | CanonicalType::TimestampTz
        | CanonicalType::Json => format!("CAST({c} AS CHAR)"),
    }
}

fn value(
    row: &sqlx::mysql::MySqlRow,
    i: usize,
    ty: &CanonicalType,
) -> HarnessResult<serde_json::Value> {
    use serde_json::Value;
    Ok(match ty {
        CanonicalType::Int16 | CanonicalType::Int32 | CanonicalType::Int64 => row
            .try_get_unchecked::<Option<i64>, _>(i)?
            .map_or(Value::Null, Value::from),
        CanonicalType::Boolean => row
            .try_get_unchecked::<Option<i64>, _>(i)?
            .map_or(Value::Null, |v| Value::Bool(v != 0)),
        CanonicalType::Float32 => row
            .try_get_unchecked::<Option<f32>, _>(i)?
            .map_or(Value::Null, |v| Value::from(f64::from(v))),
        CanonicalType::Float64 => row
            .try_get_unchecked::<Option<f64>, _>(i)?
            .map_or(Value::Null, Value::from),
        _ => row
            .try_get_unchecked::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::String),
    })
}

#[async_trait::async_trait]
impl Harness for MariaDbHarness {
    fn connector(&self) -> &'static dyn Connector {
        &backflow_mysql::MysqlConnector
    }

    fn destination(&self) -> Arc<dyn Destination> {
        Arc::new(validate_destination(&serde_json::json!({ "url": self.url })).unwrap())
    }

    fn unique_object(&self, prefix: &str) -> String {
        unique_name(&format!("contract_{prefix}"))
    }

    async fn read(
        &self,
        object: &str,
        schema: &SchemaRef,
        _primary_key: &[String],
    ) -> HarnessResult<Vec<Row>> {
        let mut conn = self.conn().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(object)
        .fetch_optional(&mut conn)
        .await?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let mut types = Vec::new();
        let mut exprs = Vec::new();
        for field in schema.fields() {
            let ty = CanonicalType::require(field)?;
            exprs.push(render(field.name(), &ty));
            types.push((field.name().clone(), ty));
        }
        let sql = format!("SELECT {} FROM `{object}`", exprs.join(", "));
        let mut rows = Vec::new();
        for r in sqlx::query(&sql).fetch_all(&mut conn).await? {
            let mut row = Row::new();
            for (i, (name, ty)) in types.iter().enumerate() {
                row.insert(name.clone(), value(&r, i, ty)?);
            }
            rows.push(row);
        }
        Ok(rows)
    }

    async fn prepare_rejection(
        &self,
        object: &str,
        _target: &WriteTarget,
    ) -> HarnessResult<Rejection> {
        let mut conn = self.conn().await?;
        conn.execute(
            format!(
                "ALTER TABLE `{object}` ADD CONSTRAINT no_poison \
                 CHECK (payload IS NULL OR payload <> 'poison')"
            )
            .as_str(),
        )
        .await?;
        Ok(Rejection {
            poison: "poison".into(),
            message_contains: "CONSTRAINT `no_poison` failed".into(),
        })
    }

    fn wrong_credential(&self) -> CredentialCase {
        let secret = "not-the-password-7c1e".to_string();
        let url = self.url_with_password(&secret);
        CredentialCase::Refused {
            destination: Arc::new(
                validate_destination(&serde_json::json!({ "url": url })).unwrap(),
            ),
            secret,
        }
    }

    fn unreachable(&self) -> Arc<dyn Destination> {
        Arc::new(
            validate_destination(&serde_json::json!({
                "url": "mysql://backflow@127.0.0.1:1/backflow",
                "connect_timeout_secs": 5
            }))
            .unwrap(),
        )
    }

    async fn drop_object(&self, object: &str) -> HarnessResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(format!("DROP TABLE IF EXISTS `{object}`").as_str())
            .await?;
        Ok(())
    }
}

backflow_connector_contract::destination_contract_suite!(MariaDbHarness::new().await);
