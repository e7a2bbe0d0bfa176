//! The one trait a connector crate implements: what a connection type is, what it can do, what
//! its config looks like, and how to build its [`Source`] or [`Destination`].
//!
//! The registry holds one `&dyn Connector` per type, and every caller (the worker, the control
//! plane, the CLI) goes through it, so adding a connector means writing its crate and one line
//! in the registry, and a client can ask a running server which types exist and what their
//! configs take before it defines a sync.

use std::sync::Arc;

use serde_json::Value;

use crate::destination::{Destination, WriteMode};
use crate::error::ConnectorError;
use crate::names::NameError;
use crate::source::Source;

/// What a connection of a type can be used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read from by a sync's query.
    Source,
    /// Written to by a sync.
    Destination,
}

impl Role {
    /// The word users read in messages and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }
}

/// How precisely a connector keeps timestamps, so a client (and the contract suites) know
/// which digits survive a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPrecision {
    /// Microseconds, Arrow's canonical unit (PostgreSQL, MySQL `DATETIME(6)`, Firestore).
    Microseconds,
    /// Milliseconds (BSON dates): sub-millisecond digits are truncated (floor).
    Milliseconds,
}

impl TimestampPrecision {
    /// Fractional-second digits kept: 6 or 3.
    pub fn digits(self) -> u32 {
        match self {
            TimestampPrecision::Microseconds => 6,
            TimestampPrecision::Milliseconds => 3,
        }
    }
}

/// What an identifier limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// UTF-8 bytes (PostgreSQL's 63, MongoDB's namespace).
    Bytes,
    /// Characters (MySQL's 64).
    Characters,
}

/// The longest name a destination holds exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    /// The limit, inclusive.
    pub max: u32,
    /// What `max` counts.
    pub unit: LengthUnit,
}

impl Length {
    /// A limit in UTF-8 bytes.
    pub const fn bytes(max: u32) -> Self {
        Self {
            max,
            unit: LengthUnit::Bytes,
        }
    }

    /// A limit in characters.
    pub const fn characters(max: u32) -> Self {
        Self {
            max,
            unit: LengthUnit::Characters,
        }
    }
}

/// The longest object and column names a destination holds exactly; `None` where it has no
/// limit of its own. The full rules (reserved names, forbidden characters) are applied by the
/// connector's [`Connector::check_destination_names`]; these limits let a client warn early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentifierLimits {
    /// Table or collection names (MongoDB: the `database.collection` namespace).
    pub object: Option<Length>,
    /// Column (or document field) names.
    pub column: Option<Length>,
}

/// What a connection type can do, as far as a sync definition depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The write modes the destination implements; every destination also deletes, so
    /// `mirror` (upsert plus deletes) is available wherever `Upsert` is. Empty for a type
    /// that is only a source.
    pub modes: &'static [WriteMode],
    /// Objects have no fixed columns (MongoDB, Firestore): any column may be written, and a
    /// value's type is not checked against an existing one.
    pub schemaless: bool,
    /// The widest decimal kept exactly, in digits (38 for SQL `NUMERIC`/`DECIMAL` and for
    /// decimals kept as text, 34 for BSON Decimal128).
    pub max_decimal_precision: u8,
    /// How precisely timestamps are kept.
    pub timestamp_precision: TimestampPrecision,
    /// Whether a sync's `create_table: true` makes a missing object (schemaless stores that
    /// create collections on first write count as able).
    pub creates_tables: bool,
    /// The longest names the destination holds exactly.
    pub identifier_limits: IdentifierLimits,
}

/// Every write mode: what each destination implements today.
pub const ALL_MODES: &[WriteMode] = &[WriteMode::Upsert, WriteMode::Insert, WriteMode::Update];

impl Capabilities {
    /// A type that is only read from: no modes, no tables, no name limits; what it reads keeps
    /// decimals up to `max_decimal_precision` digits and timestamps to `timestamp_precision`.
    pub const fn source_only(
        max_decimal_precision: u8,
        timestamp_precision: TimestampPrecision,
    ) -> Self {
        Self {
            modes: &[],
            schemaless: false,
            max_decimal_precision,
            timestamp_precision,
            creates_tables: false,
            identifier_limits: IdentifierLimits {
                object: None,
                column: None,
            },
        }
    }

    /// A relational destination with a fixed schema, exact 38-digit decimals and microsecond
    /// timestamps, that creates tables, with these name limits.
    pub const fn sql_table(identifier_limits: IdentifierLimits) -> Self {
        Self {
            modes: ALL_MODES,
            schemaless: false,
            max_decimal_precision: 38,
            timestamp_precision: TimestampPrecision::Microseconds,
            creates_tables: true,
            identifier_limits,
        }
    }
}

/// A connection type: implemented once by each connector crate, on a unit struct the registry
/// lists. Every method is pure (no I/O); the network is touched only by the [`Source`] and
/// [`Destination`] it builds.
pub trait Connector: Send + Sync {
    /// The connection's `type` as users write it (`postgres`).
    fn type_name(&self) -> &'static str;

    /// One line for listings: the system and what the connector does with it.
    fn summary(&self) -> &'static str;

    /// What this type can be used as, in a stable order (source first).
    fn roles(&self) -> &'static [Role];

    /// What this type can do.
    fn capabilities(&self) -> Capabilities;

    /// The config as a JSON Schema (draft 2020-12, subschemas inlined), derived from the same
    /// struct `validate` parses into, so the two cannot disagree. Secret fields carry
    /// `"writeOnly": true`: clients should render them as references (`${env:NAME}`).
    fn config_schema(&self) -> Value;

    /// A source reading through `config` (pure: parses and checks, connects nothing). The
    /// default refuses, for types that are not sources.
    fn source(&self, config: &Value) -> Result<Arc<dyn Source>, ConnectorError> {
        let _ = config;
        Err(not_in_role(self.type_name(), Role::Source))
    }

    /// A destination writing through `config` (pure). The default refuses, for types that
    /// are not destinations.
    fn destination(&self, config: &Value) -> Result<Arc<dyn Destination>, ConnectorError> {
        let _ = config;
        Err(not_in_role(self.type_name(), Role::Destination))
    }

    /// Checks a sync's object and column names against what the destination holds exactly,
    /// so a name it would truncate or refuse fails when the sync is defined. `config` is the
    /// connection's raw config (MongoDB's namespace limit counts its database).
    fn check_destination_names(
        &self,
        config: &Value,
        object: &str,
        columns: &[&str],
    ) -> Result<(), NameError> {
        let _ = (config, object, columns);
        Ok(())
    }

    /// The one spelling of `object` on this connection, so two syncs writing the same table
    /// are recognised (`t` and `public.t`); `None` when `object` does not parse. The default
    /// compares names exactly, right for stores without default schemas or case folding.
    fn destination_object_key(&self, config: &Value, object: &str) -> Option<String> {
        let _ = config;
        Some(object.to_owned())
    }
}

/// The error of asking a type for a role it does not play.
fn not_in_role(kind: &str, role: Role) -> ConnectorError {
    ConnectorError::config(
        "type",
        format!("`{kind}` cannot be used as a {}", role.as_str()),
    )
}

/// Validates `config` for every role of `connector` (pure): what the control plane runs
/// before it stores a connection, so an unknown or mistyped field is refused with its path
/// before any network call.
pub fn validate_config(connector: &dyn Connector, config: &Value) -> Result<(), ConnectorError> {
    for role in connector.roles() {
        match role {
            Role::Source => connector.source(config).map(drop)?,
            Role::Destination => connector.destination(config).map(drop)?,
        }
    }
    Ok(())
}
