//! `backflow connectors types`: the connection types the server supports, with their roles,
//! capabilities and config fields, as the server's registry describes them.

use backflow_proto::json::{struct_to_json, value_to_json};
use backflow_proto::v1;
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{Client, RpcResult as _};
use super::output::{self, OutputArgs, Table};
use super::Outcome;

/// `backflow connectors …`.
#[derive(Debug, Subcommand)]
pub enum ConnectorsCommand {
    /// List the connection types the server supports: roles, capabilities and config fields
    /// (`--output json` adds each type's JSON Schema).
    Types {
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Runs a `connectors` verb.
pub async fn run(client: &mut Client, command: ConnectorsCommand) -> anyhow::Result<Outcome> {
    match command {
        ConnectorsCommand::Types { output } => {
            let types = client
                .connections
                .list_connector_types(v1::ListConnectorTypesRequest {})
                .await
                .rpc()?
                .connector_types;
            output.print(
                || Value::Array(types.iter().map(connector_type_json).collect()),
                || types_table(&types),
            );
            Ok(Outcome::Success)
        }
    }
}

fn roles(t: &v1::ConnectorType) -> Vec<&'static str> {
    t.roles()
        .map(|role| match role {
            v1::ConnectorRole::Source => "source",
            v1::ConnectorRole::Destination => "destination",
            v1::ConnectorRole::Unspecified => "unspecified",
        })
        .collect()
}

fn modes(c: &v1::ConnectorCapabilities) -> Vec<&'static str> {
    c.modes().map(output::sync_mode).collect()
}

fn limit_json(limit: Option<&v1::IdentifierLimit>) -> Value {
    limit.map_or(Value::Null, |l| json!({ "max": l.max, "unit": l.unit }))
}

/// One connector type as JSON: the proto's field names, lowercase words for enums.
pub fn connector_type_json(t: &v1::ConnectorType) -> Value {
    let capabilities = t.capabilities.clone().unwrap_or_default();
    json!({
        "type": t.r#type,
        "summary": t.summary,
        "roles": roles(t),
        "capabilities": {
            "modes": modes(&capabilities),
            "schemaless": capabilities.schemaless,
            "max_decimal_precision": capabilities.max_decimal_precision,
            "timestamp_precision_digits": capabilities.timestamp_precision_digits,
            "creates_tables": capabilities.creates_tables,
            "max_object_name": limit_json(capabilities.max_object_name.as_ref()),
            "max_column_name": limit_json(capabilities.max_column_name.as_ref()),
        },
        "config_fields": t.config_fields.iter().map(|f| json!({
            "path": f.path,
            "types": f.types,
            "required": f.required,
            "secret": f.secret,
            "default": f.default_value.as_ref().map_or(Value::Null, value_to_json),
            "allowed_values": f.allowed_values.iter().map(value_to_json).collect::<Vec<_>>(),
            "description": f.description,
        })).collect::<Vec<_>>(),
        "config_schema": t.config_schema.as_ref().map_or(Value::Null, struct_to_json),
    })
}

/// One line per type, then one block per type listing its config fields.
fn types_table(types: &[v1::ConnectorType]) -> String {
    let mut table = Table::new(["TYPE", "ROLES", "MODES", "SUMMARY"]);
    for t in types {
        let capabilities = t.capabilities.clone().unwrap_or_default();
        table.row([
            t.r#type.clone(),
            roles(t).join(","),
            modes(&capabilities).join(","),
            t.summary.clone(),
        ]);
    }
    let mut text = table.render();
    for t in types {
        let mut fields = Table::new(["FIELD", "TYPE", "REQUIRED", "SECRET", "DEFAULT"]);
        for f in &t.config_fields {
            fields.row([
                f.path.clone(),
                f.types.join("|"),
                if f.required { "yes" } else { "" }.to_owned(),
                if f.secret { "yes" } else { "" }.to_owned(),
                f.default_value
                    .as_ref()
                    .map(|d| value_to_json(d).to_string())
                    .unwrap_or_default(),
            ]);
        }
        text.push_str(&format!("\n{} config:\n{}", t.r#type, fields.render()));
    }
    text
}
