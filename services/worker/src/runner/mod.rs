//! The worker poll loop: leases runs from the control plane over gRPC (`WorkerService`) and
//! executes them with the [`Engine`](backflow_engine::Engine).
//!
//! Work is pulled, never pushed (docs/architecture.md): `concurrency` slots each long-poll
//! `PollWork`, run the lease they get and report it with `CompleteRun` or `FailRun`. One
//! heartbeat task keeps every held lease alive and turns the control plane's answers into
//! stop signals (lost lease, cancel). A control plane that is down or restarting is waited
//! out with backoff; only [`run_worker`]'s `shutdown` future ends the loop.
//!
//! Files: `slot` (poll loop), `execute` (one lease), `leases` (held leases, heartbeats),
//! `report` (CompleteRun/FailRun and snapshot cleanup), `convert` (proto ↔ engine),
//! `client` (channel, auth, retry rule), `backoff`,
//! `failure` (FailRun codes).

mod backoff;
mod client;
mod convert;
mod execute;
mod failure;
mod leases;
pub mod metrics;
#[cfg(test)]
mod mock_tests;
mod report;
mod slot;

pub use failure::LeaseError;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::runner::client::WorkerClient;
use crate::runner::leases::{Leases, Stop};

/// Runs allowed by default on one worker at once.
const DEFAULT_CONCURRENCY: usize = 4;
/// The longest `PollWork` wait the control plane accepts.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);
/// After the shutdown grace, time left for handed-back runs to report before the worker
/// exits anyway (their leases then expire and the runs are queued again).
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the worker checks that it reaches the control plane, for its readiness probe.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How soon it checks again after a failed check.
const PROBE_RETRY: Duration = Duration::from_secs(1);

/// Whether the worker reaches its control plane, for a `/readyz` probe: set by a periodic
/// empty `Heartbeat` call (which checks the address, the connection and the token). Clones
/// share one flag.
#[derive(Debug, Clone, Default)]
pub struct WorkerStatus(Arc<AtomicBool>);

impl WorkerStatus {
    /// Whether the last check reached the control plane.
    pub fn is_connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set_connected(&self, connected: bool) {
        self.0.store(connected, Ordering::Relaxed);
    }
}

/// How a worker reaches its control plane and how much it takes on. Built by the binary from
/// layered config; [`WorkerConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The control plane's gRPC address, such as `http://127.0.0.1:7070`.
    pub server: String,
    /// Bearer token for `WorkerService`, which has its own credential separate from the
    /// public API's; `None` when the control plane does not ask for one.
    pub token: Option<String>,
    /// PEM file of CA certificates trusted besides the system's, for an `https://` control
    /// plane whose certificate a private CA issued.
    pub ca_cert: Option<PathBuf>,
    /// Runs executed at once; each is one polling slot.
    pub concurrency: usize,
    /// A stable id of this worker process, recorded on the runs it leases.
    pub worker_id: String,
    /// How long one `PollWork` waits for a queued run (at most 60 s); longer waits mean fewer
    /// idle calls, shorter ones nothing, since a lease is returned as soon as there is work.
    pub poll_wait: Duration,
    /// On shutdown, how long running runs may take to finish before they are handed back.
    pub shutdown_grace: Duration,
    /// Readiness, kept up to date while the worker runs; hand a clone to the admin server.
    pub status: WorkerStatus,
}

impl WorkerConfig {
    /// A config for the control plane at `server` with the defaults: no token, 4 slots, a
    /// worker id from the host name and process id, 20 s polls and a 30 s shutdown grace.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            token: None,
            ca_cert: None,
            concurrency: DEFAULT_CONCURRENCY,
            worker_id: default_worker_id(),
            poll_wait: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(30),
            status: WorkerStatus::default(),
        }
    }

    fn validate(&self) -> Result<(), RunnerError> {
        if self.concurrency == 0 {
            return Err(RunnerError::InvalidConfig {
                field: "concurrency",
                message: "must be at least 1".into(),
            });
        }
        if self.worker_id.trim().is_empty() {
            return Err(RunnerError::InvalidConfig {
                field: "worker_id",
                message: "is empty".into(),
            });
        }
        if self.poll_wait.is_zero() || self.poll_wait > MAX_POLL_WAIT {
            return Err(RunnerError::InvalidConfig {
                field: "poll_wait",
                message: format!(
                    "must be more than 0 and at most {}s",
                    MAX_POLL_WAIT.as_secs()
                ),
            });
        }
        Ok(())
    }
}

impl Default for WorkerConfig {
    /// The defaults of [`WorkerConfig::new`] against a control plane on this machine.
    fn default() -> Self {
        Self::new("http://127.0.0.1:7070")
    }
}

/// Prints the config without the token, so it can be logged.
impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("concurrency", &self.concurrency)
            .field("worker_id", &self.worker_id)
            .field("poll_wait", &self.poll_wait)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("status", &self.status)
            .finish()
    }
}

/// `$HOSTNAME` (the pod name on Kubernetes) or `worker`, and the process id.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// Why [`run_worker`] could not start. Once started it only returns on shutdown: control
/// plane outages and failed runs are handled, not returned.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The control plane address is not a usable gRPC URL.
    #[error("invalid control plane address `{server}`: {message}")]
    InvalidServer {
        /// The address as configured.
        server: String,
        /// What is wrong with it.
        message: String,
    },
    /// The token cannot travel in an HTTP header. The token itself is never shown.
    #[error("the worker token cannot be sent as a gRPC header: it must be visible ASCII")]
    InvalidToken,
    /// A setting is out of range.
    #[error("invalid worker config `{field}`: {message}")]
    InvalidConfig {
        /// The setting at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl RunnerError {
    /// A stable machine-readable code, like every error enum of the workspace.
    pub fn code(&self) -> &'static str {
        match self {
            RunnerError::InvalidServer { .. } => "invalid_server",
            RunnerError::InvalidToken => "invalid_token",
            RunnerError::InvalidConfig { .. } => "invalid_config",
        }
    }

    /// Always false: these are configuration mistakes that a restart does not fix.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// What every task of a worker shares.
pub(crate) struct Ctx {
    pub(crate) client: WorkerClient,
    pub(crate) worker_id: String,
    pub(crate) poll_wait: Duration,
    pub(crate) leases: Arc<Leases>,
}

/// Runs a worker until `shutdown` resolves (the binary passes SIGTERM / ctrl-c).
///
/// The control plane is dialled lazily, so it may be down at start or restart at any time:
/// calls are retried with backoff and the worker never exits on an outage. On shutdown,
/// polling stops at once; running runs get `shutdown_grace` to finish, then are stopped and
/// reported with `FailRun` code `worker_shutdown` (retryable) so another worker takes them
/// promptly. Returns `Ok` once every run has ended or been handed back; an error only when the
/// config is unusable.
pub async fn run_worker(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunnerError> {
    config.validate()?;
    let client = client::connect_lazy(
        &config.server,
        config.token.as_deref(),
        config.ca_cert.as_deref(),
    )?;
    let leases = Arc::new(Leases::default());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        worker_id: config.worker_id.clone(),
        poll_wait: config.poll_wait,
        leases: leases.clone(),
    });
    info!(
        server = %config.server,
        worker_id = %config.worker_id,
        concurrency = config.concurrency,
        "worker started"
    );
    let heartbeat = tokio::spawn(leases::heartbeat_loop(
        client.clone(),
        config.worker_id.clone(),
        leases.clone(),
    ));
    let probe = tokio::spawn(probe_loop(
        client,
        config.worker_id.clone(),
        config.status.clone(),
    ));
    metrics::slots_added(config.concurrency, 1.0);

    let (stopping_tx, stopping) = watch::channel(false);
    let mut slots = JoinSet::new();
    let mut slot_of = HashMap::new();
    for slot in 0..config.concurrency {
        let task = slots.spawn(slot::slot_loop(ctx.clone(), slot, stopping.clone()));
        slot_of.insert(task.id(), slot);
    }

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(ended) = slots.join_next_with_id() => {
                // Slots only end on shutdown: this one panicked. Its lease (if any) was
                // released and will expire; keep the worker at full strength.
                let id = match &ended {
                    Ok((id, ())) => *id,
                    Err(e) => e.id(),
                };
                let slot = slot_of.remove(&id).unwrap_or_default();
                error!(slot, "worker slot ended unexpectedly; restarting it");
                let task = slots.spawn(slot::slot_loop(ctx.clone(), slot, stopping.clone()));
                slot_of.insert(task.id(), slot);
            }
        }
    }

    info!(
        running = leases.len(),
        grace_s = config.shutdown_grace.as_secs_f64(),
        "worker stopping; no new runs"
    );
    let _ = stopping_tx.send(true);
    if tokio::time::timeout(config.shutdown_grace, drain(&mut slots))
        .await
        .is_err()
    {
        let runs = leases.signal_all(Stop::Shutdown);
        info!(runs, "shutdown grace elapsed; handing unfinished runs back");
        if tokio::time::timeout(HAND_BACK_TIMEOUT, drain(&mut slots))
            .await
            .is_err()
        {
            warn!(
                runs = leases.len(),
                "runs still reporting after the hand-back timeout; leaving them to expire"
            );
            slots.shutdown().await;
        }
    }
    heartbeat.abort();
    let _ = heartbeat.await;
    probe.abort();
    let _ = probe.await;
    config.status.set_connected(false);
    metrics::slots_added(config.concurrency, -1.0);
    info!("worker stopped");
    Ok(())
}

/// Keeps `status` saying whether an empty `Heartbeat` reaches the control plane.
async fn probe_loop(client: WorkerClient, worker_id: String, status: WorkerStatus) {
    loop {
        let request = backflow_proto::v1::HeartbeatRequest {
            worker_id: worker_id.clone(),
            leases: Vec::new(),
        };
        let reached = client::with_timeout(PROBE_RETRY * 3, client.clone().heartbeat(request))
            .await
            .is_ok();
        status.set_connected(reached);
        tokio::time::sleep(if reached { PROBE_INTERVAL } else { PROBE_RETRY }).await;
    }
}

async fn drain(slots: &mut JoinSet<()>) {
    while slots.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sensible_and_debug_hides_the_token() {
        let mut config = WorkerConfig::default();
        assert_eq!(config.server, "http://127.0.0.1:7070");
        assert_eq!(config.poll_wait, Duration::from_secs(20));
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert!(config.concurrency >= 1);
        assert!(!config.worker_id.is_empty());
        config.validate().unwrap();
        config.token = Some("hunter2".into());
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        let bad = [
            WorkerConfig {
                concurrency: 0,
                ..WorkerConfig::default()
            },
            WorkerConfig {
                worker_id: " ".into(),
                ..WorkerConfig::default()
            },
            WorkerConfig {
                poll_wait: Duration::ZERO,
                ..WorkerConfig::default()
            },
            WorkerConfig {
                poll_wait: Duration::from_secs(61),
                ..WorkerConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[tokio::test]
    async fn a_worker_without_a_control_plane_waits_and_stops_on_shutdown() {
        // Nothing listens on port 9: the worker must keep retrying, not fail, and return Ok
        // as soon as it is told to stop.
        let config = WorkerConfig {
            server: "http://127.0.0.1:9".into(),
            concurrency: 2,
            ..WorkerConfig::default()
        };
        let shutdown = tokio::time::sleep(Duration::from_millis(700));
        let started = std::time::Instant::now();
        run_worker(config, shutdown).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_bad_address_fails_at_once() {
        let config = WorkerConfig::new("127.0.0.1:7070");
        let e = run_worker(config, std::future::pending())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_server");
    }
}
