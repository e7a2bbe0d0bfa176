//! Backflow's worker: the sync engine that reads a source, diffs it against the last synced
//! snapshot and writes only the changes. The gRPC poll loop that leases runs from the control
//! plane will live beside it; the engine itself needs no network service.

pub mod engine;

pub use engine::{Engine, EngineError, RunInput, RunResult, SyncMode, SyncSpec};
