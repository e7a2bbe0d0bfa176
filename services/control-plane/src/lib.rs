//! Backflow's control plane: holds connections, syncs and runs in a store (SQLite embedded,
//! PostgreSQL for several replicas), queues and leases runs to pull-based workers, schedules
//! syncs, and serves the `backflow.v1` gRPC API.

pub mod api;
pub mod auth;
pub mod convert;
pub mod error;
pub mod model;
pub mod scheduler;
pub mod server;
pub mod snapshot_gc;
pub mod store;
pub mod telemetry;
pub mod validate;
