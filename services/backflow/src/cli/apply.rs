//! `backflow apply -f FILE [--prune] [--dry-run]`: converges the control plane to a definition
//! file. Connections first, then syncs (a sync after the one it runs after), then, with
//! `--prune`, deletes of what the file no longer names: syncs first, then connections.
//!
//! The plan is pure ([`plan`]): it compares the file with what the server returned, ignoring
//! the fields the server sets (name, times, paused, last run) and the spellings that mean the
//! same (`app_db` and `connections/app_db`; an unset option and its default).
//!
//! Nothing is written before the whole file passed the server's checks ([`check_all`]): each
//! connection through the API's validate-only calls, each sync through the control plane's
//! own sync checks ([`backflow_control_plane::validate`]) against the server's state with the
//! file laid over it, including the one-writer-per-object rule. So a file with one bad sync
//! creates no connection either.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use backflow_common::definitions::{parse_interval, ConnectionDef, Definitions, SyncDef};
use backflow_connector_core::secret::redact_config;
use backflow_control_plane::convert::sync_definition_from_proto;
use backflow_control_plane::model::SyncDefinition;
use backflow_control_plane::validate::{target_conflict, validate_sync, Catalog, ConnectionRef};
use backflow_engine::{SyncMode, SyncOptions};
use backflow_proto::json::{struct_from_json, struct_to_json};
use backflow_proto::v1;
use clap::Args;

use super::client::{describe_status, resource_name, Client, Collection, RpcResult as _};
use super::output::id;
use super::Outcome;

/// Options of `backflow apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The definition file (`backflow.yaml` format).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Also delete the syncs and connections on the server that the file does not name.
    #[arg(long)]
    pub prune: bool,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Attempts of a run when a sync does not say (the API's documented default).
const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// What kind of object a step touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A connection.
    Connection,
    /// A sync.
    Sync,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Connection => "connection",
            Kind::Sync => "sync",
        })
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The server lacks it: create it.
    Create(Desired),
    /// The server's differs in these fields: replace it whole.
    Update(Desired, Vec<&'static str>),
    /// The server's equals it except, perhaps, in the literal secrets the server shows only
    /// masked: [`check_all`] asks the server (validate-only) and makes it `Update` or
    /// `Unchanged`.
    Verify(Desired),
    /// The server's is the same.
    Unchanged,
    /// The file no longer names it (only with `--prune`).
    Delete,
}

/// The object as the file defines it.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// A connection, named `connections/{id}`.
    Connection(v1::Connection),
    /// A sync, named `syncs/{id}`.
    Sync(Box<v1::Sync>),
}

/// One object's step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Connection or sync.
    pub kind: Kind,
    /// Its id (`customer_scores`).
    pub id: String,
    /// What to do.
    pub action: Action,
}

impl Step {
    /// The line printed for this step: `created sync customer_scores`, or with `dry_run`
    /// `would create sync customer_scores`.
    pub fn line(&self, dry_run: bool) -> String {
        let Step { kind, id, action } = self;
        match (action, dry_run) {
            (Action::Unchanged, _) => format!("unchanged {kind} {id}"),
            (Action::Create(_), false) => format!("created {kind} {id}"),
            (Action::Create(_), true) => format!("would create {kind} {id}"),
            (Action::Update(..), false) => format!("updated {kind} {id}"),
            (Action::Update(_, fields), true) => {
                format!("would update {kind} {id} ({})", fields.join(", "))
            }
            (Action::Delete, false) => format!("deleted {kind} {id}"),
            (Action::Delete, true) => format!("would delete {kind} {id}"),
            (Action::Verify(_), _) => format!("unverified {kind} {id}"),
        }
    }
}

/// A connection of the file as the API's message.
pub fn connection_to_proto(def: &ConnectionDef) -> v1::Connection {
    v1::Connection {
        name: format!("connections/{}", def.name),
        r#type: def.kind.clone(),
        config: Some(struct_from_json(&def.config)),
        ..Default::default()
    }
}

fn mode_to_proto(mode: SyncMode) -> v1::SyncMode {
    match mode {
        SyncMode::Upsert => v1::SyncMode::Upsert,
        SyncMode::Insert => v1::SyncMode::Insert,
        SyncMode::Update => v1::SyncMode::Update,
        SyncMode::Mirror => v1::SyncMode::Mirror,
    }
}

/// A sync of the file as the API's message, every reference a full resource name.
pub fn sync_to_proto(def: &SyncDef) -> anyhow::Result<v1::Sync> {
    let schedule = match &def.schedule {
        None => None,
        Some(s) => {
            let kind = match (&s.every, &s.cron, &s.after) {
                (Some(every), None, None) => {
                    let interval = parse_interval(every).with_context(|| {
                        format!(
                            "schedule.every: {} is not an interval like 30s, 15m, 2h or 1d",
                            backflow_connector_core::quoted(every)
                        )
                    })?;
                    v1::schedule::Kind::Every(prost_types::Duration {
                        seconds: i64::try_from(interval.as_secs())
                            .context("schedule.every: too long")?,
                        nanos: 0,
                    })
                }
                (None, Some(cron), None) => v1::schedule::Kind::Cron(cron.trim().to_owned()),
                (None, None, Some(after)) => {
                    v1::schedule::Kind::AfterSync(format!("syncs/{after}"))
                }
                _ => bail!("schedule: give exactly one of `every`, `cron` or `after`"),
            };
            Some(v1::Schedule { kind: Some(kind) })
        }
    };
    let o = &def.options;
    Ok(v1::Sync {
        name: format!("syncs/{}", def.name),
        source: Some(v1::SyncSource {
            connection: format!("connections/{}", def.source.connection),
            query: def.source.query.clone(),
        }),
        primary_key: def.primary_key.clone(),
        destination: Some(v1::SyncDestination {
            connection: format!("connections/{}", def.destination.connection),
            object: def.destination.table.clone(),
            mode: mode_to_proto(def.destination.mode) as i32,
            create_table: def.destination.create_table,
            shared: def.destination.shared,
        }),
        mappings: def
            .mappings
            .iter()
            .map(|m| v1::Mapping {
                from: m.from.clone(),
                to: m.to.clone(),
            })
            .collect(),
        schedule,
        options: Some(v1::SyncOptions {
            allow_empty_source: Some(o.allow_empty_source),
            max_delete_fraction: Some(o.max_delete_fraction),
            max_rejected_rows: Some(
                u64::try_from(o.max_rejected_rows)
                    .context("options.max_rejected_rows: too large")?,
            ),
            batch_size: Some(
                u32::try_from(o.batch_size)
                    .context("options.batch_size: at most 4294967295 rows")?,
            ),
            max_attempts: None,
        }),
        ..Default::default()
    })
}

/// `name` as `collection/id`, whichever way it was written.
fn full(collection: &str, name: &str) -> String {
    if name.starts_with(&format!("{collection}/")) {
        name.to_owned()
    } else {
        format!("{collection}/{name}")
    }
}

/// The fields of two connections that differ, ignoring what the server sets. Configs compare
/// as the server shows them, literal secrets masked (see [`hides_secrets`]).
pub fn connection_changes(desired: &v1::Connection, actual: &v1::Connection) -> Vec<&'static str> {
    let config = |c: &v1::Connection| {
        redact_config(&c.config.as_ref().map(struct_to_json).unwrap_or_default())
    };
    let empty_as_object = |v: serde_json::Value| {
        if v.is_null() {
            serde_json::json!({})
        } else {
            v
        }
    };
    let mut changes = Vec::new();
    if desired.r#type != actual.r#type {
        changes.push("type");
    }
    if empty_as_object(config(desired)) != empty_as_object(config(actual)) {
        changes.push("config");
    }
    changes
}

/// Whether `desired` holds literal secrets (a password inside a URL, a literal `password`)
/// that the server shows only masked, so that comparing with the server's copy cannot tell
/// whether they changed.
pub fn hides_secrets(desired: &v1::Connection) -> bool {
    let config = desired
        .config
        .as_ref()
        .map(struct_to_json)
        .unwrap_or_default();
    redact_config(&config) != config
}

/// Options with every default filled in, so unset and default compare equal.
fn options_with_defaults(o: Option<&v1::SyncOptions>) -> v1::SyncOptions {
    let o = o.copied().unwrap_or_default();
    let d = SyncOptions::default();
    v1::SyncOptions {
        allow_empty_source: Some(o.allow_empty_source.unwrap_or(d.allow_empty_source)),
        max_delete_fraction: Some(o.max_delete_fraction.unwrap_or(d.max_delete_fraction)),
        max_rejected_rows: Some(
            o.max_rejected_rows
                .unwrap_or(u64::try_from(d.max_rejected_rows).unwrap_or(u64::MAX)),
        ),
        batch_size: Some(
            o.batch_size
                .unwrap_or(u32::try_from(d.batch_size).unwrap_or(u32::MAX)),
        ),
        max_attempts: Some(o.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS)),
    }
}

/// A sync with the server-set fields cleared and references spelled in full.
fn comparable(s: &v1::Sync) -> v1::Sync {
    let mut s = s.clone();
    s.name.clear();
    s.paused = false;
    s.create_time = None;
    s.update_time = None;
    s.last_run.clear();
    let mut source = s.source.take().unwrap_or_default();
    source.connection = full("connections", &source.connection);
    s.source = Some(source);
    let mut destination = s.destination.take().unwrap_or_default();
    destination.connection = full("connections", &destination.connection);
    s.destination = Some(destination);
    s.schedule = s.schedule.take().and_then(|schedule| {
        schedule.kind.map(|kind| v1::Schedule {
            kind: Some(match kind {
                v1::schedule::Kind::AfterSync(after) => {
                    v1::schedule::Kind::AfterSync(full("syncs", &after))
                }
                v1::schedule::Kind::Cron(cron) => v1::schedule::Kind::Cron(cron.trim().to_owned()),
                every @ v1::schedule::Kind::Every(_) => every,
            }),
        })
    });
    s.options = Some(options_with_defaults(s.options.as_ref()));
    s
}

/// The fields of two syncs that differ, ignoring what the server sets.
pub fn sync_changes(desired: &v1::Sync, actual: &v1::Sync) -> Vec<&'static str> {
    let (d, a) = (comparable(desired), comparable(actual));
    let mut changes = Vec::new();
    if d.source != a.source {
        changes.push("source");
    }
    if d.primary_key != a.primary_key {
        changes.push("primary_key");
    }
    if d.destination != a.destination {
        changes.push("destination");
    }
    if d.mappings != a.mappings {
        changes.push("mappings");
    }
    if d.schedule != a.schedule {
        changes.push("schedule");
    }
    if d.options != a.options {
        changes.push("options");
    }
    changes
}

/// The file's syncs, each after the sync it runs after (file order otherwise).
fn syncs_in_dependency_order(defs: &Definitions) -> Vec<&SyncDef> {
    let by_name: HashMap<&str, &SyncDef> =
        defs.syncs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut done: HashSet<&str> = HashSet::new();
    let mut order = Vec::with_capacity(defs.syncs.len());
    for sync in &defs.syncs {
        // Walk up the `after` chain, then emit it from the top down.
        let mut chain = Vec::new();
        let mut next = Some(sync);
        while let Some(s) = next {
            if done.contains(s.name.as_str()) || chain.iter().any(|c: &&SyncDef| c.name == s.name) {
                break;
            }
            chain.push(s);
            next = s
                .schedule
                .as_ref()
                .and_then(|schedule| schedule.after.as_deref())
                .and_then(|after| by_name.get(after).copied());
        }
        for s in chain.into_iter().rev() {
            done.insert(s.name.as_str());
            order.push(s);
        }
    }
    order
}

/// Server syncs to delete, each before the syncs it runs after.
fn deletes_in_dependency_order(mut doomed: Vec<&v1::Sync>) -> Vec<&v1::Sync> {
    let after = |s: &v1::Sync| match s.schedule.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(v1::schedule::Kind::AfterSync(after)) => Some(full("syncs", after)),
        _ => None,
    };
    let mut order = Vec::with_capacity(doomed.len());
    while !doomed.is_empty() {
        // A sync nothing left runs after goes first; on a (server-side) loop, take the first.
        let free = doomed
            .iter()
            .position(|s| {
                !doomed
                    .iter()
                    .any(|o| after(o).as_deref() == Some(s.name.as_str()))
            })
            .unwrap_or(0);
        order.push(doomed.remove(free));
    }
    order
}

/// The steps that converge the server (`connections`, `syncs`) to `defs`.
pub fn plan(
    defs: &Definitions,
    connections: &[v1::Connection],
    syncs: &[v1::Sync],
    prune: bool,
) -> anyhow::Result<Vec<Step>> {
    let server_connections: HashMap<String, &v1::Connection> = connections
        .iter()
        .map(|c| (id(&c.name).to_owned(), c))
        .collect();
    let server_syncs: HashMap<String, &v1::Sync> =
        syncs.iter().map(|s| (id(&s.name).to_owned(), s)).collect();
    let mut steps = Vec::new();

    for def in &defs.connections {
        let desired = connection_to_proto(def);
        let action = match server_connections.get(&def.name) {
            None => Action::Create(Desired::Connection(desired)),
            Some(actual) => {
                let changes = connection_changes(&desired, actual);
                if !changes.is_empty() {
                    Action::Update(Desired::Connection(desired), changes)
                } else if hides_secrets(&desired) {
                    Action::Verify(Desired::Connection(desired))
                } else {
                    Action::Unchanged
                }
            }
        };
        steps.push(Step {
            kind: Kind::Connection,
            id: def.name.clone(),
            action,
        });
    }

    for def in syncs_in_dependency_order(defs) {
        let desired = sync_to_proto(def).with_context(|| format!("sync {}", def.name))?;
        let action = match server_syncs.get(&def.name) {
            None => Action::Create(Desired::Sync(Box::new(desired))),
            Some(actual) => {
                let changes = sync_changes(&desired, actual);
                if changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Update(Desired::Sync(Box::new(desired)), changes)
                }
            }
        };
        steps.push(Step {
            kind: Kind::Sync,
            id: def.name.clone(),
            action,
        });
    }

    if prune {
        let named_syncs: HashSet<&str> = defs.syncs.iter().map(|s| s.name.as_str()).collect();
        let doomed = syncs
            .iter()
            .filter(|s| !named_syncs.contains(id(&s.name)))
            .collect();
        for sync in deletes_in_dependency_order(doomed) {
            steps.push(Step {
                kind: Kind::Sync,
                id: id(&sync.name).to_owned(),
                action: Action::Delete,
            });
        }
        for connection in connections {
            if defs.connection(id(&connection.name)).is_none() {
                steps.push(Step {
                    kind: Kind::Connection,
                    id: id(&connection.name).to_owned(),
                    action: Action::Delete,
                });
            }
        }
    }
    Ok(steps)
}

/// Every connection on the server, all pages.
pub async fn list_all_connections(client: &mut Client) -> anyhow::Result<Vec<v1::Connection>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .connections
            .list_connections(v1::ListConnectionsRequest {
                page_size: 1000,
                page_token,
            })
            .await
            .rpc()
            .context("listing connections")?;
        all.extend(page.connections);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// Every sync on the server, all pages.
pub async fn list_all_syncs(client: &mut Client) -> anyhow::Result<Vec<v1::Sync>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .syncs
            .list_syncs(v1::ListSyncsRequest {
                page_size: 1000,
                page_token,
            })
            .await
            .rpc()
            .context("listing syncs")?;
        all.extend(page.syncs);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// What a sync check sees: the server's connections and syncs with the file laid over them
/// (the file's connections and syncs as they will be once applied).
struct PlannedState {
    /// Connection id → type and config (the server's configs have their secrets masked,
    /// which the checks do not read).
    connections: HashMap<String, (String, serde_json::Value)>,
    /// Every sync id that will exist when syncs are written (pruned ones are deleted last).
    syncs: HashSet<String>,
    /// Sync id → definition, for the one-writer-per-object rule: the file's for the syncs it
    /// names, the server's for the others.
    definitions: Vec<(String, SyncDefinition)>,
}

impl Catalog for PlannedState {
    fn connection(&self, id: &str) -> Option<ConnectionRef<'_>> {
        self.connections
            .get(id)
            .map(|(kind, config)| ConnectionRef { kind, config })
    }

    fn has_sync(&self, id: &str) -> bool {
        self.syncs.contains(id)
    }
}

impl PlannedState {
    fn new(defs: &Definitions, connections: &[v1::Connection], syncs: &[v1::Sync]) -> Self {
        let config = |c: &v1::Connection| c.config.as_ref().map(struct_to_json).unwrap_or_default();
        let mut state = PlannedState {
            connections: connections
                .iter()
                .map(|c| (id(&c.name).to_owned(), (c.r#type.clone(), config(c))))
                .collect(),
            syncs: syncs.iter().map(|s| id(&s.name).to_owned()).collect(),
            definitions: Vec::new(),
        };
        for c in &defs.connections {
            state
                .connections
                .insert(c.name.clone(), (c.kind.clone(), c.config.clone()));
        }
        state
            .syncs
            .extend(defs.syncs.iter().map(|s| s.name.clone()));
        for s in syncs {
            let sync_id = id(&s.name);
            if defs.syncs.iter().any(|d| d.name == sync_id) {
                continue;
            }
            if let Ok(d) = sync_definition_from_proto(sync_id, s) {
                state.definitions.push((sync_id.to_owned(), d));
            }
        }
        for d in &defs.syncs {
            if let Ok(desired) = sync_to_proto(d) {
                if let Ok(definition) = sync_definition_from_proto(&d.name, &desired) {
                    state.definitions.push((d.name.clone(), definition));
                }
            }
        }
        state
    }

    /// The problems of the file's sync `sync` (to be stored as `sync_id`), as the server
    /// would report them.
    fn check_sync(&self, sync_id: &str, sync: &v1::Sync) -> Option<String> {
        let definition = match validate_sync(sync_id, sync, self) {
            Ok(d) => d,
            Err(e) => return Some(describe_status(&tonic::Status::from(e))),
        };
        let destination = self.connection(&definition.destination_connection)?;
        let others = self
            .definitions
            .iter()
            .map(|(other, d)| (other.as_str(), d));
        target_conflict(sync_id, &definition, destination, others)
            .err()
            .map(|e| format!("failed precondition: {e}"))
    }
}

/// Checks every step of `steps` before anything is written, and resolves the
/// [`Action::Verify`] steps: connections through the API's validate-only calls (the server's
/// own connector checks; nothing is stored), syncs against the server's state with the file
/// laid over it. Returns one line per problem, `connection app_db: …` or `sync scores: …`;
/// empty when the file may be applied.
pub async fn check_all(
    client: &mut Client,
    steps: &mut [Step],
    defs: &Definitions,
    connections: &[v1::Connection],
    syncs: &[v1::Sync],
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for step in steps.iter_mut() {
        let result = match &step.action {
            Action::Create(Desired::Connection(c)) => client
                .connections
                .create_connection(v1::CreateConnectionRequest {
                    connection_id: step.id.clone(),
                    connection: Some(c.clone()),
                    validate_only: true,
                })
                .await
                .map(|_| ()),
            Action::Update(Desired::Connection(c), _) => client
                .connections
                .update_connection(v1::UpdateConnectionRequest {
                    connection: Some(c.clone()),
                    update_mask: None,
                    validate_only: true,
                })
                .await
                .map(|_| ()),
            Action::Verify(Desired::Connection(c)) => {
                let would_be = client
                    .connections
                    .update_connection(v1::UpdateConnectionRequest {
                        connection: Some(c.clone()),
                        update_mask: None,
                        validate_only: true,
                    })
                    .await;
                match would_be {
                    Ok(response) => {
                        let stored_time = connections
                            .iter()
                            .find(|s| id(&s.name) == step.id)
                            .and_then(|s| s.update_time);
                        let would_be_time =
                            response.into_inner().connection.and_then(|c| c.update_time);
                        // An update that changes nothing keeps `update_time`.
                        step.action = if would_be_time.is_some() && would_be_time == stored_time {
                            Action::Unchanged
                        } else {
                            Action::Update(Desired::Connection(c.clone()), vec!["config"])
                        };
                        Ok(())
                    }
                    Err(status) => Err(status),
                }
            }
            _ => Ok(()),
        };
        if let Err(status) = result {
            problems.push(format!(
                "{} {}: {}",
                step.kind,
                step.id,
                describe_status(&status)
            ));
        }
    }
    let state = PlannedState::new(defs, connections, syncs);
    for step in steps.iter() {
        if let Action::Create(Desired::Sync(s)) | Action::Update(Desired::Sync(s), _) = &step.action
        {
            if let Some(problem) = state.check_sync(&step.id, s) {
                problems.push(format!("{} {}: {problem}", step.kind, step.id));
            }
        }
    }
    Ok(problems)
}

/// Carries out one step.
async fn execute(client: &mut Client, step: &Step) -> anyhow::Result<()> {
    match (&step.action, step.kind) {
        (Action::Unchanged, _) => {}
        (Action::Verify(_), _) => bail!("not checked against the server; nothing was written"),
        (Action::Create(Desired::Connection(c)), _) => {
            client
                .connections
                .create_connection(v1::CreateConnectionRequest {
                    connection_id: step.id.clone(),
                    connection: Some(c.clone()),
                    validate_only: false,
                })
                .await
                .rpc()?;
        }
        (Action::Update(Desired::Connection(c), _), _) => {
            client
                .connections
                .update_connection(v1::UpdateConnectionRequest {
                    connection: Some(c.clone()),
                    update_mask: None,
                    validate_only: false,
                })
                .await
                .rpc()?;
        }
        (Action::Create(Desired::Sync(s)), _) => {
            client
                .syncs
                .create_sync(v1::CreateSyncRequest {
                    sync_id: step.id.clone(),
                    sync: Some(s.as_ref().clone()),
                })
                .await
                .rpc()?;
        }
        (Action::Update(Desired::Sync(s), _), _) => {
            client
                .syncs
                .update_sync(v1::UpdateSyncRequest {
                    sync: Some(s.as_ref().clone()),
                    update_mask: None,
                })
                .await
                .rpc()?;
        }
        (Action::Delete, Kind::Sync) => {
            client
                .syncs
                .delete_sync(v1::DeleteSyncRequest {
                    name: resource_name(Collection::Syncs, &step.id)?,
                })
                .await
                .rpc()?;
        }
        (Action::Delete, Kind::Connection) => {
            client
                .connections
                .delete_connection(v1::DeleteConnectionRequest {
                    name: resource_name(Collection::Connections, &step.id)?,
                })
                .await
                .rpc()?;
        }
    }
    Ok(())
}

/// Reads and validates the definition file; its errors name the file, key and line.
pub fn read_definitions(path: &std::path::Path) -> anyhow::Result<Definitions> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Definitions::from_yaml(&text).with_context(|| path.display().to_string())
}

/// `backflow apply`.
pub async fn run(
    client: &mut Client,
    args: &ApplyArgs,
    defs: &Definitions,
) -> anyhow::Result<Outcome> {
    let connections = list_all_connections(client).await?;
    let syncs = list_all_syncs(client).await?;
    let mut steps = plan(defs, &connections, &syncs, args.prune)?;
    let problems = check_all(client, &mut steps, defs, &connections, &syncs).await?;
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        eprintln!(
            "error: {}: the file has the errors above",
            if args.dry_run {
                "apply would change nothing"
            } else {
                "nothing was applied"
            }
        );
        return Ok(Outcome::Failed);
    }
    let mut failed = false;
    for step in &steps {
        if step.action == Action::Delete && failed {
            // Deleting after a failed create or update could leave less than before.
            continue;
        }
        if args.dry_run || step.action == Action::Unchanged {
            println!("{}", step.line(args.dry_run));
            continue;
        }
        match execute(client, step).await {
            Ok(()) => println!("{}", step.line(false)),
            Err(e) => {
                failed = true;
                eprintln!("error: {} {}: {e:#}", step.kind, step.id);
            }
        }
    }
    if failed {
        if args.prune && steps.iter().any(|s| s.action == Action::Delete) {
            eprintln!("error: nothing was pruned because of the errors above");
        }
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
connections:
  - name: warehouse
    type: files
    config: { tables: { scores: ./data/scores.parquet } }
  - name: app_db
    type: postgres
    config:
      url: postgres://app@127.0.0.1:5432/app
      password: ${env:APP_DB_PASSWORD}
      port: 5432
syncs:
  - name: totals
    source: { connection: warehouse, query: "SELECT customer_id, sum(ltv) AS ltv FROM scores GROUP BY 1" }
    primary_key: [customer_id]
    destination: { connection: app_db, table: public.totals, mode: mirror }
    schedule: { after: customer_scores }
    options: { allow_empty_source: true, max_delete_fraction: 0.1, max_rejected_rows: 50, batch_size: 1000 }
  - name: customer_scores
    source: { connection: warehouse, query: "SELECT customer_id, churn_risk, ltv FROM scores WHERE ltv > 0" }
    primary_key: [customer_id]
    destination: { connection: app_db, table: public.customer_scores, mode: upsert, create_table: true }
    mappings: [ { from: churn_risk, to: churn_risk_score } ]
    schedule: { every: 15m }
  - name: hourly
    source: { connection: warehouse, query: "SELECT 1 AS id" }
    primary_key: [id]
    destination: { connection: app_db, table: hourly, mode: insert }
    schedule: { cron: "0 * * * *" }
  - name: manual
    source: { connection: warehouse, query: "SELECT 1 AS id" }
    primary_key: [id]
    destination: { connection: app_db, collection: manual, mode: update }
"#;

    fn defs() -> Definitions {
        Definitions::from_yaml(FILE).unwrap()
    }

    fn def(name: &str) -> SyncDef {
        defs().syncs.into_iter().find(|s| s.name == name).unwrap()
    }

    /// What a server would return: bare ids for references, every default filled in,
    /// its own fields set.
    fn as_server_returns(mut s: v1::Sync) -> v1::Sync {
        let source = s.source.as_mut().unwrap();
        source.connection = id(&source.connection).to_owned();
        let destination = s.destination.as_mut().unwrap();
        destination.connection = id(&destination.connection).to_owned();
        if let Some(v1::schedule::Kind::AfterSync(after)) =
            s.schedule.as_mut().and_then(|s| s.kind.as_mut())
        {
            *after = id(after).to_owned();
        }
        s.options = Some(options_with_defaults(s.options.as_ref()));
        s.paused = true;
        s.last_run = "runs/0193".into();
        s.create_time = Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        });
        s.update_time = s.create_time;
        s
    }

    #[test]
    fn syncs_convert_with_every_field() {
        let s = sync_to_proto(&def("customer_scores")).unwrap();
        assert_eq!(
            s,
            v1::Sync {
                name: "syncs/customer_scores".into(),
                source: Some(v1::SyncSource {
                    connection: "connections/warehouse".into(),
                    query: "SELECT customer_id, churn_risk, ltv FROM scores WHERE ltv > 0".into(),
                }),
                primary_key: vec!["customer_id".into()],
                destination: Some(v1::SyncDestination {
                    connection: "connections/app_db".into(),
                    object: "public.customer_scores".into(),
                    mode: v1::SyncMode::Upsert as i32,
                    create_table: true,
                    shared: false,
                }),
                mappings: vec![v1::Mapping {
                    from: "churn_risk".into(),
                    to: "churn_risk_score".into()
                }],
                schedule: Some(v1::Schedule {
                    kind: Some(v1::schedule::Kind::Every(prost_types::Duration {
                        seconds: 900,
                        nanos: 0
                    }))
                }),
                options: Some(v1::SyncOptions {
                    allow_empty_source: Some(false),
                    max_delete_fraction: Some(0.5),
                    max_rejected_rows: Some(10_000),
                    batch_size: Some(8192),
                    max_attempts: None,
                }),
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_schedule_kind_and_mode_converts() {
        let totals = sync_to_proto(&def("totals")).unwrap();
        assert_eq!(
            totals.schedule.unwrap().kind,
            Some(v1::schedule::Kind::AfterSync(
                "syncs/customer_scores".into()
            ))
        );
        assert_eq!(
            totals.destination.as_ref().unwrap().mode(),
            v1::SyncMode::Mirror
        );
        assert!(!totals.destination.unwrap().create_table);
        assert_eq!(
            totals.options,
            Some(v1::SyncOptions {
                allow_empty_source: Some(true),
                max_delete_fraction: Some(0.1),
                max_rejected_rows: Some(50),
                batch_size: Some(1000),
                max_attempts: None,
            })
        );
        let hourly = sync_to_proto(&def("hourly")).unwrap();
        assert_eq!(
            hourly.schedule.unwrap().kind,
            Some(v1::schedule::Kind::Cron("0 * * * *".into()))
        );
        assert_eq!(hourly.destination.unwrap().mode(), v1::SyncMode::Insert);
        let manual = sync_to_proto(&def("manual")).unwrap();
        assert_eq!(manual.schedule, None);
        let destination = manual.destination.unwrap();
        assert_eq!(destination.mode(), v1::SyncMode::Update);
        assert_eq!(destination.object, "manual");
        assert!(manual.mappings.is_empty());
    }

    #[test]
    fn connections_convert_with_their_config() {
        let c = connection_to_proto(defs().connection("app_db").unwrap());
        assert_eq!(c.name, "connections/app_db");
        assert_eq!(c.r#type, "postgres");
        let config = struct_to_json(c.config.as_ref().unwrap());
        assert_eq!(config["password"], "${env:APP_DB_PASSWORD}");
        assert_eq!(config["port"], 5432);
    }

    #[test]
    fn an_empty_server_gets_everything_created_connections_first_and_after_in_order() {
        let steps = plan(&defs(), &[], &[], true).unwrap();
        let lines: Vec<String> = steps.iter().map(|s| s.line(false)).collect();
        assert_eq!(
            lines,
            [
                "created connection warehouse",
                "created connection app_db",
                "created sync customer_scores",
                "created sync totals",
                "created sync hourly",
                "created sync manual",
            ]
        );
        let dry: Vec<String> = steps.iter().map(|s| s.line(true)).collect();
        assert_eq!(dry[0], "would create connection warehouse");
    }

    fn server_state() -> (Vec<v1::Connection>, Vec<v1::Sync>) {
        let d = defs();
        let connections = d
            .connections
            .iter()
            .map(|c| {
                let mut c = connection_to_proto(c);
                c.create_time = Some(prost_types::Timestamp {
                    seconds: 5,
                    nanos: 0,
                });
                c
            })
            .collect();
        let syncs = d
            .syncs
            .iter()
            .map(|s| as_server_returns(sync_to_proto(s).unwrap()))
            .collect();
        (connections, syncs)
    }

    #[test]
    fn what_the_server_already_has_is_unchanged_despite_server_fields_and_spellings() {
        let (connections, syncs) = server_state();
        let steps = plan(&defs(), &connections, &syncs, true).unwrap();
        assert_eq!(steps.len(), 6);
        assert!(
            steps.iter().all(|s| s.action == Action::Unchanged),
            "{steps:#?}"
        );
        assert_eq!(steps[0].line(false), "unchanged connection warehouse");
    }

    #[test]
    fn differences_are_updates_naming_the_fields() {
        let (mut connections, mut syncs) = server_state();
        connections[1].config = Some(struct_from_json(&serde_json::json!({
            "url": "postgres://app@127.0.0.1:5432/app",
            "password": "${env:OTHER}",
            "port": 5432,
        })));
        let scores = syncs
            .iter_mut()
            .find(|s| s.name == "syncs/customer_scores")
            .unwrap();
        scores.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::Every(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            })),
        });
        scores.options.as_mut().unwrap().max_attempts = Some(5);
        let hourly = syncs.iter_mut().find(|s| s.name == "syncs/hourly").unwrap();
        hourly.mappings.push(v1::Mapping {
            from: "a".into(),
            to: "b".into(),
        });
        hourly.destination.as_mut().unwrap().mode = v1::SyncMode::Upsert as i32;

        let steps = plan(&defs(), &connections, &syncs, false).unwrap();
        let lines: Vec<String> = steps.iter().map(|s| s.line(true)).collect();
        assert_eq!(
            lines,
            [
                "unchanged connection warehouse",
                "would update connection app_db (config)",
                "would update sync customer_scores (schedule, options)",
                "unchanged sync totals",
                "would update sync hourly (destination, mappings)",
                "unchanged sync manual",
            ]
        );
        assert_eq!(steps[2].line(false), "updated sync customer_scores");
        let Action::Update(Desired::Sync(sent), _) = &steps[2].action else {
            panic!("{:?}", steps[2])
        };
        assert_eq!(sent.name, "syncs/customer_scores");
    }

    #[test]
    fn a_literal_password_the_server_masks_is_verified_not_assumed() {
        let mut file = defs();
        file.connections[1].config["url"] = "postgres://app:hunter2@127.0.0.1:5432/app".into();
        let (mut connections, syncs) = server_state();
        // The server shows the password masked.
        let shown = redact_config(&file.connections[1].config);
        assert_eq!(shown["url"], "postgres://app:***@127.0.0.1:5432/app");
        connections[1].config = Some(struct_from_json(&shown));
        let steps = plan(&file, &connections, &syncs, false).unwrap();
        assert!(
            matches!(steps[1].action, Action::Verify(Desired::Connection(_))),
            "{:?}",
            steps[1]
        );
        // Anything else that differs is an update as before.
        connections[1].config = Some(struct_from_json(&serde_json::json!({
            "url": "postgres://app:***@elsewhere:5432/app",
            "password": "${env:APP_DB_PASSWORD}",
            "port": 5432,
        })));
        let steps = plan(&file, &connections, &syncs, false).unwrap();
        assert_eq!(
            steps[1].line(true),
            "would update connection app_db (config)"
        );
    }

    #[test]
    fn the_file_is_checked_as_a_whole_against_the_planned_state() {
        let file = defs();
        let state = PlannedState::new(&file, &[], &[]);
        for s in &file.syncs {
            let desired = sync_to_proto(s).unwrap();
            assert_eq!(state.check_sync(&s.name, &desired), None, "{}", s.name);
        }
        // A table name PostgreSQL would truncate, named by its field.
        let mut long = sync_to_proto(&def("hourly")).unwrap();
        long.destination.as_mut().unwrap().object = "t".repeat(64);
        let problem = state.check_sync("hourly", &long).unwrap();
        assert!(
            problem.starts_with("invalid argument: sync.destination.object: "),
            "{problem}"
        );
        // Another sync of the file writes `public.totals`: `totals` is the same table.
        let mut twin = sync_to_proto(&def("hourly")).unwrap();
        twin.destination.as_mut().unwrap().object = "totals".into();
        let problem = state.check_sync("hourly", &twin).unwrap();
        assert!(
            problem.contains("sync `totals` already writes"),
            "{problem}"
        );
        // A sync only on the server counts too.
        let mut server_only = sync_to_proto(&def("manual")).unwrap();
        server_only.name = "syncs/legacy".into();
        server_only.destination.as_mut().unwrap().object = "public.legacy".into();
        let state = PlannedState::new(&file, &[], &[server_only]);
        let mut onto_legacy = sync_to_proto(&def("hourly")).unwrap();
        onto_legacy.destination.as_mut().unwrap().object = "legacy".into();
        let problem = state.check_sync("hourly", &onto_legacy).unwrap();
        assert!(
            problem.contains("sync `legacy` already writes"),
            "{problem}"
        );
    }

    #[test]
    fn a_type_change_is_an_update() {
        let desired = connection_to_proto(defs().connection("warehouse").unwrap());
        let mut actual = desired.clone();
        actual.r#type = "sqlite".into();
        assert_eq!(connection_changes(&desired, &actual), ["type"]);
        let mut no_config = desired.clone();
        no_config.config = None;
        let mut empty = desired;
        empty.config = Some(prost_types::Struct::default());
        assert!(connection_changes(&no_config, &empty).is_empty());
    }

    #[test]
    fn prune_deletes_unnamed_syncs_then_connections_dependents_first() {
        let (mut connections, mut syncs) = server_state();
        connections.push(v1::Connection {
            name: "connections/old_db".into(),
            r#type: "sqlite".into(),
            ..Default::default()
        });
        let mut old_base = syncs[3].clone();
        old_base.name = "syncs/old_base".into();
        let mut old_after = syncs[3].clone();
        old_after.name = "syncs/old_after".into();
        old_after.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::AfterSync("old_base".into())),
        });
        syncs.push(old_base);
        syncs.push(old_after);

        let without_prune = plan(&defs(), &connections, &syncs, false).unwrap();
        assert!(without_prune.iter().all(|s| s.action != Action::Delete));

        let steps = plan(&defs(), &connections, &syncs, true).unwrap();
        let deletes: Vec<String> = steps
            .iter()
            .filter(|s| s.action == Action::Delete)
            .map(|s| s.line(false))
            .collect();
        assert_eq!(
            deletes,
            [
                "deleted sync old_after",
                "deleted sync old_base",
                "deleted connection old_db",
            ]
        );
        assert_eq!(
            steps.last().unwrap().line(true),
            "would delete connection old_db"
        );
    }

    #[test]
    fn options_compare_with_defaults_filled_in() {
        let desired = sync_to_proto(&def("manual")).unwrap();
        let mut actual = desired.clone();
        actual.options = None;
        assert!(sync_changes(&desired, &actual).is_empty());
        actual.options = Some(v1::SyncOptions {
            max_attempts: Some(DEFAULT_MAX_ATTEMPTS),
            ..Default::default()
        });
        assert!(sync_changes(&desired, &actual).is_empty());
        actual.options = Some(v1::SyncOptions {
            batch_size: Some(1),
            ..Default::default()
        });
        assert_eq!(sync_changes(&desired, &actual), ["options"]);
    }
}
