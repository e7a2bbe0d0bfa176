//! Snowflake as a connection type: a source.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Role, Source, TimestampPrecision,
};
use serde_json::Value;

use crate::config::SnowflakeConfig;
use crate::validate_source;

/// The `snowflake` connection type.
pub struct SnowflakeConnector;

impl Connector for SnowflakeConnector {
    fn type_name(&self) -> &'static str {
        "snowflake"
    }

    fn summary(&self) -> &'static str {
        "Snowflake: reads a query's result chunks in parallel"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::source_only(38, TimestampPrecision::Microseconds)
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<SnowflakeConfig>()
    }

    fn source(&self, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
        Ok(Arc::new(validate_source(config)?))
    }
}
