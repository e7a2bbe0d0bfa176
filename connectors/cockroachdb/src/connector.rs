//! CockroachDB as a connection type: a destination.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Destination, IdentifierLimits, Length,
    NameError, Role,
};
use serde_json::Value;

use crate::config::Raw;
use crate::{check_destination_names, object_key, validate_destination};

/// The `cockroachdb` connection type.
pub struct CockroachConnector;

impl Connector for CockroachConnector {
    fn type_name(&self) -> &'static str {
        "cockroachdb"
    }

    fn summary(&self) -> &'static str {
        "CockroachDB: writes a table with batched upserts, retrying serialization conflicts"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Destination]
    }

    fn capabilities(&self) -> Capabilities {
        // Held to PostgreSQL's 63 bytes: see `check_destination_names`.
        let limit = Some(Length::bytes(
            backflow_postgres::MAX_IDENTIFIER_BYTES as u32,
        ));
        Capabilities::sql_table(IdentifierLimits {
            object: limit,
            column: limit,
        })
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<Raw>()
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
