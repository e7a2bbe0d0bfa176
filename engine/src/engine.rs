//! The engine handle: the snapshot store a sync's runs and dry runs read and write, and the
//! connector kinds their spans name. What it does lives beside it: a run ([`Engine::run`]) in
//! the `run` module, a dry run ([`Engine::plan`]) in [`dry_run`](crate::dry_run).

use crate::store::SnapshotStore;

/// Runs syncs against one snapshot store.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) snapshots: SnapshotStore,
    /// OpenTelemetry `db.system` of the source and the destination, for the spans that talk
    /// to them; unset when the caller does not know the connector kinds.
    pub(crate) source_system: Option<String>,
    pub(crate) destination_system: Option<String>,
}

impl Engine {
    /// An engine writing snapshots to `snapshots`.
    pub fn new(snapshots: SnapshotStore) -> Self {
        Self {
            snapshots,
            source_system: None,
            destination_system: None,
        }
    }

    /// Names the source's and the destination's connector kinds (`postgres`, `files`, …), so
    /// the `source.read` and `destination.write` spans carry OpenTelemetry's `db.system`.
    pub fn with_systems(mut self, source_kind: &str, destination_kind: &str) -> Self {
        self.source_system = Some(db_system(source_kind).to_owned());
        self.destination_system = Some(db_system(destination_kind).to_owned());
        self
    }

    /// The snapshot store, for callers that load or prune snapshots.
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }
}

/// OpenTelemetry's `db.system` name for a connector kind; kinds without one keep their name.
fn db_system(kind: &str) -> &str {
    match kind {
        "postgres" => "postgresql",
        "mongodb" | "ferretdb" => "mongodb",
        other => other,
    }
}
