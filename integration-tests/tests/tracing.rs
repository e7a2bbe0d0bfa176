//! One run, one trace, in a real Jaeger: the CLI's `trigger --wait`, the control plane that
//! queues the run and the worker that runs it export to Jaeger's OTLP receiver, and the trace
//! read back from Jaeger's query API holds all three with the right parent links.
//!
//! Needs `scripts/services.sh start` (PostgreSQL and Jaeger) and its env.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use common::*;
use serde_json::Value;

const TEST_LIMIT: Duration = Duration::from_secs(180);

/// One span as Jaeger returns it.
#[derive(Debug, Clone)]
struct JaegerSpan {
    id: String,
    parent: Option<String>,
    name: String,
    service: String,
    tags: HashMap<String, Value>,
}

fn spans_of(trace: &Value) -> Result<Vec<JaegerSpan>> {
    let processes = trace["processes"].as_object().context("no processes")?;
    let mut spans = Vec::new();
    for span in trace["spans"].as_array().context("no spans")? {
        let process = span["processID"].as_str().unwrap_or_default();
        let parent = span["references"].as_array().and_then(|refs| {
            refs.iter()
                .find(|r| r["refType"] == "CHILD_OF")
                .and_then(|r| r["spanID"].as_str())
                .map(str::to_owned)
        });
        let tags = span["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| Some((t["key"].as_str()?.to_owned(), t["value"].clone())))
                    .collect()
            })
            .unwrap_or_default();
        spans.push(JaegerSpan {
            id: span["spanID"].as_str().unwrap_or_default().to_owned(),
            parent,
            name: span["operationName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            service: processes
                .get(process)
                .and_then(|p| p["serviceName"].as_str())
                .unwrap_or_default()
                .to_owned(),
            tags,
        });
    }
    Ok(spans)
}

fn find<'a>(spans: &'a [JaegerSpan], service: &str, name: &str) -> Result<&'a JaegerSpan> {
    spans
        .iter()
        .find(|s| s.service == service && s.name == name)
        .with_context(|| {
            let seen: Vec<String> = spans
                .iter()
                .map(|s| format!("{}:{}", s.service, s.name))
                .collect();
            format!("no span `{name}` of `{service}` in the trace; spans: {seen:?}")
        })
}

/// A number attribute, which Jaeger may hold as a number or as its decimal text.
fn number(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// Connectors open spans of their own, some with the engine's stage names: look for the one
/// under `parent`.
fn ensure_has_child(spans: &[JaegerSpan], parent: &JaegerSpan, name: &str) -> Result<()> {
    ensure!(
        spans
            .iter()
            .any(|s| s.name == name && s.parent.as_deref() == Some(parent.id.as_str())),
        "no `{name}` span under `{}`",
        parent.name
    );
    Ok(())
}

fn ensure_child(child: &JaegerSpan, parent: &JaegerSpan) -> Result<()> {
    ensure!(
        child.parent.as_deref() == Some(parent.id.as_str()),
        "span `{}` ({}) has parent {:?}, expected `{}` ({})",
        child.name,
        child.service,
        child.parent,
        parent.name,
        parent.id
    );
    Ok(())
}

/// The OpenTelemetry environment of one process: export to `otlp` as `service`, quickly.
fn otel_env(otlp: &str, service: &str) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp.to_owned()),
        ("OTEL_SERVICE_NAME".into(), service.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
    ]
}

fn refs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_triggered_run_is_one_trace_in_jaeger() -> Result<()> {
    let env = TestEnv::new("jaeger_trace").await?;
    let result = within(TEST_LIMIT, jaeger_body(&env)).await;
    env.finish(result).await
}

async fn jaeger_body(env: &TestEnv) -> Result<()> {
    let query_url = service_env("BACKFLOW_TEST_JAEGER_QUERY_URL")?;
    let otlp = service_env("BACKFLOW_TEST_OTLP_ENDPOINT")?;
    let suffix = random_suffix(6).to_lowercase();
    let (cli_service, cp_service, worker_service) = (
        format!("bf-cli-{suffix}"),
        format!("bf-cp-{suffix}"),
        format!("bf-worker-{suffix}"),
    );
    let cp_env = otel_env(&otlp, &cp_service);
    let worker_env = otel_env(&otlp, &worker_service);
    let cli_env = otel_env(&otlp, &cli_service);

    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let store = format!("sqlite:{}", env.path().join("state.db").display());
    let _cp = start_control_plane(env, "cp", port, &store, &[], &refs(&cp_env)).await?;
    let _worker = start_worker(env, "worker", &addr, 1, &refs(&worker_env))?;
    let api = Api::new(&addr, None)?;
    let (data_url, data) = data_database(env, &api).await?;
    create_source_table(&data, "src.t", 30, 1).await?;
    api.create_sync("traced", pg_sync(&plain_query("src.t"), "dst.t", Some(10)))
        .await?;

    let out = run_cli_with_env(
        env,
        &addr,
        &["trigger", "traced", "--wait"],
        &refs(&cli_env),
    )
    .await?;
    out.ensure_ok("trigger traced --wait")?;
    let trace_id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace id "))
        .map(str::trim)
        .with_context(|| format!("`trigger --wait` printed no trace id:\n{}", out.stdout))?
        .to_owned();
    ensure!(trace_id.len() == 32, "odd trace id `{trace_id}`");

    // The worker's commit span and the control plane's answer to it are the last to arrive.
    let spans = eventually(Duration::from_secs(30), "the whole trace in Jaeger", || {
        let url = format!("{query_url}/api/traces/{trace_id}");
        let (cp_service, worker_service) = (cp_service.clone(), worker_service.clone());
        async move {
            let (status, body) = http_get(&url).await?;
            ensure!(status == 200, "GET {url}: {status} {body}");
            let json: Value = serde_json::from_str(&body)?;
            let traces = json["data"].as_array().context("no data")?;
            ensure!(traces.len() == 1, "{} traces for one id", traces.len());
            let spans = spans_of(&traces[0])?;
            find(&spans, &worker_service, "run.commit")?;
            find(&spans, &cp_service, "backflow.v1.WorkerService/CompleteRun")?;
            find(&spans, &cp_service, "run.queued")?;
            Ok(Some(spans))
        }
    })
    .await?;

    // client → control plane
    let cli = find(&spans, &cli_service, "backflow trigger")?;
    ensure!(
        cli.parent.is_none(),
        "the CLI span is not the root: {cli:?}"
    );
    let server = find(&spans, &cp_service, "backflow.v1.SyncService/TriggerSync")?;
    ensure_child(server, cli)?;
    ensure!(
        server.tags.get("rpc.system") == Some(&Value::from("grpc"))
            && server.tags.get("rpc.service") == Some(&Value::from("backflow.v1.SyncService"))
            && server.tags.get("rpc.method") == Some(&Value::from("TriggerSync")),
        "server span attributes: {:?}",
        server.tags
    );
    let handler = find(&spans, &cp_service, "SyncService/TriggerSync")?;
    ensure_child(handler, server)?;
    // control plane → queue → worker
    let queued = find(&spans, &cp_service, "run.queued")?;
    ensure_child(queued, handler)?;
    let run = find(&spans, &worker_service, "sync.run")?;
    ensure_child(run, handler)?;
    ensure!(
        run.tags.get("backflow.sync") == Some(&Value::from("traced"))
            && number(run.tags.get("backflow.attempt")) == Some(1)
            && run.tags.contains_key("backflow.run_id"),
        "sync.run attributes: {:?}",
        run.tags
    );
    for stage in [
        "source.read",
        "diff",
        "destination.write",
        "snapshot.write",
        "run.commit",
    ] {
        ensure_has_child(&spans, run, stage)?;
    }
    let writes: Vec<&JaegerSpan> = spans
        .iter()
        .filter(|s| s.name == "destination.write" && s.parent.as_deref() == Some(run.id.as_str()))
        .collect();
    let written: i64 = writes
        .iter()
        .map(|s| number(s.tags.get("backflow.rows")).unwrap_or(0))
        .sum();
    ensure!(
        !writes.is_empty() && written == 30,
        "expected writes of 30 rows in all, got {} writes of {written} rows",
        writes.len()
    );
    ensure!(
        writes
            .iter()
            .all(|w| w.tags.get("db.system") == Some(&Value::from("postgresql"))),
        "destination.write without db.system: {writes:?}"
    );
    // worker → control plane
    let commit = find(&spans, &worker_service, "run.commit")?;
    let complete = find(&spans, &cp_service, "backflow.v1.WorkerService/CompleteRun")?;
    ensure_child(complete, commit)?;
    // No secret travels in any attribute: connectors may name their URL, never its password.
    let url = url::Url::parse(&data_url)?;
    let credentials = format!("{}:{}@", url.username(), url.password().unwrap_or_default());
    for span in &spans {
        for value in span.tags.values() {
            if value.as_str().is_some_and(|v| v.contains(&credentials)) {
                bail!(
                    "span `{}` carries the database password: {value}",
                    span.name
                );
            }
        }
    }

    // `runs get` shows the same trace id.
    let runs = api.list_runs("traced").await?;
    let run_name = &runs.first().context("no run")?.name;
    let get = run_cli(env, &addr, &["runs", "get", run_name]).await?;
    get.ensure_ok("runs get")?;
    ensure!(
        get.stdout.contains(&trace_id),
        "`runs get` does not show trace {trace_id}:\n{}",
        get.stdout
    );
    Ok(())
}
