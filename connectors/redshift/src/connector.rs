//! Amazon Redshift as a connection type: a source.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Role, Source, TimestampPrecision,
};
use serde_json::Value;

use crate::config::RawConfig;
use crate::validate_source;

/// The `redshift` connection type.
pub struct RedshiftConnector;

impl Connector for RedshiftConnector {
    fn type_name(&self) -> &'static str {
        "redshift"
    }

    fn summary(&self) -> &'static str {
        "Amazon Redshift: reads a query through a server-side cursor"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::source_only(38, TimestampPrecision::Microseconds)
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<RawConfig>()
    }

    fn source(&self, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
        Ok(Arc::new(validate_source(config)?))
    }
}
