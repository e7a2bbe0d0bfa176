//! Google BigQuery as a connection type: a source.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Role, Source, TimestampPrecision,
};
use serde_json::Value;

use crate::config::BigQueryConfig;
use crate::validate_source;

/// The `bigquery` connection type.
pub struct BigQueryConnector;

impl Connector for BigQueryConnector {
    fn type_name(&self) -> &'static str {
        "bigquery"
    }

    fn summary(&self) -> &'static str {
        "Google BigQuery: runs a query job and reads its result through the Storage Read API"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::source_only(38, TimestampPrecision::Microseconds)
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<BigQueryConfig>()
    }

    fn source(&self, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
        Ok(Arc::new(validate_source(config)?))
    }
}
