//! The Firestore destination: `check` and `open` over a validated config.

use async_trait::async_trait;
use backflow_connector_core::{ConnectorError, Destination, DestinationWriter, WriteTarget};

use crate::client::Client;
use crate::config::FirestoreConfig;
use crate::writer::{FirestoreWriter, Plan};

/// A validated Firestore destination; it connects only in `check` and `open`.
#[derive(Debug, Clone)]
pub struct FirestoreDestination {
    config: FirestoreConfig,
}

impl FirestoreDestination {
    pub(crate) fn new(config: FirestoreConfig) -> Self {
        Self { config }
    }

    /// Connects and proves the credentials and database work with one read in the collection.
    async fn connect(&self, plan: &Plan) -> Result<Client, ConnectorError> {
        let client = Client::connect(&self.config).await?;
        let probe = format!(
            "{}/{}/backflow-check",
            client.documents_root(),
            plan.collection
        );
        client.existing(&[probe]).await?;
        Ok(client)
    }
}

#[async_trait]
impl Destination for FirestoreDestination {
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        let plan = Plan::new(target)?;
        self.connect(&plan).await?;
        tracing::info!(
            project = %self.config.project,
            database = %self.config.database,
            collection = %plan.collection,
            "destination checked"
        );
        Ok(())
    }

    async fn open(
        &self,
        target: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError> {
        // Collections exist as soon as they hold a document: there is nothing to create.
        let plan = Plan::new(target)?;
        let client = self.connect(&plan).await?;
        Ok(Box::new(FirestoreWriter::new(client, plan)))
    }
}
