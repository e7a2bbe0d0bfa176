//! Shared helpers of the end-to-end tests: the `backflow` binary, processes that die with the
//! test, loopback ports, gRPC clients, bounded waits and PostgreSQL databases of their own.
//!
//! Every test gets a [`TestEnv`]: a temporary directory (process logs, snapshots, SQLite
//! files), its own PostgreSQL databases (dropped when the test passes), and, when the test
//! fails, the tail of every process log on stderr.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Dumping the logs of the processes of a failed test is this module's job.
#![allow(clippy::print_stderr)]

pub mod scores;
pub mod targets;

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use backflow_proto::v1;
use backflow_proto::v1::connection_service_client::ConnectionServiceClient;
use backflow_proto::v1::run_service_client::RunServiceClient;
use backflow_proto::v1::sync_service_client::SyncServiceClient;
use backflow_proto::v1::worker_service_client::WorkerServiceClient;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row as _;
use tokio::process::{Child, Command};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// How often waits look again.
pub const POLL: Duration = Duration::from_millis(200);

/// The PostgreSQL server of `scripts/services.sh start`, as a superuser.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://backflow:backflow@127.0.0.1:55432/backflow";

/// Test databases are named `bf_e2e_<unix seconds>_<random>`; ones older than this are left
/// over from aborted runs and dropped by the next test run.
const STALE_DATABASE_AGE: Duration = Duration::from_secs(2 * 3600);

// ---------------------------------------------------------------------------------------------
// The binary

/// The root of the workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests lives inside the workspace")
        .to_path_buf()
}

/// The `backflow` binary under test: `$BACKFLOW_BIN`, else `target/<profile>/backflow` next to
/// this test executable (`target/<profile>/deps/<test>`). Fails when it is missing or older
/// than the workspace's sources, since a stale binary would test yesterday's code.
pub fn backflow_bin() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_backflow_bin().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn find_backflow_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BACKFLOW_BIN") {
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "BACKFLOW_BIN={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let bin = profile_dir.join(format!("backflow{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "the `backflow` binary is missing at {}: build it first with `cargo build -p backflow` \
             (`cargo test --workspace` builds it too), or point BACKFLOW_BIN at one",
            bin.display()
        );
    }
    let built = std::fs::metadata(&bin)?.modified()?;
    if let Some((newest, path)) = newest_source(&workspace_root()) {
        if newest > built {
            bail!(
                "the `backflow` binary at {} is older than {}: rebuild it with `cargo build -p \
                 backflow` (or set BACKFLOW_BIN to test a given binary)",
                bin.display(),
                path.display()
            );
        }
    }
    Ok(bin)
}

/// The most recently modified source file of the crates the binary is built from.
fn newest_source(root: &Path) -> Option<(SystemTime, PathBuf)> {
    fn walk(dir: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "tests" {
                    walk(&path, newest);
                }
            } else if name.ends_with(".rs")
                || name.ends_with(".proto")
                || name.ends_with(".sql")
                || name == "Cargo.toml"
            {
                if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                    if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                        *newest = Some((modified, path));
                    }
                }
            }
        }
    }
    let mut newest = None;
    for dir in ["engine", "services", "connectors", "proto"] {
        walk(&root.join(dir), &mut newest);
    }
    newest
}

// ---------------------------------------------------------------------------------------------
// The test environment

/// One test's directory, databases and process logs.
pub struct TestEnv {
    /// The test's name, for messages and database names.
    pub name: String,
    /// Logs, snapshots and SQLite files; kept when `BACKFLOW_E2E_KEEP` is set.
    dir: Mutex<Option<tempfile::TempDir>>,
    path: PathBuf,
    /// A superuser connection to the server's maintenance database.
    pub admin: PgPool,
    admin_url: url::Url,
    databases: Mutex<Vec<String>>,
    logs: Mutex<Vec<(String, PathBuf)>>,
    finished: AtomicBool,
    started: Instant,
}

/// The URL of the test PostgreSQL server.
pub fn postgres_url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// A pool on `url`, failing fast with a message that says how to start the server.
pub async fn connect_pg(url: &str, max_connections: u32) -> Result<PgPool> {
    // One plain connection first: a refused connection fails at once with its reason, where
    // the pool would retry it until its timeout.
    use sqlx::Connection as _;
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) => bail!(
            "PostgreSQL at {} is unreachable ({e}); start it with `bash scripts/services.sh \
             start` (or set BACKFLOW_TEST_POSTGRES_URL)",
            redact(url)
        ),
        Err(_) => bail!(
            "PostgreSQL at {} did not answer within 10 s; start it with `bash \
             scripts/services.sh start` (or set BACKFLOW_TEST_POSTGRES_URL)",
            redact(url)
        ),
    }
    let connect = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(e)) => bail!(
            "PostgreSQL at {} is unreachable ({e}); start it with `bash scripts/services.sh \
             start` (or set BACKFLOW_TEST_POSTGRES_URL)",
            redact(url)
        ),
        Err(_) => bail!(
            "PostgreSQL at {} did not answer within 10 s; start it with `bash \
             scripts/services.sh start` (or set BACKFLOW_TEST_POSTGRES_URL)",
            redact(url)
        ),
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl TestEnv {
    /// A fresh environment; fails loudly when PostgreSQL or the binary is missing.
    pub async fn new(name: &str) -> Result<TestEnv> {
        backflow_bin()?;
        let url = postgres_url();
        let admin_url = url::Url::parse(&url).context("BACKFLOW_TEST_POSTGRES_URL")?;
        let admin = connect_pg(&url, 4).await?;
        drop_stale_databases(&admin).await;
        let dir = tempfile::Builder::new()
            .prefix(&format!("bf-e2e-{name}-"))
            .tempdir()?;
        Ok(TestEnv {
            name: name.to_owned(),
            path: dir.path().to_path_buf(),
            dir: Mutex::new(Some(dir)),
            admin,
            admin_url,
            databases: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
            finished: AtomicBool::new(false),
            started: Instant::now(),
        })
    }

    /// The test directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seconds since the environment was made, for progress notes.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Creates an empty database of this test and returns its URL.
    pub async fn create_database(&self, tag: &str) -> Result<String> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let name = format!("bf_e2e_{secs}_{}_{tag}", random_suffix(8));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&self.admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        self.databases.lock().unwrap().push(name.clone());
        let mut url = self.admin_url.clone();
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    fn register_log(&self, name: &str, path: &Path) {
        self.logs
            .lock()
            .unwrap()
            .push((name.to_owned(), path.to_path_buf()));
    }

    /// Ends the test: on success drops its databases; on failure prints every process log's
    /// tail and keeps the databases for a look. Returns `result` unchanged.
    pub async fn finish(self, result: Result<()>) -> Result<()> {
        self.finished.store(true, Ordering::SeqCst);
        if std::env::var_os("BACKFLOW_E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.lock().unwrap().take() {
                eprintln!("[{}] logs kept in {}", self.name, dir.keep().display());
            }
        }
        match &result {
            Ok(()) => {
                eprintln!("[{}] passed in {:.1}s", self.name, self.elapsed());
                let names = self.databases.lock().unwrap().clone();
                for name in names {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&self.admin)
                            .await;
                }
            }
            Err(e) => {
                eprintln!("[{}] FAILED after {:.1}s: {e:#}", self.name, self.elapsed());
                self.dump_logs();
            }
        }
        result
    }

    fn dump_logs(&self) {
        for (name, path) in self.logs.lock().unwrap().iter() {
            eprintln!("----- last lines of {name} ({}) -----", path.display());
            eprintln!("{}", tail(path, 60));
        }
        let databases = self.databases.lock().unwrap();
        if !databases.is_empty() {
            eprintln!("----- databases kept for a look: {}", databases.join(", "));
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // A panic (or an early return that skipped `finish`) still shows what the processes said.
        if !self.finished.load(Ordering::SeqCst) {
            eprintln!("[{}] ended without finish()", self.name);
            self.dump_logs();
        }
    }
}

/// Every test finishes well within two minutes; a hang is a failure, not a stuck CI job.
pub const TEST_LIMIT: Duration = Duration::from_secs(110);

/// `future`, failing if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result,
        Err(_) => Err(anyhow!("the test did not finish within {limit:?}")),
    }
}

async fn drop_stale_databases(admin: &PgPool) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'bf_e2e_%'")
            .fetch_all(admin)
            .await
        else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for row in rows {
            let name: String = row.get(0);
            let created = name
                .strip_prefix("bf_e2e_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            if created.is_some_and(|c| now.saturating_sub(c) > STALE_DATABASE_AGE.as_secs()) {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(admin)
                    .await;
            }
        }
    })
    .await;
}

/// Lowercase letters and digits.
pub fn random_suffix(len: usize) -> String {
    use rand::Rng as _;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A `backflow` process; killed (SIGKILL) when dropped. Its stdout and stderr go to a log
/// file in the test directory.
pub struct Proc {
    /// What the test calls it (`cp`, `worker-a`).
    pub name: String,
    /// Its log file.
    pub log: PathBuf,
    /// Its process id.
    pub pid: u32,
    child: Child,
}

impl Proc {
    /// Starts `backflow ARGS` in the test directory with `envs` added to a clean `BACKFLOW*`
    /// environment.
    pub fn spawn(env: &TestEnv, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<Proc> {
        Self::spawn_in(env, name, env.path(), args, envs)
    }

    /// Like [`Proc::spawn`], in the working directory `cwd` (created if missing): the tests of
    /// stateless workers give each its own directory and check it stays empty.
    pub fn spawn_in(
        env: &TestEnv,
        name: &str,
        cwd: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Proc> {
        std::fs::create_dir_all(cwd)?;
        let bin = backflow_bin()?;
        let mut n = 0;
        let log = loop {
            let candidate = env.path().join(if n == 0 {
                format!("{name}.log")
            } else {
                format!("{name}.{n}.log")
            });
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(&bin);
        command
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        // The runner's own settings and cloud credentials must not leak into the processes
        // under test; a test that wants object storage passes its own.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("BACKFLOW_") || key_text.starts_with("AWS_") {
                command.env_remove(&key);
            }
        }
        // Admin servers on any free port, so parallel tests never compete for 9090/9091.
        command
            .env("BACKFLOW__CONTROL_PLANE__ADMIN_LISTEN", "127.0.0.1:0")
            .env("BACKFLOW__WORKER__ADMIN_LISTEN", "127.0.0.1:0");
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} {}", bin.display(), args.join(" ")))?;
        let pid = child.id().unwrap_or_default();
        env.register_log(
            &format!("{name} (pid {pid}): backflow {}", args.join(" ")),
            &log,
        );
        Ok(Proc {
            name: name.to_owned(),
            log,
            pid,
            child,
        })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails with the log's tail if the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited early ({status}); its log ends with:\n{}",
                self.name,
                tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// SIGKILL, and waits until the process is gone.
    pub async fn kill9(&mut self) -> Result<()> {
        self.child.start_kill().ok();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .with_context(|| format!("{} did not die after SIGKILL", self.name))??;
        Ok(())
    }

    /// SIGTERM (through `kill(1)`, so the tests need no libc).
    pub async fn sigterm(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .context("running kill -TERM")?;
        ensure!(status.success(), "kill -TERM {} failed: {status}", self.pid);
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit: the process had nothing left to do.
    pub async fn stop(&mut self) -> Result<()> {
        self.sigterm().await?;
        let exit = self.wait_exit(Duration::from_secs(40)).await?;
        ensure!(
            exit.success(),
            "{} exited with {exit}:\n{}",
            self.name,
            tail(&self.log, 30)
        );
        Ok(())
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| format!("{} did not exit within {timeout:?}", self.name))?
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `backflow control-plane` on `127.0.0.1:port` with `store`, snapshots in the test
/// directory, and waits until it serves.
pub async fn start_control_plane(
    env: &TestEnv,
    name: &str,
    port: u16,
    store: &str,
    extra_args: &[&str],
    envs: &[(&str, &str)],
) -> Result<Proc> {
    let listen = format!("127.0.0.1:{port}");
    let snapshots = env.path().join("snapshots");
    let snapshots = snapshots.to_string_lossy().into_owned();
    let mut args = vec![
        "control-plane",
        "--listen",
        &listen,
        "--store",
        store,
        "--snapshots",
        &snapshots,
    ];
    args.extend_from_slice(extra_args);
    let mut proc = Proc::spawn(env, name, &args, envs)?;
    wait_serving(&mut proc, &listen, Duration::from_secs(30)).await?;
    Ok(proc)
}

/// A control plane on a SQLite store in the test directory, and its address.
pub async fn sqlite_control_plane(env: &TestEnv, envs: &[(&str, &str)]) -> Result<(Proc, String)> {
    let port = free_port()?;
    let store = format!("sqlite:{}", env.path().join("state.db").display());
    let cp = start_control_plane(env, "cp", port, &store, &[], envs).await?;
    Ok((cp, format!("127.0.0.1:{port}")))
}

/// The fields an INVALID_ARGUMENT status names in its `BadRequest` detail.
pub fn violated_fields(status: &tonic::Status) -> Result<Vec<String>> {
    use tonic_types::StatusExt as _;
    ensure!(
        status.code() == tonic::Code::InvalidArgument,
        "expected INVALID_ARGUMENT, got {status:?}"
    );
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .with_context(|| format!("no BadRequest detail in {status:?}"))?;
    Ok(bad
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect())
}

/// Starts `backflow standalone` on `127.0.0.1:port` with its data under the test directory.
pub async fn start_standalone(
    env: &TestEnv,
    name: &str,
    port: u16,
    workers: usize,
    envs: &[(&str, &str)],
) -> Result<Proc> {
    let listen = format!("127.0.0.1:{port}");
    let data = env.path().join(format!("{name}-data"));
    let data = data.to_string_lossy().into_owned();
    let workers = workers.to_string();
    let args = [
        "standalone",
        "--listen",
        &listen,
        "--data-dir",
        &data,
        "--workers",
        &workers,
    ];
    let mut proc = Proc::spawn(env, name, &args, envs)?;
    wait_serving(&mut proc, &listen, Duration::from_secs(30)).await?;
    Ok(proc)
}

/// Starts `backflow worker` against the control plane at `addr` (`127.0.0.1:port`).
pub fn start_worker(
    env: &TestEnv,
    name: &str,
    addr: &str,
    concurrency: usize,
    envs: &[(&str, &str)],
) -> Result<Proc> {
    let server = format!("http://{addr}");
    let concurrency = concurrency.to_string();
    Proc::spawn(
        env,
        name,
        &["worker", "--server", &server, "--concurrency", &concurrency],
        envs,
    )
}

/// Waits until the gRPC health check of the server at `addr` says SERVING.
pub async fn wait_serving(proc: &mut Proc, addr: &str, timeout: Duration) -> Result<()> {
    let channel = channel(addr)?;
    let mut health = HealthClient::new(channel);
    let deadline = Instant::now() + timeout;
    loop {
        proc.ensure_running()?;
        let check = health.check(HealthCheckRequest {
            service: String::new(),
        });
        if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(2), check).await {
            if response.into_inner().status() == ServingStatus::Serving {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not serve on {addr} within {timeout:?}; its log ends with:\n{}",
                proc.name,
                tail(&proc.log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC

/// Adds `authorization: Bearer …` when a token is set.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Auth with `token`, or none.
    pub fn new(token: Option<&str>) -> Result<Bearer> {
        Ok(Bearer(
            token
                .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
                .transpose()?,
        ))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A stub behind the bearer interceptor.
pub type Svc = InterceptedService<Channel, Bearer>;

/// A lazily connected channel to `addr` (`127.0.0.1:port`) that reconnects after restarts.
pub fn channel(addr: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .connect_lazy())
}

/// Every service of one control plane.
#[derive(Clone)]
pub struct Api {
    /// `127.0.0.1:port`.
    pub addr: String,
    /// SyncService.
    pub syncs: SyncServiceClient<Svc>,
    /// RunService.
    pub runs: RunServiceClient<Svc>,
    /// ConnectionService.
    pub connections: ConnectionServiceClient<Svc>,
    /// WorkerService.
    pub workers: WorkerServiceClient<Svc>,
    /// grpc.health.v1.
    pub health: HealthClient<Svc>,
}

impl Api {
    /// Stubs for the server at `addr`, sending `token` when set.
    pub fn new(addr: &str, token: Option<&str>) -> Result<Api> {
        let channel = channel(addr)?;
        let auth = Bearer::new(token)?;
        Ok(Api {
            addr: addr.to_owned(),
            syncs: SyncServiceClient::with_interceptor(channel.clone(), auth.clone()),
            runs: RunServiceClient::with_interceptor(channel.clone(), auth.clone()),
            connections: ConnectionServiceClient::with_interceptor(channel.clone(), auth.clone()),
            workers: WorkerServiceClient::with_interceptor(channel.clone(), auth.clone()),
            health: HealthClient::with_interceptor(channel, auth),
        })
    }

    /// Creates a `postgres` connection to `url`.
    pub async fn create_pg_connection(&self, id: &str, url: &str) -> Result<()> {
        self.create_connection(id, "postgres", serde_json::json!({ "url": url }))
            .await
    }

    /// Creates a connection of type `kind` with `config`.
    pub async fn create_connection(
        &self,
        id: &str,
        kind: &str,
        config: serde_json::Value,
    ) -> Result<()> {
        self.connections
            .clone()
            .create_connection(v1::CreateConnectionRequest {
                validate_only: false,
                connection_id: id.to_owned(),
                connection: Some(v1::Connection {
                    r#type: kind.into(),
                    config: Some(backflow_proto::json::struct_from_json(&config)),
                    ..Default::default()
                }),
            })
            .await
            .with_context(|| format!("CreateConnection {id}"))?;
        Ok(())
    }

    /// Creates sync `id`.
    pub async fn create_sync(&self, id: &str, sync: v1::Sync) -> Result<v1::Sync> {
        let response = self
            .syncs
            .clone()
            .create_sync(v1::CreateSyncRequest {
                sync_id: id.to_owned(),
                sync: Some(sync),
            })
            .await
            .with_context(|| format!("CreateSync {id}"))?;
        response
            .into_inner()
            .sync
            .ok_or_else(|| anyhow!("CreateSync {id} answered without a sync"))
    }

    /// Triggers sync `id` and returns the response.
    pub async fn trigger(&self, id: &str, request_id: &str) -> Result<v1::TriggerSyncResponse> {
        Ok(self
            .syncs
            .clone()
            .trigger_sync(v1::TriggerSyncRequest {
                name: format!("syncs/{id}"),
                full_resync: false,
                request_id: request_id.to_owned(),
            })
            .await
            .with_context(|| format!("TriggerSync {id}"))?
            .into_inner())
    }

    /// Triggers sync `id` and returns the new run's name.
    pub async fn trigger_new(&self, id: &str) -> Result<String> {
        let response = self.trigger(id, "").await?;
        ensure!(
            !response.coalesced,
            "the first trigger of {id} was coalesced"
        );
        let run = response
            .run
            .ok_or_else(|| anyhow!("TriggerSync {id} answered without a run"))?;
        Ok(run.name)
    }

    /// One run.
    pub async fn get_run(&self, name: &str) -> Result<v1::Run> {
        self.runs
            .clone()
            .get_run(v1::GetRunRequest {
                name: name.to_owned(),
            })
            .await
            .with_context(|| format!("GetRun {name}"))?
            .into_inner()
            .run
            .ok_or_else(|| anyhow!("GetRun {name} answered without a run"))
    }

    /// Every run of sync `id` (all pages).
    pub async fn list_runs(&self, sync_id: &str) -> Result<Vec<v1::Run>> {
        let mut runs = Vec::new();
        let mut page_token = String::new();
        for _ in 0..100 {
            let page = self
                .runs
                .clone()
                .list_runs(v1::ListRunsRequest {
                    sync: format!("syncs/{sync_id}"),
                    state: 0,
                    page_size: 1000,
                    page_token,
                })
                .await
                .context("ListRuns")?
                .into_inner();
            runs.extend(page.runs);
            if page.next_page_token.is_empty() {
                return Ok(runs);
            }
            page_token = page.next_page_token;
        }
        bail!("ListRuns kept returning pages")
    }
}

/// Whether a run can no longer change.
pub fn is_final(run: &v1::Run) -> bool {
    matches!(
        run.state(),
        v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
    )
}

/// One line about a run, for failure messages.
pub fn describe_run(run: &v1::Run) -> String {
    let c = run.counts.unwrap_or_default();
    let error = run
        .error
        .as_ref()
        .map(|e| format!(" error {}: {}", e.code, e.message))
        .unwrap_or_default();
    format!(
        "{} of {}: {:?} attempt {}/{} read {} added {} changed {} written {} failed {}{error}",
        run.name,
        run.sync,
        run.state(),
        run.attempt,
        run.max_attempts,
        c.read,
        c.added,
        c.changed,
        c.written,
        c.failed
    )
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Calls `check` every [`POLL`] until it returns `Some`, failing after `timeout` with `what`
/// and the last thing `check` said (its error, if any).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: impl Display, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout(timeout, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => last_error = Some(anyhow!("one check took longer than {timeout:?}")),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every run in `names` is final, and returns them in the same order. The error
/// of a timeout lists the runs that were not final yet.
pub async fn wait_final(api: &Api, names: &[String], timeout: Duration) -> Result<Vec<v1::Run>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut runs = Vec::with_capacity(names.len());
        let mut pending = Vec::new();
        let mut error = None;
        for name in names {
            match api.get_run(name).await {
                Ok(run) => {
                    if !is_final(&run) {
                        pending.push(describe_run(&run));
                    }
                    runs.push(run);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if error.is_none() && pending.is_empty() {
            return Ok(runs);
        }
        if Instant::now() >= deadline {
            let mut message = format!(
                "timed out after {timeout:?}: {} of {} runs not final",
                pending.len(),
                names.len()
            );
            for p in pending.iter().take(10) {
                message.push_str("\n  ");
                message.push_str(p);
            }
            if let Some(e) = error {
                message.push_str(&format!("\n  last error: {e:#}"));
            }
            bail!(message);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Fails unless every run succeeded.
pub fn ensure_succeeded(runs: &[v1::Run]) -> Result<()> {
    let bad: Vec<String> = runs
        .iter()
        .filter(|r| r.state() != v1::RunState::Succeeded)
        .map(describe_run)
        .collect();
    ensure!(
        bad.is_empty(),
        "{} of {} runs did not succeed:\n  {}",
        bad.len(),
        runs.len(),
        bad.join("\n  ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sync definitions

/// Columns of every source table.
pub const COLUMNS: &str = "id, name, score, active, updated_at";

/// A PG→PG upsert sync with `create_table`.
pub fn pg_sync(query: &str, destination: &str, batch_size: Option<u32>) -> v1::Sync {
    v1::Sync {
        source: Some(v1::SyncSource {
            connection: "connections/src".into(),
            query: query.to_owned(),
        }),
        primary_key: vec!["id".into()],
        destination: Some(v1::SyncDestination {
            connection: "connections/dst".into(),
            object: destination.to_owned(),
            mode: v1::SyncMode::Upsert as i32,
            create_table: true,
            ..Default::default()
        }),
        options: Some(v1::SyncOptions {
            batch_size,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `SELECT` of every column of `table`.
pub fn plain_query(table: &str) -> String {
    format!("SELECT {COLUMNS} FROM {table}")
}

/// A query over `table` that sleeps `secs` every `every` rows inside PostgreSQL, so a run takes
/// a known time whatever the machine's speed.
pub fn slow_query(table: &str, every: i64, secs: f64) -> String {
    format!(
        "SELECT s.id, s.name, s.score, s.active, s.updated_at FROM {table} s \
         CROSS JOIN LATERAL pg_sleep(CASE WHEN s.id % {every} = 0 THEN {secs} ELSE 0 END) AS z"
    )
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL data

/// Creates `table` with `rows` rows whose values depend on `seed` (NULL scores included).
pub async fn create_source_table(pool: &PgPool, table: &str, rows: i64, seed: i64) -> Result<()> {
    sqlx::query(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, name text NOT NULL, \
         score double precision, active boolean NOT NULL, updated_at timestamptz NOT NULL)"
    ))
    .execute(pool)
    .await
    .with_context(|| format!("creating {table}"))?;
    sqlx::query(&format!(
        "INSERT INTO {table} ({COLUMNS}) \
         SELECT g, 'name-' || g || '-' || md5(($1 * 1000003 + g)::text), \
                CASE WHEN g % 7 = 0 THEN NULL ELSE (g * $1) / 8.0 END, \
                (g + $1) % 3 = 0, \
                timestamptz '2024-01-01 00:00:00+00' + make_interval(secs => g * 37 + $1) \
         FROM generate_series(1, $2) AS g"
    ))
    .bind(seed)
    .bind(rows)
    .execute(pool)
    .await
    .with_context(|| format!("filling {table}"))?;
    Ok(())
}

/// Fails unless `destination` holds exactly the rows of `source` (same multiset of rows,
/// compared with EXCEPT ALL both ways, destination columns cast to the source's types).
pub async fn ensure_same_rows(pool: &PgPool, source: &str, destination: &str) -> Result<()> {
    let sql = format!(
        "WITH s AS (SELECT {COLUMNS} FROM {source}), \
              d AS (SELECT id::bigint AS id, name::text AS name, score::float8 AS score, \
                           active::boolean AS active, updated_at::timestamptz AS updated_at \
                    FROM {destination}) \
         SELECT (SELECT count(*) FROM s) AS source_rows, \
                (SELECT count(*) FROM d) AS destination_rows, \
                (SELECT count(*) FROM (SELECT * FROM s EXCEPT ALL SELECT * FROM d) x) AS missing, \
                (SELECT count(*) FROM (SELECT * FROM d EXCEPT ALL SELECT * FROM s) x) AS extra"
    );
    let row = sqlx::query(&sql)
        .fetch_one(pool)
        .await
        .with_context(|| format!("comparing {destination} with {source}"))?;
    let (s, d, missing, extra): (i64, i64, i64, i64) = (
        row.get("source_rows"),
        row.get("destination_rows"),
        row.get("missing"),
        row.get("extra"),
    );
    ensure!(
        s > 0 && s == d && missing == 0 && extra == 0,
        "{destination} differs from {source}: {s} source rows, {d} destination rows, {missing} \
         source rows missing or different, {extra} destination rows extra or different"
    );
    Ok(())
}

/// Rows in `table`.
pub async fn count_rows(pool: &PgPool, table: &str) -> Result<i64> {
    Ok(sqlx::query(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .with_context(|| format!("counting {table}"))?
        .get(0))
}

/// A data database of the test with schemas `src` and `dst`, and the connections `src` and
/// `dst` to it created on `api`.
pub async fn data_database(env: &TestEnv, api: &Api) -> Result<(String, PgPool)> {
    let url = env.create_database("data").await?;
    let pool = connect_pg(&url, 4).await?;
    sqlx::query("CREATE SCHEMA src").execute(&pool).await?;
    sqlx::query("CREATE SCHEMA dst").execute(&pool).await?;
    api.create_pg_connection("src", &url).await?;
    api.create_pg_connection("dst", &url).await?;
    Ok((url, pool))
}

/// Fails unless a run's counts are those of a first run over `rows` new rows.
pub fn ensure_first_run_counts(run: &v1::Run, rows: u64) -> Result<()> {
    let c = run.counts.unwrap_or_default();
    ensure!(
        c.read == rows
            && c.added == rows
            && c.changed == 0
            && c.unchanged == 0
            && c.removed == 0
            && c.written == rows
            && c.deleted == 0
            && c.failed == 0,
        "counts of {} are not those of a first run over {rows} rows: {c:?}",
        run.name
    );
    Ok(())
}

/// Changes `src.t` (made by `seed_source` with `rows` rows) by 10 updated, 5 deleted and 7
/// added rows, and returns the counts of the incremental run that must follow: the tests of
/// moving snapshots between workers all check that such a run applies exactly these changes.
pub async fn change_ten_five_seven(data: &PgPool, rows: u64) -> Result<v1::RunCounts> {
    sqlx::query("UPDATE src.t SET name = name || '-changed' WHERE id BETWEEN 101 AND 110")
        .execute(data)
        .await?;
    sqlx::query("DELETE FROM src.t WHERE id BETWEEN 201 AND 205")
        .execute(data)
        .await?;
    sqlx::query(
        "INSERT INTO src.t (id, name, score, active, updated_at) \
         SELECT g, 'new-' || g, g / 4.0, true, now() FROM generate_series(100001, 100007) g",
    )
    .execute(data)
    .await?;
    Ok(v1::RunCounts {
        read: rows - 5 + 7,
        added: 7,
        changed: 10,
        unchanged: rows - 10 - 5,
        removed: 5,
        written: 17,
        deleted: 5,
        failed: 0,
        skipped: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// The CLI

/// What a CLI invocation printed and how it ended.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Fails unless the command exited 0.
    pub fn ensure_ok(&self, what: &str) -> Result<()> {
        ensure!(
            self.code == 0,
            "`{what}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(())
    }
}

/// Runs `backflow --server http://ADDR ARGS` in the test directory (at most 60 s).
pub async fn run_cli(env: &TestEnv, addr: &str, args: &[&str]) -> Result<CliOutput> {
    run_cli_with_env(env, addr, args, &[]).await
}

/// [`run_cli`] with `envs` added to the environment (after the `BACKFLOW_*` clean-up).
pub async fn run_cli_with_env(
    env: &TestEnv,
    addr: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<CliOutput> {
    run_cli_at(env, &format!("http://{addr}"), args, envs).await
}

/// Runs `backflow --server SERVER ARGS` (SERVER a URL, such as `https://127.0.0.1:PORT`) with
/// `envs` added to an environment without the caller's `BACKFLOW_*` variables (at most 60 s).
pub async fn run_cli_at(
    env: &TestEnv,
    server: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<CliOutput> {
    let bin = backflow_bin()?;
    let mut command = Command::new(&bin);
    command
        .arg("--server")
        .arg(server)
        .args(args)
        .current_dir(env.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BACKFLOW_") {
            command.env_remove(&key);
        }
    }
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .with_context(|| format!("`backflow {}` did not finish within 60 s", args.join(" ")))?
        .with_context(|| format!("running backflow {}", args.join(" ")))?;
    Ok(CliOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP (admin ports, Jaeger's query API)

/// `GET url` over HTTP/1.0 on loopback (so the answer is never chunked): the status code and
/// the body.
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let host = parsed.host_str().context("no host")?;
    let port = parsed.port_or_known_default().context("no port")?;
    let mut path = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path = format!("{path}?{query}");
    }
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .with_context(|| format!("GET {url} did not answer within 30 s"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {url}: malformed answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("GET {url}: no status in `{head}`"))?;
    Ok((status, body.to_owned()))
}

/// The value of a test service's environment variable; fails naming `scripts/services.sh`
/// when it is missing, since these tests never skip.
pub fn service_env(var: &str) -> Result<String> {
    std::env::var(var).with_context(|| {
        format!(
            "{var} is not set: run `scripts/services.sh start` and \
             `eval \"$(scripts/services.sh env)\"` first"
        )
    })
}

/// Fails unless the most recent run has these (added, changed, removed) counts, every change
/// written or deleted and none failed: a re-run must move exactly the changed rows.
pub async fn ensure_last_run_counts(
    env: &TestEnv,
    addr: &str,
    kind: &str,
    (added, changed, removed): (u64, u64, u64),
) -> Result<()> {
    let list = run_cli(env, addr, &["runs", "list", "--output", "json"]).await?;
    list.ensure_ok("runs list --output json")?;
    let runs: serde_json::Value = serde_json::from_str(&list.stdout)?;
    let last = runs
        .as_array()
        .and_then(|r| r.first())
        .context("no runs listed")?;
    let c = &last["counts"];
    let n = |key: &str| c[key].as_u64().unwrap_or(0);
    ensure!(
        n("added") == added
            && n("changed") == changed
            && n("removed") == removed
            && n("written") == added + changed
            && n("deleted") == removed
            && n("failed") == 0,
        "{kind}: the last run's counts are {c}, expected {added} added, {changed} changed, \
         {removed} removed, all written or deleted"
    );
    Ok(())
}
