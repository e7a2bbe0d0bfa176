//! An `https://` control plane whose certificate a private CA issued (made by
//! `scripts/self-signed-ca.sh` for this test): the CLI refuses it until it is told to trust the
//! CA (`--ca-cert` or `BACKFLOW_CA_CERT`), saying how; `standalone`'s embedded worker reaches
//! its control plane over TLS through the same variable, so a triggered run succeeds.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use common::*;

/// Writes a throwaway CA and a server certificate for 127.0.0.1 into `dir`.
async fn self_signed_ca(dir: &Path) -> Result<()> {
    let script = workspace_root().join("scripts/self-signed-ca.sh");
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(dir)
        .status()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(status.success(), "{} failed: {status}", script.display());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_through_ca_cert_by_the_cli_and_the_worker() -> Result<()> {
    let env = TestEnv::new("tls").await?;
    let result = within(TEST_LIMIT, private_ca(&env)).await;
    env.finish(result).await
}

async fn private_ca(env: &TestEnv) -> Result<()> {
    let tls = env.path().join("tls");
    self_signed_ca(&tls).await?;
    let (cert, key, ca) = (
        tls.join("server.pem"),
        tls.join("server-key.pem"),
        tls.join("ca.pem"),
    );
    let (cert, key, ca) = (
        cert.to_string_lossy(),
        key.to_string_lossy(),
        ca.to_string_lossy(),
    );
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let data = env.path().join("standalone-data");
    let mut standalone = Proc::spawn(
        env,
        "standalone",
        &[
            "standalone",
            "--listen",
            &listen,
            "--data-dir",
            &data.to_string_lossy(),
        ],
        &[
            ("BACKFLOW__CONTROL_PLANE__TLS_CERT", &cert),
            ("BACKFLOW__CONTROL_PLANE__TLS_KEY", &key),
            ("BACKFLOW_CA_CERT", &ca),
        ],
    )?;
    let server = format!("https://{listen}");
    let trusted = [("BACKFLOW_CA_CERT", &*ca)];
    // The certificate is read at start; until then the CLI finds nothing listening.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        standalone.ensure_running()?;
        let listed = run_cli_at(env, &server, &["syncs", "list"], &trusted).await?;
        if listed.code == 0 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the TLS control plane never answered: {listed:?}"
        );
        tokio::time::sleep(POLL).await;
    }

    // Without the CA, the system's roots do not vouch for the certificate.
    let refused = run_cli_at(env, &server, &["syncs", "list"], &[]).await?;
    ensure!(
        refused.code != 0
            && refused.stderr.contains("UnknownIssuer")
            && refused.stderr.contains("--ca-cert"),
        "an untrusted certificate was not refused with a hint: {refused:?}"
    );
    // The flag does what the variable does.
    run_cli_at(env, &server, &["--ca-cert", &ca, "syncs", "list"], &[])
        .await?
        .ensure_ok("syncs list --ca-cert")?;

    // A run needs the embedded worker, which dials the same https:// address.
    std::fs::write(
        env.path().join("scores.csv"),
        "id,score\n1,10\n2,20\n3,30\n",
    )?;
    let definitions = env.path().join("backflow.yaml");
    std::fs::write(
        &definitions,
        format!(
            "connections:\n\
             \x20 - name: csv\n    type: files\n    config: {{ base_dir: \"{dir}\", tables: {{ scores: scores.csv }} }}\n\
             \x20 - name: app\n    type: sqlite\n    config: {{ path: \"{dir}/app.db\" }}\n\
             syncs:\n\
             \x20 - name: scores\n    source: {{ connection: csv, query: \"SELECT id, score FROM scores\" }}\n\
             \x20   primary_key: [id]\n\
             \x20   destination: {{ connection: app, table: scores, mode: mirror, create_table: true }}\n",
            dir = env.path().display()
        ),
    )?;
    run_cli_at(
        env,
        &server,
        &["apply", "-f", &definitions.to_string_lossy()],
        &trusted,
    )
    .await?
    .ensure_ok("apply")?;
    let trigger = run_cli_at(env, &server, &["trigger", "scores", "--wait"], &trusted).await?;
    trigger.ensure_ok("trigger scores --wait")?;
    ensure!(
        trigger.stdout.contains("succeeded"),
        "the run over TLS did not succeed: {trigger:?}"
    );
    let runs = run_cli_at(
        env,
        &server,
        &["runs", "list", "--sync", "scores", "--output", "json"],
        &trusted,
    )
    .await?;
    runs.ensure_ok("runs list")?;
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout)
        .with_context(|| format!("runs list -o json printed {}", runs.stdout))?;
    let run = &runs[0];
    ensure!(
        run["state"] == "succeeded" && run["counts"]["added"] == 3,
        "unexpected run {run}"
    );
    standalone.stop().await
}
