//! The destination contract suite for the CockroachDB statement set, run against PostgreSQL
//! (no CockroachDB server can run here).

use backflow_connector_contract::postgres::PgHarness;

backflow_connector_contract::destination_contract_suite!(
    PgHarness::new(&backflow_cockroachdb::CockroachConnector).await
);
