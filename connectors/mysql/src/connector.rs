//! MySQL and MariaDB as a connection type: both roles, over one config.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Destination, IdentifierLimits, Length,
    NameError, Role, Source,
};
use serde_json::Value;

use crate::config::MysqlConfig;
use crate::{ident, object_key, validate_destination, validate_source, MAX_IDENTIFIER_CHARS};

/// The `mysql` connection type.
pub struct MysqlConnector;

impl Connector for MysqlConnector {
    fn type_name(&self) -> &'static str {
        "mysql"
    }

    fn summary(&self) -> &'static str {
        "MySQL and MariaDB: reads a query, writes a table with multi-row upserts"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source, Role::Destination]
    }

    fn capabilities(&self) -> Capabilities {
        let limit = Some(Length::characters(MAX_IDENTIFIER_CHARS as u32));
        Capabilities::sql_table(IdentifierLimits {
            object: limit,
            column: limit,
        })
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<MysqlConfig>()
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

    fn destination_object_key(&self, config: &Value, object: &str) -> Option<String> {
        object_key(config, object)
    }
}
