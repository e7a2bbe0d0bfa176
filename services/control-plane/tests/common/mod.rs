//! Helpers shared by the control plane's test files (each `tests/*.rs` is its own crate and
//! uses what it needs).
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use backflow_proto::v1;
use backflow_proto::v1::run_service_client::RunServiceClient;
use tonic::transport::Channel;

/// `url` with its database name replaced: each test works in a database of its own.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// Polls GetRun until the run `name` has ended, and returns it; fails after `timeout`.
pub async fn wait_run_ended(channel: Channel, name: &str, timeout: Duration) -> Result<v1::Run> {
    let mut runs = RunServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = runs
            .get_run(v1::GetRunRequest {
                name: name.to_owned(),
            })
            .await?
            .into_inner()
            .run
            .context("no run")?;
        if current.end_time.is_some() {
            return Ok(current);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the run did not end within {timeout:?}: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
