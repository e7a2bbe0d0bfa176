//! Cloud Firestore as a connection type: a destination.

use std::sync::Arc;

use backflow_connector_core::{
    config, Capabilities, Connector, ConnectorError, Destination, IdentifierLimits, Length,
    NameError, Role, TimestampPrecision, ALL_MODES,
};
use serde_json::Value;

use crate::config::FirestoreConfig;
use crate::docid::MAX_ID_BYTES;
use crate::{check_destination_names, validate_destination};

/// The `firestore` connection type.
pub struct FirestoreConnector;

impl Connector for FirestoreConnector {
    fn type_name(&self) -> &'static str {
        "firestore"
    }

    fn summary(&self) -> &'static str {
        "Cloud Firestore: writes documents whose id is the primary key"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Destination]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            modes: ALL_MODES,
            schemaless: true,
            // Decimals are stored as their exact text.
            max_decimal_precision: 38,
            timestamp_precision: TimestampPrecision::Microseconds,
            // Collections exist once a document is written.
            creates_tables: true,
            identifier_limits: IdentifierLimits {
                object: Some(Length::bytes(MAX_ID_BYTES as u32)),
                column: Some(Length::bytes(MAX_ID_BYTES as u32)),
            },
        }
    }

    fn config_schema(&self) -> Value {
        config::schema_of::<FirestoreConfig>()
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
}
