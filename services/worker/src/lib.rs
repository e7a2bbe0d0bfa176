//! Backflow's worker: the poll loop that leases runs from the control plane over gRPC and
//! executes them with the sync engine (`backflow-engine`), which needs no network service.

pub mod runner;
