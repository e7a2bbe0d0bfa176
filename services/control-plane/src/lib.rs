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
pub mod store;

use std::path::PathBuf;

/// The directory of a snapshot store given as a path or a `file://` URL.
pub fn snapshot_dir(store: &str) -> PathBuf {
    PathBuf::from(store.strip_prefix("file://").unwrap_or(store))
}
