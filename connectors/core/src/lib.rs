//! The contracts every Backflow connector implements.
//!
//! A connector turns raw, user-written config into a typed, checked value in a pure
//! `validate` step (errors name the field), then talks to its system only in async `check`,
//! `read` and `open`. Data crosses this boundary as Arrow `RecordBatch`es in the canonical
//! type set of [`types`], so the engine never knows which system it talks to.

pub mod config;
pub mod connector;
pub mod destination;
pub mod error;
pub mod names;
pub mod secret;
pub mod source;
pub mod support;
pub mod types;

pub use config::{config_fields, schema_of, ConfigField};
pub use connector::{
    validate_config, Capabilities, Connector, IdentifierLimits, Length, LengthUnit, Role,
    TimestampPrecision, ALL_MODES,
};
pub use destination::{
    Destination, DestinationWriter, RowFailure, WriteMode, WriteOutcome, WriteTarget,
};
pub use error::{ConnectorError, ErrorKind};
pub use names::{quoted, NameError, NamePart};
pub use secret::Secret;
pub use source::{BatchStream, Preview, ReadOptions, Source};
pub use types::CanonicalType;
