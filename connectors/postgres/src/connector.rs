//! PostgreSQL as a connection type: both roles, over one config.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Destination, IdentifierLimits, Length,
    NameError, Role, Source,
};
use serde_json::Value;

use crate::config::PostgresConfig;
use crate::{ident, validate_destination, validate_source, MAX_IDENTIFIER_BYTES};

/// The `postgres` connection type.
pub struct PostgresConnector;

impl Connector for PostgresConnector {
    fn type_name(&self) -> &'static str {
        "postgres"
    }

    fn summary(&self) -> &'static str {
        "PostgreSQL: reads a query and writes a table, both through binary COPY"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source, Role::Destination]
    }

    fn capabilities(&self) -> Capabilities {
        let limit = Some(Length::bytes(MAX_IDENTIFIER_BYTES as u32));
        Capabilities::sql_table(IdentifierLimits {
            object: limit,
            column: limit,
        })
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<PostgresConfig>()
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
        ident::check_destination_names(object, columns)
    }

    fn destination_object_key(&self, _config: &Value, object: &str) -> Option<String> {
        ident::object_key(object)
    }
}
