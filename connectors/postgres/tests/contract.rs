//! The destination contract suite against PostgreSQL.

use backflow_connector_contract::postgres::PgHarness;

backflow_connector_contract::destination_contract_suite!(
    PgHarness::new(&backflow_postgres::PostgresConnector).await
);
