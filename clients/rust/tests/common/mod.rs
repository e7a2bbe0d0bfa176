//! A `backflow standalone` process of one test: its own data directory, its log, killed when
//! dropped. The binary is `$BACKFLOW_BIN`, else `backflow` next to the test executable
//! (`cargo build -p backflow --bin backflow` puts it there).
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Showing the server's log when a test fails is this module's job.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The `backflow` binary under test.
pub fn backflow_bin() -> Result<PathBuf> {
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
    ensure!(
        bin.is_file(),
        "the `backflow` binary is missing at {}: build it first with `cargo build -p backflow \
         --bin backflow`, or point BACKFLOW_BIN at one",
        bin.display()
    );
    Ok(bin)
}

/// A running `backflow standalone`.
pub struct Standalone {
    /// `http://127.0.0.1:PORT`, or `https://…` when the environment configures TLS.
    pub address: String,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Child,
}

impl Standalone {
    /// Starts on a port the server picks itself, and returns once it listens.
    pub async fn start(envs: &[(&str, &str)]) -> Result<Standalone> {
        Self::start_on("127.0.0.1:0", envs).await
    }

    /// Starts listening on `listen` (`127.0.0.1:PORT`), with `envs` added to an environment
    /// cleared of the runner's own `BACKFLOW*` settings.
    pub async fn start_on(listen: &str, envs: &[(&str, &str)]) -> Result<Standalone> {
        let bin = backflow_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("backflow-client-test-")
            .tempdir()?;
        let log = dir.path().join("standalone.log");
        let data = dir.path().join("data");
        let mut command = Command::new(&bin);
        command
            .args([
                "standalone",
                "--listen",
                listen,
                "--workers",
                "2",
                "--data-dir",
            ])
            .arg(&data)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .kill_on_drop(true)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BACKFLOW") {
                command.env_remove(&key);
            }
        }
        command.envs(envs.iter().copied());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} standalone", bin.display()))?;
        let stdout = child.stdout.take().context("standalone's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let address = match first {
            Ok(Ok(Some(line))) => line
                .split_whitespace()
                .find(|word| word.starts_with("http://") || word.starts_with("https://"))
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("standalone printed no address: {line}"))?,
            _ => bail!(
                "standalone did not say where it listens within 30 s; its log ends with:\n{}",
                tail(&log)
            ),
        };
        // Keep reading, so a later line on stdout never meets a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Standalone {
            address,
            dir,
            log,
            child,
        })
    }

    /// The test's directory, for source and destination files.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Passes `result` through; on failure prints the server's log first.
    pub fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            let exited = match self.child.try_wait() {
                Ok(Some(status)) => format!(" (it exited: {status})"),
                _ => String::new(),
            };
            eprintln!(
                "test failed: {e:#}\n----- standalone log{exited} -----\n{}",
                tail(&self.log)
            );
        }
        result
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
