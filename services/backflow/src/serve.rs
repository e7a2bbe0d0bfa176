//! The server subcommands: `standalone`, `control-plane`, `worker` and `migrate`. Settings are
//! layered defaults → `--config` file → `BACKFLOW__SECTION__KEY` environment variables →
//! command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use backflow_common::admin::{self, Admin, ReadinessCheck};
use backflow_common::client_tls::ca_cert_from_env;
use backflow_connector_core::secret;
use backflow_control_plane::api::{ControlPlane, ControlPlaneConfig};
use backflow_control_plane::auth::AuthConfig;
use backflow_control_plane::model::now_millis;
use backflow_control_plane::server::{serve, TlsFiles};
use backflow_control_plane::store::Store;
use backflow_control_plane::telemetry;
use backflow_worker::runner::{run_worker, WorkerConfig, WorkerStatus};
use clap::Args;
use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Settings of a control plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlaneSettings {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite:PATH` or `postgres://…` (secret references allowed).
    pub store: String,
    /// Snapshot store handed to workers: a directory, a `file://` URL, or `s3://`, `gs://`,
    /// `az://` BUCKET/PREFIX (credentials from the standard environment variables).
    pub snapshots: String,
    /// Seconds between garbage collections of the snapshot store; 0 turns them off.
    pub snapshot_gc_interval_secs: u64,
    /// Seconds a superseded or orphaned snapshot-store object is kept before garbage
    /// collection may delete it (a running attempt may not have committed it yet).
    pub snapshot_gc_grace_secs: u64,
    /// Worker heartbeat interval in seconds; leases live 3 × this + 2 s.
    pub heartbeat_interval_secs: u64,
    /// First retry delay in seconds; doubles per attempt.
    pub retry_backoff_secs: u64,
    /// Tokens for the public API (secret references allowed); empty turns auth off.
    pub api_tokens: Vec<String>,
    /// Token for the worker API (secret reference allowed).
    pub worker_token: Option<String>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Address of the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
    pub admin_listen: String,
}

impl Default for ControlPlaneSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            store: "sqlite:.backflow/state.db".into(),
            snapshots: ".backflow/snapshots".into(),
            snapshot_gc_interval_secs: 15 * 60,
            snapshot_gc_grace_secs: 60 * 60,
            heartbeat_interval_secs: 5,
            retry_backoff_secs: 10,
            api_tokens: Vec::new(),
            worker_token: None,
            tls_cert: None,
            tls_key: None,
            admin_listen: "127.0.0.1:9090".into(),
        }
    }
}

/// Settings of a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// The control plane's URL.
    pub server: String,
    /// Token for the worker API (secret reference allowed).
    pub token: Option<String>,
    /// PEM file of CA certificates trusted besides the system's, for an `https://` server
    /// whose certificate a private CA issued; unset, `BACKFLOW_CA_CERT` is read.
    pub ca_cert: Option<PathBuf>,
    /// Runs executed at once.
    pub concurrency: usize,
    /// Seconds a run may take to finish after SIGTERM before it is handed back.
    pub shutdown_grace_secs: u64,
    /// Address of the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
    pub admin_listen: String,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            server: "http://127.0.0.1:7070".into(),
            token: None,
            ca_cert: None,
            concurrency: 2,
            shutdown_grace_secs: 30,
            admin_listen: "127.0.0.1:9091".into(),
        }
    }
}

/// All settings, by section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `control_plane:` section.
    pub control_plane: ControlPlaneSettings,
    /// `worker:` section.
    pub worker: WorkerSettings,
}

/// `--config FILE`, shared by the server subcommands.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// YAML settings file (sections `control_plane:` and `worker:`).
    #[arg(long, env = "BACKFLOW_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &self.config {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Yaml::file(path));
        }
        let mut settings: Settings = figment
            .merge(
                Env::prefixed("BACKFLOW__")
                    .filter(|key| {
                        // The log format is read by the command line (`--log-format`).
                        key != "LOG_FORMAT" && !RAW_ENV.iter().any(|raw| key == *raw)
                    })
                    .split("__")
                    .lowercase(true),
            )
            .extract()
            .context("invalid settings")?;
        apply_raw_env(&mut settings);
        Ok(settings)
    }
}

/// Settings read from the environment verbatim. Figment would parse `12345`, `true` or
/// `00123` as numbers and booleans, and a token or a store URL must stay exactly as written.
const RAW_ENV: &[&str] = &[
    "CONTROL_PLANE__STORE",
    "CONTROL_PLANE__WORKER_TOKEN",
    "CONTROL_PLANE__API_TOKENS",
    "WORKER__TOKEN",
];

fn apply_raw_env(settings: &mut Settings) {
    apply_raw(settings, |key| {
        std::env::var(format!("BACKFLOW__{key}")).ok()
    });
}

fn apply_raw(settings: &mut Settings, raw_env: impl Fn(&str) -> Option<String>) {
    if let Some(store) = raw_env("CONTROL_PLANE__STORE") {
        settings.control_plane.store = store;
    }
    if let Some(token) = raw_env("CONTROL_PLANE__WORKER_TOKEN") {
        settings.control_plane.worker_token = Some(token);
    }
    if let Some(tokens) = raw_env("CONTROL_PLANE__API_TOKENS") {
        // A comma-separated list, optionally in brackets: `a,b` or `[a, b]`.
        let list = tokens.trim();
        let list = list
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .unwrap_or(list);
        settings.control_plane.api_tokens = list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(token) = raw_env("WORKER__TOKEN") {
        settings.worker.token = Some(token);
    }
}

/// `backflow standalone`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Loopback address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite state and the snapshots.
    #[arg(long, default_value = ".backflow")]
    data_dir: PathBuf,
    /// Runs executed at once by the embedded worker.
    #[arg(long)]
    workers: Option<usize>,
    /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`) of the whole process. By
    /// default an ephemeral loopback port, printed at startup, so that two instances on one
    /// machine never collide.
    #[arg(long)]
    admin_listen: Option<String>,
}

/// `backflow control-plane`.
#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// `sqlite:PATH` or `postgres://…`.
    #[arg(long)]
    store: Option<String>,
    /// Snapshot store shared with the workers: a directory, a `file://` URL, or
    /// `s3://`, `gs://`, `az://` BUCKET/PREFIX.
    #[arg(long)]
    snapshots: Option<String>,
    /// Worker heartbeat interval in seconds.
    #[arg(long)]
    heartbeat_interval_secs: Option<u64>,
    /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long)]
    admin_listen: Option<String>,
}

/// `backflow worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The control plane's URL.
    #[arg(long)]
    server: Option<String>,
    /// Runs executed at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long)]
    admin_listen: Option<String>,
}

/// `backflow migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `sqlite:PATH` or `postgres://…`.
    #[arg(long)]
    store: String,
}

fn resolve(field: &str, value: &str) -> anyhow::Result<String> {
    Ok(secret::resolve(field, value)?.expose().to_owned())
}

/// A token that is cancelled by SIGTERM or Ctrl-C.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        info!("shutting down");
        trigger.cancel();
    });
    token
}

fn control_plane_config(s: &ControlPlaneSettings) -> anyhow::Result<ControlPlaneConfig> {
    let mut config = ControlPlaneConfig::new(absolute(&s.snapshots)?);
    config.heartbeat_interval = Duration::from_secs(s.heartbeat_interval_secs.max(1));
    config.retry_backoff = Duration::from_secs(s.retry_backoff_secs);
    Ok(config)
}

/// Snapshot locations are handed to workers that may run in another directory.
/// Parsed as workers parse it, so a location they would refuse stops the control plane at
/// start instead of failing every run.
fn absolute(store: &str) -> anyhow::Result<String> {
    backflow_engine::store::absolute_location(store).context("control_plane.snapshots")
}

fn auth_config(s: &ControlPlaneSettings) -> anyhow::Result<AuthConfig> {
    let api_tokens = s
        .api_tokens
        .iter()
        .map(|t| resolve("control_plane.api_tokens", t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !api_tokens.is_empty() && s.worker_token.is_none() {
        // Otherwise anyone could lease runs, read connection configs and fake completions.
        bail!(
            "control_plane.worker_token must be set when control_plane.api_tokens are: \
             the worker API would be open to anyone"
        );
    }
    Ok(AuthConfig {
        api_tokens: (!api_tokens.is_empty()).then_some(api_tokens),
        worker_token: s
            .worker_token
            .as_deref()
            .map(|t| resolve("control_plane.worker_token", t))
            .transpose()?,
    })
}

fn tls_files(s: &ControlPlaneSettings) -> anyhow::Result<Option<TlsFiles>> {
    match (&s.tls_cert, &s.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert_pem: std::fs::read(cert)
                .with_context(|| format!("cannot read {}", cert.display()))?,
            key_pem: std::fs::read(key)
                .with_context(|| format!("cannot read {}", key.display()))?,
        })),
        _ => bail!("tls_cert and tls_key must be set together"),
    }
}

async fn open_store(url: &str) -> anyhow::Result<Store> {
    let url = resolve("store", url)?;
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
        }
    }
    Store::connect_and_migrate(&url)
        .await
        .context("cannot open the state store")
}

/// Runs the control plane (API server + scheduler) until `shutdown`.
async fn run_control_plane(
    settings: &ControlPlaneSettings,
    listener: TcpListener,
    mut admin: Option<Admin>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = open_store(&settings.store).await?;
    let cp = ControlPlane::new(store.clone(), control_plane_config(settings)?);
    if let Some(admin) = admin.as_mut() {
        let (scrape, ready) = (store.clone(), store.clone());
        admin.before_scrape.push(Arc::new(move || {
            let store = scrape.clone();
            Box::pin(async move { telemetry::refresh_queue_gauges(&store).await })
        }));
        admin.readiness.push(Arc::new(move || {
            let store = ready.clone();
            Box::pin(async move {
                store
                    .queue_stats(now_millis())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the store does not answer: {e}"))
            })
        }));
    }
    if let Some(admin) = admin {
        spawn_admin(&settings.admin_listen, admin, shutdown.clone()).await?;
    }
    // Opened here too, so a snapshot store this process cannot configure stops it at start.
    let snapshots = backflow_engine::SnapshotStore::open(&cp.config.snapshot_store)
        .context("control_plane.snapshots")?;
    let scheduler = tokio::spawn(backflow_control_plane::scheduler::run_scheduler(
        Arc::clone(&cp),
        shutdown.clone().cancelled_owned(),
    ));
    let snapshot_gc = tokio::spawn(backflow_control_plane::snapshot_gc::run_snapshot_gc(
        store.clone(),
        snapshots,
        backflow_control_plane::snapshot_gc::SnapshotGcConfig {
            interval: Duration::from_secs(settings.snapshot_gc_interval_secs),
            grace: Duration::from_secs(settings.snapshot_gc_grace_secs),
        },
        shutdown.clone().cancelled_owned(),
    ));
    info!(listen = %listener.local_addr()?, "control plane listening");
    serve(
        cp,
        listener,
        auth_config(settings)?,
        tls_files(settings)?,
        shutdown.cancelled_owned(),
    )
    .await?;
    scheduler.await?;
    snapshot_gc.await?;
    store.close().await;
    Ok(())
}

fn worker_config(s: &WorkerSettings) -> anyhow::Result<WorkerConfig> {
    let mut config = WorkerConfig::new(s.server.clone());
    config.token = s
        .token
        .as_deref()
        .map(|t| resolve("worker.token", t))
        .transpose()?;
    config.ca_cert = s.ca_cert.clone().or_else(ca_cert_from_env);
    config.concurrency = s.concurrency.max(1);
    config.shutdown_grace = Duration::from_secs(s.shutdown_grace_secs);
    Ok(config)
}

/// `backflow standalone`: control plane and worker in one process, SQLite state and local
/// snapshots under the data directory, listening on loopback only.
pub async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let mut settings = args.config.load()?;
    if let Some(listen) = args.listen {
        settings.control_plane.listen = listen.to_string();
    }
    let listen: SocketAddr = settings
        .control_plane
        .listen
        .parse()
        .with_context(|| format!("`{}` is not an address", settings.control_plane.listen))?;
    if !listen.ip().is_loopback() {
        bail!("standalone listens on loopback only (127.0.0.1 or ::1), not {listen}; run `backflow control-plane` to serve a network");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    settings.control_plane.store = format!("sqlite:{}", args.data_dir.join("state.db").display());
    settings.control_plane.snapshots = args.data_dir.join("snapshots").display().to_string();
    if let Some(workers) = args.workers {
        settings.worker.concurrency = workers;
    }
    match args.admin_listen {
        Some(admin_listen) => settings.control_plane.admin_listen = admin_listen,
        // The control plane's fixed default port would make a second instance lose its admin
        // endpoint; an address set in the config file is kept.
        None if settings.control_plane.admin_listen
            == ControlPlaneSettings::default().admin_listen =>
        {
            settings.control_plane.admin_listen = EPHEMERAL_LOOPBACK.into();
        }
        None => {}
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    // The embedded worker dials the same address, so a certificate for a private CA needs the
    // CA trusted here too (`worker.ca_cert` or BACKFLOW_CA_CERT) and 127.0.0.1 or ::1 in its
    // names.
    let scheme = if settings.control_plane.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    settings.worker.server = format!("{scheme}://{bound}");
    if settings.worker.token.is_none() {
        settings
            .worker
            .token
            .clone_from(&settings.control_plane.worker_token);
    }
    println!(
        "backflow standalone listening on {} (data in {}, {} concurrent runs)",
        settings.worker.server,
        args.data_dir.display(),
        settings.worker.concurrency
    );
    let shutdown = shutdown_signal();
    let worker_config = worker_config(&settings.worker)?;
    let mut admin = Admin::new(backflow_common::metrics::install()?);
    admin
        .readiness
        .push(worker_ready(worker_config.status.clone()));
    let worker = tokio::spawn(run_worker(
        worker_config,
        shutdown.clone().cancelled_owned(),
    ));
    run_control_plane(&settings.control_plane, listener, Some(admin), shutdown).await?;
    worker.await??;
    Ok(())
}

/// `backflow control-plane`.
pub async fn control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let mut settings = args.config.load()?.control_plane;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(store) = args.store {
        settings.store = store;
    }
    if let Some(snapshots) = args.snapshots {
        settings.snapshots = snapshots;
    }
    if let Some(secs) = args.heartbeat_interval_secs {
        settings.heartbeat_interval_secs = secs;
    }
    if let Some(admin_listen) = args.admin_listen {
        settings.admin_listen = admin_listen;
    }
    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let scheme = if settings.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "backflow control plane listening on {scheme}://{}",
        listener.local_addr()?
    );
    let admin = Admin::new(backflow_common::metrics::install()?);
    run_control_plane(&settings, listener, Some(admin), shutdown_signal()).await
}

/// `backflow worker`.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let mut settings = args.config.load()?.worker;
    if let Some(server) = args.server {
        settings.server = server;
    }
    if let Some(concurrency) = args.concurrency {
        settings.concurrency = concurrency;
    }
    if let Some(admin_listen) = args.admin_listen {
        settings.admin_listen = admin_listen;
    }
    let config = worker_config(&settings)?;
    info!(server = %settings.server, concurrency = config.concurrency, "worker starting");
    let shutdown = shutdown_signal();
    let mut admin = Admin::new(backflow_common::metrics::install()?);
    admin.readiness.push(worker_ready(config.status.clone()));
    spawn_admin(&settings.admin_listen, admin, shutdown.clone()).await?;
    run_worker(config, shutdown.cancelled_owned()).await?;
    Ok(())
}

/// The worker's readiness: it reaches its control plane.
fn worker_ready(status: WorkerStatus) -> ReadinessCheck {
    Arc::new(move || {
        let connected = status.is_connected();
        Box::pin(async move {
            if connected {
                Ok(())
            } else {
                Err("the worker does not reach its control plane".to_owned())
            }
        })
    })
}

/// The admin address `standalone` uses unless told otherwise: any free loopback port.
const EPHEMERAL_LOOPBACK: &str = "127.0.0.1:0";

/// Starts the admin HTTP server on `addr` until `shutdown`. A port already in use is logged
/// and the process goes on without it (probes then fail visibly), so a second process on one
/// machine still runs.
async fn spawn_admin(addr: &str, admin: Admin, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::error!(admin_listen = %addr, "admin server disabled: the address is in use");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("admin_listen: cannot listen on {addr}")),
    };
    let bound = listener.local_addr()?;
    info!(admin_listen = %bound, "admin server listening");
    if addr == EPHEMERAL_LOOPBACK {
        println!("admin endpoint (/metrics, /healthz, /readyz) on http://{bound}");
    }
    tokio::spawn(async move {
        if let Err(e) = admin::serve(listener, admin, shutdown.cancelled_owned()).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    Ok(())
}

/// `backflow migrate`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    store.close().await;
    println!("store migrated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_store_urls_from_the_environment_stay_verbatim() {
        let env = |key: &str| match key {
            "CONTROL_PLANE__STORE" => Some("postgres://cp@127.0.0.1/00123".to_owned()),
            "CONTROL_PLANE__WORKER_TOKEN" => Some("00123".to_owned()),
            "CONTROL_PLANE__API_TOKENS" => Some("[12345, true]".to_owned()),
            "WORKER__TOKEN" => Some("3.14".to_owned()),
            _ => None,
        };
        let mut settings = Settings::default();
        apply_raw(&mut settings, env);
        assert_eq!(
            settings.control_plane.store,
            "postgres://cp@127.0.0.1/00123"
        );
        assert_eq!(
            settings.control_plane.worker_token.as_deref(),
            Some("00123")
        );
        assert_eq!(settings.control_plane.api_tokens, ["12345", "true"]);
        assert_eq!(settings.worker.token.as_deref(), Some("3.14"));

        let mut plain = Settings::default();
        apply_raw(&mut plain, |key| {
            (key == "CONTROL_PLANE__API_TOKENS").then(|| "a, b".to_owned())
        });
        assert_eq!(plain.control_plane.api_tokens, ["a", "b"]);
    }

    #[test]
    fn api_tokens_without_a_worker_token_are_refused() {
        let mut settings = ControlPlaneSettings {
            api_tokens: vec!["t1".into()],
            ..ControlPlaneSettings::default()
        };
        let err = auth_config(&settings).unwrap_err().to_string();
        assert!(err.contains("worker_token"), "{err}");
        settings.worker_token = Some("w1".into());
        let auth = auth_config(&settings).unwrap();
        assert_eq!(auth.worker_token.as_deref(), Some("w1"));
        assert_eq!(auth.api_tokens, Some(vec!["t1".to_owned()]));
    }

    #[test]
    fn snapshot_locations_workers_refuse_stop_the_control_plane() {
        assert!(absolute("ftp://host/snapshots").is_err());
        assert_eq!(
            absolute("s3://bucket/snapshots").unwrap(),
            "s3://bucket/snapshots"
        );
        assert!(absolute("file:///var/snapshots")
            .unwrap()
            .ends_with("/var/snapshots"));
        assert!(Path::new(&absolute("rel/snaps").unwrap()).is_absolute());
    }
}
