//! `backflow run`: runs the syncs of a definition file in this process, with state (the
//! committed snapshot pointer of each sync) in a local directory. The embedded way to use the
//! engine without a control plane: development, CI jobs, the quickstart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use backflow_common::definitions::Definitions;
use backflow_engine::{Engine, RunInput, RunResult, SnapshotRef, SnapshotStore};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Options of `backflow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The definition file (`backflow.yaml`: connections and syncs; see the README).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Run only these syncs (default: all, in file order).
    #[arg(long = "sync")]
    syncs: Vec<String>,
    /// Where snapshots and the state file live.
    #[arg(long, default_value = ".backflow")]
    state_dir: PathBuf,
    /// Ignore snapshots and send every row.
    #[arg(long)]
    full_resync: bool,
    /// Print results as JSON instead of a table.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A human-readable table.
    Table,
    /// One JSON document.
    Json,
}

/// What survives between runs: the committed snapshot of each sync.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    syncs: BTreeMap<String, SnapshotRef>,
}

impl State {
    fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a Backflow state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes atomically (temp file + rename), so a crash never leaves a torn state file.
    fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct Outcome {
    sync: String,
    #[serde(flatten)]
    result: Option<RunResult>,
    error: Option<String>,
}

/// Runs the selected syncs one after the other; fails (non-zero exit) if any run failed.
pub async fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let definitions = Definitions::from_yaml(&text)
        .with_context(|| format!("invalid definition file {}", args.file.display()))?;
    for name in &args.syncs {
        if !definitions.syncs.iter().any(|s| &s.name == name) {
            bail!("no sync named `{name}` in {}", args.file.display());
        }
    }
    std::fs::create_dir_all(&args.state_dir)?;
    let state_path = args.state_dir.join("state.json");
    let mut state = State::load(&state_path)?;
    let engine = Engine::new(SnapshotStore::local(args.state_dir.join("snapshots"))?);

    let mut outcomes = Vec::new();
    for sync in &definitions.syncs {
        if !args.syncs.is_empty() && !args.syncs.contains(&sync.name) {
            continue;
        }
        let connection = |name: &str| {
            definitions
                .connection(name)
                .with_context(|| format!("no connection named `{name}`"))
        };
        let src = connection(&sync.source.connection)?;
        let dst = connection(&sync.destination.connection)?;
        let source = backflow_connectors::source(&src.kind, &src.config)
            .with_context(|| format!("connection `{}`", src.name))?;
        let destination = backflow_connectors::destination(&dst.kind, &dst.config)
            .with_context(|| format!("connection `{}`", dst.name))?;
        let spec = sync.to_spec();
        let run_id = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let result = engine
            .run(RunInput {
                run_id: &run_id,
                spec: &spec,
                source: source.as_ref(),
                destination: destination.as_ref(),
                previous: state.syncs.get(&sync.name),
                full_resync: args.full_resync,
                progress: None,
            })
            .await;
        match result {
            Ok(result) => {
                // Commit: the new snapshot becomes current, the old one is no longer needed.
                let old = state
                    .syncs
                    .insert(sync.name.clone(), result.snapshot.clone());
                state.save(&state_path)?;
                // A run that changed nothing keeps pointing at the same file.
                if let Some(old) = old.filter(|old| old.path != result.snapshot.path) {
                    engine.snapshots().delete(&old).await.ok();
                }
                // Committed: the journaled keys are accounted for. Left behind, they would
                // only make the next run resend them.
                engine.snapshots().clear_journal(&result.journal).await.ok();
                outcomes.push(Outcome {
                    sync: sync.name.clone(),
                    result: Some(result),
                    error: None,
                });
            }
            Err(e) => outcomes.push(Outcome {
                sync: sync.name.clone(),
                result: None,
                error: Some(e.to_string()),
            }),
        }
    }

    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&outcomes)?),
        Output::Table => print_table(&outcomes),
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} syncs failed", outcomes.len());
    }
    Ok(())
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<24} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8}",
        "sync",
        "read",
        "added",
        "changed",
        "unchanged",
        "removed",
        "written",
        "deleted",
        "failed",
        "seconds"
    );
    for o in outcomes {
        match (&o.result, &o.error) {
            (Some(r), _) => {
                let c = &r.counts;
                println!(
                    "{:<24} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8.2}",
                    o.sync,
                    c.read,
                    c.added,
                    c.changed,
                    c.unchanged,
                    c.removed,
                    c.written,
                    c.deleted,
                    c.failed,
                    r.timings.total.as_secs_f64()
                );
                for rejected in r.rejected.iter().take(10) {
                    println!(
                        "  rejected {}{}: {}",
                        rejected.key,
                        rejected
                            .column
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        rejected.message
                    );
                }
            }
            (None, Some(e)) => println!("{:<24} failed: {e}", o.sync),
            (None, None) => {}
        }
    }
}
