//! `backflow connections list|get|test`.

use anyhow::Context as _;
use backflow_proto::v1;
use clap::Subcommand;
use serde_json::{json, Value};

use super::apply::list_all_connections;
use super::client::{resource_name, Client, Collection, RpcResult as _};
use super::output::{self, OutputArgs};
use super::Outcome;

/// `backflow connections …`.
#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List every connection.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one connection (secrets appear as the references they were written as).
    Get {
        /// The connection (`app_db` or `connections/app_db`).
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Run the connector's checks (config, reachability, credentials); exit non-zero on failure.
    Test {
        /// The connection.
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Runs a `connections` verb.
pub async fn run(client: &mut Client, command: ConnectionsCommand) -> anyhow::Result<Outcome> {
    match command {
        ConnectionsCommand::List { output } => {
            let connections = list_all_connections(client).await?;
            output.print(
                || Value::Array(connections.iter().map(output::connection_json).collect()),
                || output::connections_table(&connections),
            );
            Ok(Outcome::Success)
        }
        ConnectionsCommand::Get { name, output } => {
            let name = resource_name(Collection::Connections, &name)?;
            let connection = client
                .connections
                .get_connection(v1::GetConnectionRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("connection {}", output::id(&name)))?
                .connection
                .unwrap_or_default();
            output.print(
                || output::connection_json(&connection),
                || output::connection_details(&connection),
            );
            Ok(Outcome::Success)
        }
        ConnectionsCommand::Test { name, output } => {
            let name = resource_name(Collection::Connections, &name)?;
            let result = client
                .connections
                .test_connection(v1::TestConnectionRequest { name: name.clone() })
                .await
                .rpc()
                .with_context(|| format!("connection {}", output::id(&name)))?;
            output.print(|| test_json(&name, &result), || test_line(&name, &result));
            Ok(if result.ok {
                Outcome::Success
            } else {
                Outcome::Failed
            })
        }
    }
}

/// `connection app_db: ok`, or `connection app_db: failed: auth: password: authentication
/// failed` (the failing check's kind, the field when known, the message).
pub fn test_line(name: &str, result: &v1::TestConnectionResponse) -> String {
    let id = output::id(name);
    if result.ok {
        return format!("connection {id}: ok");
    }
    let mut line = format!("connection {id}: failed");
    for part in [&result.error_kind, &result.field, &result.message] {
        if !part.is_empty() {
            line.push_str(": ");
            line.push_str(part);
        }
    }
    line
}

fn test_json(name: &str, result: &v1::TestConnectionResponse) -> Value {
    let optional = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s.to_owned())
        }
    };
    json!({
        "name": name,
        "ok": result.ok,
        "error_kind": optional(&result.error_kind),
        "field": optional(&result.field),
        "message": optional(&result.message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_results_name_kind_field_and_message() {
        let ok = v1::TestConnectionResponse {
            ok: true,
            ..Default::default()
        };
        assert_eq!(
            test_line("connections/app_db", &ok),
            "connection app_db: ok"
        );
        let failed = v1::TestConnectionResponse {
            ok: false,
            error_kind: "auth".into(),
            field: "password".into(),
            message: "password authentication failed for user app".into(),
        };
        assert_eq!(
            test_line("connections/app_db", &failed),
            "connection app_db: failed: auth: password: password authentication failed for user app"
        );
        let json = test_json("connections/app_db", &failed);
        assert_eq!(json["error_kind"], "auth");
        assert_eq!(json["ok"], false);
        let no_field = v1::TestConnectionResponse {
            field: String::new(),
            ..failed
        };
        assert_eq!(
            test_line("connections/app_db", &no_field),
            "connection app_db: failed: auth: password authentication failed for user app"
        );
    }
}
