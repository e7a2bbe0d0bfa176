//! MongoDB (and servers speaking its protocol) as a connection type: a destination.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Destination, IdentifierLimits, Length,
    NameError, Role, TimestampPrecision, ALL_MODES,
};
use serde_json::Value;

use crate::config::MongoConfig;
use crate::{check_destination_names, database_of, validate_destination, MAX_NAMESPACE_BYTES};

/// The `mongodb` connection type.
pub struct MongoConnector;

impl Connector for MongoConnector {
    fn type_name(&self) -> &'static str {
        "mongodb"
    }

    fn summary(&self) -> &'static str {
        "MongoDB and compatible servers: writes documents keyed by the primary key"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Destination]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            modes: ALL_MODES,
            schemaless: true,
            // BSON Decimal128, the default `decimals`; `decimals: string` keeps 38.
            max_decimal_precision: 34,
            // BSON dates hold milliseconds.
            timestamp_precision: TimestampPrecision::Milliseconds,
            creates_tables: true,
            identifier_limits: IdentifierLimits {
                // The namespace: `database.collection`.
                object: Some(Length::bytes(MAX_NAMESPACE_BYTES as u32)),
                column: None,
            },
        }
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<MongoConfig>()
    }

    fn destination(&self, config: &Value) -> Result<Arc<dyn Destination>, ConnectorError> {
        Ok(Arc::new(validate_destination(config)?))
    }

    fn check_destination_names(
        &self,
        config: &Value,
        object: &str,
        columns: &[&str],
    ) -> Result<(), NameError> {
        // The namespace limit counts the database the connection writes into.
        check_destination_names(database_of(config).as_deref(), object, columns)
    }
}
