//! An `https://` control plane whose certificate a private CA issued (made by the repository's
//! `scripts/self-signed-ca.sh`): the client refuses it with the system's roots alone and
//! trusts it once given the CA's certificate.

mod common;

use std::path::Path;

use anyhow::{ensure, Context as _, Result};
use backflow_client::{Client, Error};
use common::Standalone;
use tonic::Code;

#[tokio::test]
async fn a_private_ca_is_trusted_once_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/self-signed-ca.sh");
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .status()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(status.success(), "{} failed: {status}", script.display());
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let server = Standalone::start(&[
        ("BACKFLOW__CONTROL_PLANE__TLS_CERT", &path("server.pem")),
        ("BACKFLOW__CONTROL_PLANE__TLS_KEY", &path("server-key.pem")),
        ("BACKFLOW_CA_CERT", &path("ca.pem")),
    ])
    .await?;
    ensure!(
        server.address.starts_with("https://"),
        "standalone with a certificate does not serve https: {}",
        server.address
    );

    let untrusted = Client::builder(&server.address).connect().await;
    match untrusted {
        Err(Error::Connect { reason, .. }) => ensure!(
            reason.contains("UnknownIssuer"),
            "refused for another reason: {reason}"
        ),
        other => anyhow::bail!("an unknown CA was not refused: {other:?}"),
    }

    let client = Client::builder(&server.address)
        .ca_certificate(std::fs::read(dir.path().join("ca.pem"))?)
        .connect()
        .await?;
    // An answer from the server, over TLS.
    let missing = client.get_sync("no-such-sync").await.unwrap_err();
    ensure!(
        missing.code() == Some(Code::NotFound),
        "expected NOT_FOUND over TLS, got {missing}"
    );
    Ok(())
}
