//! The destination contract suite against PostgreSQL.

use std::sync::Arc;

use backflow_connector_contract::postgres::PgHarness;
use backflow_connector_core::Destination;

fn postgres(config: &serde_json::Value) -> Arc<dyn Destination> {
    Arc::new(backflow_postgres::validate_destination(config).expect("valid test config"))
}

backflow_connector_contract::destination_contract_suite!(
    PgHarness::new("postgres", postgres).await
);
