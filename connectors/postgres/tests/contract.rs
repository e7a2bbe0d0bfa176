//! The destination contract suite against PostgreSQL.

#[path = "support/contract_harness.rs"]
mod contract_harness;

use std::sync::Arc;

use backflow_connector_core::Destination;
use contract_harness::PgHarness;

fn postgres(config: &serde_json::Value) -> Arc<dyn Destination> {
    Arc::new(backflow_postgres::validate_destination(config).expect("valid test config"))
}

backflow_connector_contract::destination_contract_suite!(
    PgHarness::new("postgres", postgres).await
);
