//! The BigQuery source: run the query as a job, then read its result table.

use std::sync::Arc;

use async_trait::async_trait;
use backflow_connector_core::{BatchStream, ConnectorError, ReadOptions, Source};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::auth::Credentials;
use crate::config::BigQueryConfig;
use crate::job;
use crate::pages;
use crate::rest::Rest;
use crate::schema::ResultSchema;
use crate::storage::Storage;

/// A validated BigQuery source. Constructing one does no I/O; the credentials are resolved
/// at the first `check` or `read` and the access token is reused until it expires.
#[derive(Debug)]
pub struct BigQuerySource {
    config: BigQueryConfig,
    clients: OnceCell<Clients>,
}

#[derive(Debug, Clone)]
struct Clients {
    credentials: Credentials,
    rest: Arc<Rest>,
}

impl BigQuerySource {
    pub(crate) fn new(config: BigQueryConfig) -> Self {
        Self {
            config,
            clients: OnceCell::new(),
        }
    }

    async fn clients(&self) -> Result<&Clients, ConnectorError> {
        self.clients
            .get_or_try_init(|| async {
                let credentials = Credentials::load(&self.config)?;
                let rest = Arc::new(Rest::new(&self.config, credentials.clone())?);
                Ok(Clients { credentials, rest })
            })
            .await
    }

    async fn read_inner(
        &self,
        query: &str,
        options: ReadOptions,
    ) -> Result<BatchStream, ConnectorError> {
        let query = backflow_connector_core::support::normalize_query(query)?;
        let clients = self.clients().await?;
        let done = job::run(
            &clients.rest,
            query,
            self.config.location(),
            self.config.dataset(),
        )
        .await?;
        let Some(table) = done.destination else {
            return pages::read(clients.rest.clone(), done.job, options.batch_size).await;
        };
        let storage =
            Storage::connect(&self.config.storage_endpoint(), clients.credentials.clone()).await?;
        let session = storage
            .create_session(self.config.project(), &table, orders_rows(query))
            .await?;
        let Some(session) = session else {
            return pages::read(clients.rest.clone(), done.job, options.batch_size).await;
        };
        let info = clients.rest.get_table(&table).await?;
        let schema = Arc::new(ResultSchema::new(info.schema)?);
        let expected = info.num_rows.as_deref().and_then(|n| n.parse::<u64>().ok());
        Ok(storage.read(
            session,
            schema,
            expected,
            self.config.max_read_streams(),
            options.batch_size,
        ))
    }
}

#[async_trait]
impl Source for BigQuerySource {
    async fn check(&self) -> Result<(), ConnectorError> {
        let clients = self.clients().await?;
        job::dry_run(
            &clients.rest,
            "SELECT 1",
            self.config.location(),
            self.config.dataset(),
        )
        .await?;
        Storage::connect(&self.config.storage_endpoint(), clients.credentials.clone()).await?;
        Ok(())
    }

    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError> {
        let span = tracing::info_span!("source.read", connector = "bigquery");
        self.read_inner(query, options).instrument(span).await
    }
}

/// Whether the query orders its result, so the read uses a single stream to keep the order
/// (the heuristic Google's Python client uses).
fn orders_rows(query: &str) -> bool {
    let upper = query.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    words.windows(2).any(|w| w == ["ORDER", "BY"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_ordered_queries() {
        assert!(orders_rows("select a from t order  by a"));
        assert!(!orders_rows("select order_by from t"));
    }
}
