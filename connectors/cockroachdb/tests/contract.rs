//! The destination contract suite for the CockroachDB statement set, run against PostgreSQL
//! (no CockroachDB server can run here).

use std::sync::Arc;

use backflow_connector_contract::postgres::PgHarness;
use backflow_connector_core::Destination;

fn cockroachdb(config: &serde_json::Value) -> Arc<dyn Destination> {
    Arc::new(backflow_cockroachdb::validate_destination(config).expect("valid test config"))
}

backflow_connector_contract::destination_contract_suite!(
    PgHarness::new("cockroachdb", cockroachdb).await
);
