//! The sync engine, usable as a library without any gRPC: given a source, a destination, a
//! sync and the previous snapshot, it moves only the changed rows and returns the next
//! snapshot for the caller to commit. [`Engine::plan`] is the dry run of the same diff: it
//! reports what a run would change and touches nothing.

mod classify;
pub mod dry_run;
mod encoding;
mod engine;
pub mod error;
pub mod journal;
mod layout;
pub mod result;
mod run;
pub mod snapshot;
pub mod spec;
pub mod store;

pub use dry_run::{PlanInput, PlanResult};
pub use engine::Engine;
pub use error::EngineError;
pub use journal::{JournalCleanup, JournalStats};
pub use result::{RejectedOperation, RejectedRow, RunCounts, RunResult, StageTimings};
pub use run::RunInput;
pub use snapshot::{Snapshot, SnapshotRef};
pub use spec::{Mapping, SyncMode, SyncOptions, SyncSpec};
pub use store::{LocationError, SnapshotStore};
