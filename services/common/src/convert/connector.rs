//! A connection type's description on the wire: what `ListConnectorTypes` answers, built
//! from the connector's own [`Connector`] implementation so the API cannot describe a type
//! differently from how it validates.

use backflow_connector_core::{
    config_fields, ConfigField, Connector, Length, LengthUnit, Role, WriteMode,
};
use backflow_proto::json::{struct_from_json, value_from_json};
use backflow_proto::v1;

/// The wire description of `connector`.
pub fn connector_type_to_proto(connector: &dyn Connector) -> v1::ConnectorType {
    let capabilities = connector.capabilities();
    let schema = connector.config_schema();
    v1::ConnectorType {
        r#type: connector.type_name().to_owned(),
        summary: connector.summary().to_owned(),
        roles: connector
            .roles()
            .iter()
            .map(|role| role_to_proto(*role) as i32)
            .collect(),
        capabilities: Some(v1::ConnectorCapabilities {
            modes: capabilities
                .modes
                .iter()
                .flat_map(|mode| sync_modes_of(*mode))
                .map(|mode| mode as i32)
                .collect(),
            schemaless: capabilities.schemaless,
            max_decimal_precision: u32::from(capabilities.max_decimal_precision),
            timestamp_precision_digits: capabilities.timestamp_precision.digits(),
            creates_tables: capabilities.creates_tables,
            max_object_name: capabilities.identifier_limits.object.map(limit_to_proto),
            max_column_name: capabilities.identifier_limits.column.map(limit_to_proto),
        }),
        config_fields: config_fields(&schema).iter().map(field_to_proto).collect(),
        config_schema: Some(struct_from_json(&schema)),
    }
}

/// The wire role.
pub fn role_to_proto(role: Role) -> v1::ConnectorRole {
    match role {
        Role::Source => v1::ConnectorRole::Source,
        Role::Destination => v1::ConnectorRole::Destination,
    }
}

/// The sync modes a destination write mode makes available: `mirror` is upsert plus deletes,
/// which every destination implements.
fn sync_modes_of(mode: WriteMode) -> Vec<v1::SyncMode> {
    match mode {
        WriteMode::Upsert => vec![v1::SyncMode::Upsert, v1::SyncMode::Mirror],
        WriteMode::Insert => vec![v1::SyncMode::Insert],
        WriteMode::Update => vec![v1::SyncMode::Update],
    }
}

fn limit_to_proto(limit: Length) -> v1::IdentifierLimit {
    v1::IdentifierLimit {
        max: limit.max,
        unit: match limit.unit {
            LengthUnit::Bytes => "bytes",
            LengthUnit::Characters => "characters",
        }
        .to_owned(),
    }
}

fn field_to_proto(field: &ConfigField) -> v1::ConfigField {
    v1::ConfigField {
        path: field.path.clone(),
        types: field.types.clone(),
        required: field.required,
        secret: field.secret,
        default_value: field.default.as_ref().map(value_from_json),
        allowed_values: field.allowed.iter().map(value_from_json).collect(),
        description: field.description.clone(),
    }
}
