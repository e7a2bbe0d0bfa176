//! What every Backflow service and the CLI share: the declarative definition file, logs and
//! traces ([`telemetry`]), the metrics registry ([`metrics`]) and the admin HTTP server
//! ([`admin`]).

pub mod admin;
pub mod definitions;
pub mod metrics;
pub mod telemetry;
