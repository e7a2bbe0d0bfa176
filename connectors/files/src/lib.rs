//! The `files` connector: Backflow's embedded warehouse, answering SQL over Parquet, CSV and
//! JSON files with Apache DataFusion.
//!
//! It lets a user try Backflow (and test syncs) with nothing but files on disk, and serves data
//! lakes that are plain files. Config:
//!
//! ```yaml
//! type: files
//! config:
//!   base_dir: ./data                 # optional; relative paths resolve against it
//!   tables:
//!     scores: scores/*.parquet       # a file, a directory, a glob or a file:// URL
//!     people: { path: people.txt, format: csv, has_header: true, delimiter: ";" }
//! ```
//!
//! The format comes from the extension (`.parquet`, `.csv`, `.json`/`.ndjson`/`.jsonl` for
//! newline-delimited JSON) unless `format` is set. A directory is read as all files of the
//! format's default extension inside it (`.parquet`, `.csv`, `.json`); a glob reads exactly
//! what it matches. Cloud URLs (`s3://`, `gs://`, `az://`, `abfss://`) need the `cloud` cargo
//! feature, off by default; credentials then come from the clouds' standard environment
//! variables.
//!
//! Types are DataFusion's: Parquet strings arrive as `Utf8View`, which the engine canonicalises
//! like any other source type.

#[cfg(feature = "cloud")]
mod cloud;
mod config;
mod connector;
mod error;
mod source;

use backflow_connector_core::ConnectorError;

pub use config::{FileFormat, Location, TableSpec};
pub use connector::FilesConnector;
pub use source::FilesSource;

/// Validates a raw `files` connection config without any I/O, so a definition can be checked
/// where the files are not; errors name the offending field (for example
/// `tables.scores.format`).
pub fn validate_source(raw: &serde_json::Value) -> Result<FilesSource, ConnectorError> {
    config::parse(raw).map(FilesSource::new)
}
