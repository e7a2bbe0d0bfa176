//! The one mapping from DataFusion failures to [`ConnectorError`] kinds.
//!
//! The engine decides whether to retry a run or ask a human from the kind alone, so a SQL typo
//! must be a `query` error, a missing file `not_found`, and a corrupt file `data`, never one
//! flattened `internal` string.

use std::error::Error as StdError;

use backflow_connector_core::{ConnectorError, ErrorKind};
use datafusion::error::DataFusionError;

/// Classifies a DataFusion error, keeping DataFusion's own message (without any backtrace).
pub(crate) fn from_datafusion(e: &DataFusionError) -> ConnectorError {
    ConnectorError::new(kind_of(e), e.strip_backtrace())
}

fn kind_of(e: &DataFusionError) -> ErrorKind {
    // Look through the whole source chain first: an object-store or I/O failure can be wrapped
    // in Arrow, Parquet or External errors by the time it reaches us.
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(os) = err.downcast_ref::<object_store::Error>() {
            return object_store_kind(os);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_kind(io);
        }
        current = err.source();
    }
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(..)
        | DataFusionError::Execution(..) => ErrorKind::Query,
        DataFusionError::Configuration(..) => ErrorKind::Config,
        DataFusionError::ArrowError(..) | DataFusionError::ParquetError(..) => ErrorKind::Data,
        DataFusionError::ObjectStore(os) => object_store_kind(os),
        DataFusionError::IoError(io) => io_kind(io),
        _ => ErrorKind::Internal,
    }
}

fn object_store_kind(e: &object_store::Error) -> ErrorKind {
    match e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. } => ErrorKind::Permission,
        object_store::Error::Unauthenticated { .. } => ErrorKind::Auth,
        object_store::Error::InvalidPath { .. } => ErrorKind::Config,
        _ => ErrorKind::Connectivity,
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Permission,
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => ErrorKind::Data,
        _ => ErrorKind::Connectivity,
    }
}

/// Whether DataFusion refused to infer a schema because a location matched no file, which for
/// a configured table means the path is wrong.
pub(crate) fn is_no_files_found(e: &DataFusionError) -> bool {
    matches!(e.find_root(), DataFusionError::Plan(m) if m.starts_with("No files found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_failures() {
        let e = DataFusionError::Plan("table 'x' not found".into());
        assert_eq!(from_datafusion(&e).kind(), ErrorKind::Query);
        let e = DataFusionError::IoError(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        assert_eq!(from_datafusion(&e).kind(), ErrorKind::NotFound);
        let e = DataFusionError::Context(
            "reading".into(),
            Box::new(DataFusionError::ObjectStore(Box::new(
                object_store::Error::NotFound {
                    path: "a".into(),
                    source: "missing".into(),
                },
            ))),
        );
        assert_eq!(from_datafusion(&e).kind(), ErrorKind::NotFound);
        let e = DataFusionError::IoError(std::io::Error::other("disk"));
        assert!(from_datafusion(&e).is_retryable());
    }
}
