//! Parquet, CSV and JSON files as a connection type: the embedded warehouse, a source.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Role, Source, TimestampPrecision,
};
use serde_json::Value;

use crate::config::RawConfig;
use crate::validate_source;

/// The `files` connection type.
pub struct FilesConnector;

impl Connector for FilesConnector {
    fn type_name(&self) -> &'static str {
        "files"
    }

    fn summary(&self) -> &'static str {
        "Parquet, CSV and JSON files, local or in object storage, queried with SQL"
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
