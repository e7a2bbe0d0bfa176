//! SQLite as a connection type: both roles, over one file.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Destination, IdentifierLimits, NameError,
    Role, Source,
};
use serde_json::Value;

use crate::config::RawConfig;
use crate::{check_destination_names, object_key, validate_destination, validate_source};

/// The `sqlite` connection type: the embedded default of `backflow standalone`.
pub struct SqliteConnector;

impl Connector for SqliteConnector {
    fn type_name(&self) -> &'static str {
        "sqlite"
    }

    fn summary(&self) -> &'static str {
        "SQLite files: reads a query, writes a table (the embedded default)"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source, Role::Destination]
    }

    fn capabilities(&self) -> Capabilities {
        // SQLite has no name length limit of its own.
        Capabilities::sql_table(IdentifierLimits::default())
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<RawConfig>()
    }

    fn source(&self, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
        Ok(Arc::new(validate_source(config)?))
    }

    fn destination(&self, config: &Value) -> Result<Arc<dyn Destination>, ConnectorError> {
        Ok(Arc::new(validate_destination(config)?))
    }

    fn check_destination_names(
        &self,
        _config: &Value,
        object: &str,
        columns: &[&str],
    ) -> Result<(), NameError> {
        check_destination_names(object, columns)
    }

    fn destination_object_key(&self, _config: &Value, object: &str) -> Option<String> {
        object_key(object)
    }
}
