//! Connector types as a running server describes them (`ListConnectorTypes`, `backflow
//! connectors types`), compared with the registry the binary was built from; and connection
//! configs checked against those descriptions: an unknown or mistyped field is refused by
//! CreateConnection and by `backflow apply` with the field named, for every connector type,
//! before anything is stored. No database is needed: configs are checked without I/O.

mod common;

use anyhow::{ensure, Context as _, Result};
use backflow_connector_core::{config_fields, Role};
use backflow_proto::json::{struct_from_json, struct_to_json};
use backflow_proto::v1;
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_type_is_listed_with_its_roles_and_schema() -> Result<()> {
    let env = TestEnv::new("connector_types").await?;
    let result = within(TEST_LIMIT, listed_body(&env)).await;
    env.finish(result).await
}

async fn listed_body(env: &TestEnv) -> Result<()> {
    let (_cp, addr) = sqlite_control_plane(env, &[]).await?;
    let api = Api::new(&addr, None)?;
    let listed = api
        .connections
        .clone()
        .list_connector_types(v1::ListConnectorTypesRequest {})
        .await?
        .into_inner()
        .connector_types;
    let registered = backflow_connectors::connectors();
    let names = |types: &[v1::ConnectorType]| -> Vec<String> {
        types.iter().map(|t| t.r#type.clone()).collect()
    };
    let expected: Vec<String> = registered.iter().map(|c| c.type_name().into()).collect();
    ensure!(names(&listed) == expected, "listed {:?}", names(&listed));
    for (t, c) in listed.iter().zip(registered) {
        let kind = c.type_name();
        let roles: Vec<v1::ConnectorRole> = t.roles().collect();
        let want: Vec<v1::ConnectorRole> = c
            .roles()
            .iter()
            .map(|r| match r {
                Role::Source => v1::ConnectorRole::Source,
                Role::Destination => v1::ConnectorRole::Destination,
            })
            .collect();
        ensure!(roles == want, "{kind}: roles {roles:?}, registry {want:?}");
        let schema = struct_to_json(t.config_schema.as_ref().context("no config schema")?);
        ensure!(schema == c.config_schema(), "{kind}: the schema differs");
        let paths: Vec<&str> = t.config_fields.iter().map(|f| f.path.as_str()).collect();
        let fields = config_fields(&c.config_schema());
        let want: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
        ensure!(paths == want, "{kind}: fields {paths:?}, registry {want:?}");
        let capabilities = t.capabilities.clone().unwrap_or_default();
        let writes = c.roles().contains(&Role::Destination);
        let modes: Vec<v1::SyncMode> = capabilities.modes().collect();
        ensure!(
            modes.contains(&v1::SyncMode::Mirror) == writes,
            "{kind}: modes {modes:?}"
        );
        ensure!(
            capabilities.max_decimal_precision == u32::from(c.capabilities().max_decimal_precision),
            "{kind}: decimal precision"
        );
    }
    // Secret fields are flagged: the API says which fields to render as references.
    let postgres = listed.iter().find(|t| t.r#type == "postgres");
    let password = postgres
        .and_then(|t| t.config_fields.iter().find(|f| f.path == "password"))
        .context("postgres has a password field")?;
    ensure!(password.secret, "postgres.password is not flagged secret");

    // The CLI prints the same description.
    let out = run_cli(env, &addr, &["connectors", "types", "--output", "json"]).await?;
    ensure!(out.code == 0, "connectors types failed: {out:?}");
    let printed: Value = serde_json::from_str(&out.stdout).context("connectors types JSON")?;
    let printed = printed.as_array().context("a JSON array")?;
    ensure!(
        printed.len() == listed.len(),
        "the CLI printed {} types",
        printed.len()
    );
    for (p, t) in printed.iter().zip(&listed) {
        ensure!(p["type"] == t.r#type.as_str(), "CLI type {}", p["type"]);
        let schema = struct_to_json(t.config_schema.as_ref().context("schema")?);
        ensure!(
            p["config_schema"] == schema,
            "{}: the CLI's schema differs",
            t.r#type
        );
    }
    let table = run_cli(env, &addr, &["connectors", "types"]).await?;
    for t in &listed {
        ensure!(
            table.stdout.contains(&format!("{} config:", t.r#type)),
            "the table lacks {}: {}",
            t.r#type,
            table.stdout
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_mistyped_fields_are_refused_for_every_type() -> Result<()> {
    let env = TestEnv::new("connector_config_fields").await?;
    let result = within(TEST_LIMIT, refused_body(&env)).await;
    env.finish(result).await
}

/// A value of a JSON type the field does not take.
fn mistyped(field: &v1::ConfigField) -> Value {
    if field.types.iter().any(|t| t == "string") {
        json!(12345)
    } else {
        json!("not-a-number-or-flag")
    }
}

async fn refused_body(env: &TestEnv) -> Result<()> {
    let (_cp, addr) = sqlite_control_plane(env, &[]).await?;
    let api = Api::new(&addr, None)?;
    let types = api
        .connections
        .clone()
        .list_connector_types(v1::ListConnectorTypesRequest {})
        .await?
        .into_inner()
        .connector_types;
    for t in &types {
        let kind = t.r#type.as_str();
        // The first top-level field the schema lists, given a value of the wrong type.
        let field = t
            .config_fields
            .iter()
            .find(|f| !f.path.contains('.'))
            .with_context(|| format!("{kind} has no top-level field"))?;
        let cases = [
            ("colour".to_owned(), json!({ "colour": "blue" })),
            (
                field.path.clone(),
                json!({ field.path.clone(): mistyped(field) }),
            ),
        ];
        for (name, config) in cases {
            let expected = format!("connection.config.{name}");
            let status = api
                .connections
                .clone()
                .create_connection(v1::CreateConnectionRequest {
                    connection_id: format!("bad_{kind}"),
                    connection: Some(v1::Connection {
                        r#type: kind.into(),
                        config: Some(struct_from_json(&config)),
                        ..Default::default()
                    }),
                    validate_only: false,
                })
                .await
                .err()
                .with_context(|| format!("{kind}: CreateConnection accepted {config}"))?;
            let fields = violated_fields(&status).with_context(|| format!("{kind} {config}"))?;
            ensure!(
                fields == [expected.clone()],
                "{kind} {config}: names {fields:?}"
            );

            let file = format!(
                "connections:\n  - name: bad_{kind}\n    type: {kind}\n    config: {config}\n"
            );
            let path = env.path().join(format!("bad_{kind}.yaml"));
            std::fs::write(&path, file)?;
            let out = run_cli(env, &addr, &["apply", "-f", &path.to_string_lossy()]).await?;
            ensure!(out.code != 0, "{kind}: apply accepted {config}: {out:?}");
            ensure!(
                out.stderr.contains(&format!("connection bad_{kind}"))
                    && out.stderr.contains(&expected),
                "{kind}: apply should name the connection and {expected}: {:?}",
                out.stderr
            );
        }
    }
    let stored = api
        .connections
        .clone()
        .list_connections(v1::ListConnectionsRequest::default())
        .await?
        .into_inner()
        .connections;
    ensure!(
        stored.is_empty(),
        "refused connections were stored: {stored:?}"
    );
    Ok(())
}
