//! The contract-suite harness for destinations that write to PostgreSQL: the PostgreSQL
//! destination itself, and the CockroachDB destination, whose statements run against
//! PostgreSQL where no CockroachDB server is available. Behind the `postgres` feature, so
//! only the test crates that need a PostgreSQL driver build one here.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use backflow_connector_core::{CanonicalType, Connector, Destination, WriteTarget};
use sqlx::{Connection, Executor, PgConnection};

use crate::source::server_url;
use crate::{unique_name, CredentialCase, Harness, HarnessResult, Rejection, Row};

/// Reads and prepares tables over its own connection; the destination under test connects
/// by itself.
pub struct PgHarness {
    connector: &'static dyn Connector,
    url: String,
}

impl PgHarness {
    /// A harness for `connector`'s destination, against `BACKFLOW_TEST_POSTGRES_URL`;
    /// panics with a clear message when the variable is missing or the server is down.
    pub async fn new(connector: &'static dyn Connector) -> Self {
        let url = server_url("BACKFLOW_TEST_POSTGRES_URL");
        let harness = Self { connector, url };
        if let Err(e) = harness.conn().await {
            panic!(
                "PostgreSQL at {} is unreachable ({e}); start it with scripts/services.sh start",
                backflow_connector_core::secret::redact_url(&harness.url)
            );
        }
        harness
    }

    async fn conn(&self) -> HarnessResult<PgConnection> {
        let mut conn = PgConnection::connect(&self.url).await?;
        conn.execute("SET TIME ZONE 'UTC'").await?;
        Ok(conn)
    }

    fn url_with_password(&self, password: &str) -> String {
        let mut u = url::Url::parse(&self.url).expect("test URL parses");
        u.set_password(Some(password))
            .expect("URL takes a password");
        u.to_string()
    }
}

/// A SELECT expression rendering `column` in its canonical value form.
fn render(column: &str, ty: &CanonicalType) -> String {
    let c = format!("\"{column}\"");
    match ty {
        CanonicalType::Int16
        | CanonicalType::Int32
        | CanonicalType::Int64
        | CanonicalType::Boolean
        | CanonicalType::Text => c,
        CanonicalType::Float32 | CanonicalType::Float64 => format!("{c}::float8"),
        CanonicalType::Binary => format!("encode({c}, 'hex')"),
        CanonicalType::Decimal { .. }
        | CanonicalType::Date
        | CanonicalType::Time
        | CanonicalType::Timestamp
        | CanonicalType::TimestampTz
        | CanonicalType::Json
        | CanonicalType::Uuid => format!("{c}::text"),
    }
}

#[async_trait::async_trait]
impl Harness for PgHarness {
    fn connector(&self) -> &'static dyn Connector {
        self.connector
    }

    fn destination(&self) -> Arc<dyn Destination> {
        self.connector
            .destination(&serde_json::json!({ "url": self.url }))
            .expect("valid test config")
    }

    fn unique_object(&self, prefix: &str) -> String {
        format!("public.{}", unique_name(&format!("contract_{prefix}")))
    }

    async fn read(
        &self,
        object: &str,
        schema: &SchemaRef,
        _primary_key: &[String],
    ) -> HarnessResult<Vec<Row>> {
        let mut conn = self.conn().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(object)
            .fetch_one(&mut conn)
            .await?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let mut pairs = Vec::new();
        for field in schema.fields() {
            let ty = CanonicalType::require(field)?;
            pairs.push(format!("'{}', {}", field.name(), render(field.name(), &ty)));
        }
        let sql = format!(
            "SELECT json_build_object({})::text FROM {object}",
            pairs.join(", ")
        );
        let texts: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&mut conn).await?;
        let rows = texts
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<Vec<Row>, _>>()?;
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
                "ALTER TABLE {object} ADD CONSTRAINT no_poison \
                 CHECK (payload IS DISTINCT FROM 'poison')"
            )
            .as_str(),
        )
        .await?;
        Ok(Rejection {
            poison: "poison".into(),
            message_contains: "violates check constraint \"no_poison\"".into(),
        })
    }

    fn wrong_credential(&self) -> CredentialCase {
        let secret = "not-the-password-7c1e".to_string();
        let url = self.url_with_password(&secret);
        CredentialCase::Refused {
            destination: self
                .connector
                .destination(&serde_json::json!({ "url": url }))
                .expect("valid test config"),
            secret,
        }
    }

    fn unreachable(&self) -> Arc<dyn Destination> {
        self.connector
            .destination(&serde_json::json!({
                "url": "postgres://backflow@127.0.0.1:1/backflow",
                "connect_timeout_secs": 5
            }))
            .expect("valid test config")
    }

    async fn drop_object(&self, object: &str) -> HarnessResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(format!("DROP TABLE IF EXISTS {object}").as_str())
            .await?;
        Ok(())
    }
}
