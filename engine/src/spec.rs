//! What the engine needs to know about a sync, independent of how it was defined (YAML, gRPC).

use serde::{Deserialize, Serialize};

/// How the destination follows the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Insert new keys, update changed ones.
    Upsert,
    /// Insert new keys only.
    Insert,
    /// Update existing keys only, never create.
    Update,
    /// Upsert, and delete the keys (written by Backflow) that left the query result.
    Mirror,
}

/// A rename from a query column to a destination column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Column of the query result.
    pub from: String,
    /// Column of the destination object.
    pub to: String,
}

/// A sync as the engine runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncSpec {
    /// The sync's name, for spans and snapshot paths.
    pub name: String,
    /// The query run on the source.
    pub query: String,
    /// Primary-key columns, as named in the query result.
    pub primary_key: Vec<String>,
    /// Table or collection on the destination.
    pub object: String,
    /// The destination connection's name. Write journals are scoped to it and `object`, so
    /// a sync pointed elsewhere never replays an old attempt's writes on the new target.
    #[serde(default)]
    pub destination_connection: String,
    /// How rows are applied.
    pub mode: SyncMode,
    /// Create the destination object when missing.
    #[serde(default)]
    pub create_table: bool,
    /// Renames; unmapped columns keep their names.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Safety and tuning knobs.
    #[serde(default)]
    pub options: SyncOptions,
}

/// Knobs with safe defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncOptions {
    /// Accept a source that returns zero rows while the snapshot has rows.
    pub allow_empty_source: bool,
    /// Largest fraction of synced rows one mirror run may delete (0.0–1.0).
    pub max_delete_fraction: f64,
    /// Rejected rows kept per run; the count is always exact.
    pub max_rejected_rows: usize,
    /// Rows per batch read from the source and written to the destination.
    pub batch_size: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            allow_empty_source: false,
            max_delete_fraction: 0.5,
            max_rejected_rows: 10_000,
            batch_size: 8192,
        }
    }
}

impl SyncSpec {
    /// The destination name of a query column.
    pub fn destination_column<'a>(&'a self, source_column: &'a str) -> &'a str {
        self.mappings
            .iter()
            .find(|m| m.from == source_column)
            .map_or(source_column, |m| m.to.as_str())
    }
}
