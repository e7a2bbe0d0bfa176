//! What every Backflow service and the CLI share: the declarative definition file, logs and
//! traces ([`telemetry`]), the W3C trace context carried between them ([`trace_context`]),
//! the metrics registry and metric names ([`metrics`]), the admin HTTP server ([`admin`]) and
//! the wire ↔ engine conversions both ends of the gRPC API need ([`convert`]), and the TLS
//! settings of connections to the control plane ([`client_tls`]).
//! It is the bottom layer of the services: it depends on no service crate.

pub mod admin;
pub mod client_tls;
pub mod convert;
pub mod definitions;
pub mod metrics;
pub mod telemetry;
pub mod trace_context;
