//! Backflow's worker: the sync engine that reads a source, diffs it against the last synced
//! snapshot and writes only the changes, and the poll loop that leases runs from the control
//! plane over gRPC and executes them with it. The engine itself needs no network service.

pub mod engine;
pub mod runner;
pub mod trace_context;

pub use engine::{
    Engine, EngineError, PlanInput, PlanResult, RunInput, RunResult, SyncMode, SyncSpec,
};
