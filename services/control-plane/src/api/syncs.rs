//! `SyncService`.

use std::sync::Arc;

use backflow_engine::{Engine, PlanInput, SnapshotRef, SnapshotStore, SyncSpec};
use backflow_proto::v1::sync_service_server::SyncService;
use backflow_proto::v1::{
    self, CreateSyncRequest, CreateSyncResponse, DeleteSyncRequest, DeleteSyncResponse,
    GetSyncRequest, GetSyncResponse, ListSyncsRequest, ListSyncsResponse, PauseSyncRequest,
    PauseSyncResponse, PlanSyncRequest, PlanSyncResponse, ResumeSyncRequest, ResumeSyncResponse,
    TriggerSyncRequest, TriggerSyncResponse, UpdateSyncRequest, UpdateSyncResponse,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::connections::split_page;
use super::{next_fire, ControlPlane};
use crate::convert::{
    parse_name, run_to_proto, sync_definition_from_proto, sync_definition_to_proto, sync_to_proto,
    valid_id, SYNCS,
};
use crate::error::ApiError;
use crate::model::{
    now_millis, ConnectionRecord, NewRun, RunTrigger, Schedule, SyncDefinition, SyncRecord,
};
use crate::validate::{target_conflict, validate_sync, Catalog, ConnectionRef};

/// The `SyncService` handlers.
#[derive(Debug, Clone)]
pub struct SyncApi(pub Arc<ControlPlane>);

/// Fields of a sync that an update mask may name.
const UPDATABLE: &[&str] = &[
    "source",
    "source.connection",
    "source.query",
    "primary_key",
    "destination",
    "destination.connection",
    "destination.object",
    "destination.mode",
    "destination.create_table",
    "destination.shared",
    "mappings",
    "schedule",
    "options",
];

/// The W3C `traceparent` stored on a run this request queues: this handler's span when
/// traces are on (the run's spans follow the control plane's), else the one the caller sent,
/// so the caller's trace continues in the workers even when this process exports nothing.
pub(crate) fn traceparent(metadata: &MetadataMap) -> Option<String> {
    backflow_common::trace_context::current_traceparent().or_else(|| {
        metadata
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| backflow_common::trace_context::trace_id_of(v).is_some())
            .map(str::to_owned)
    })
}

/// The store's view of what a sync being validated refers to, fetched up front so the
/// checks themselves ([`validate_sync`]) stay pure and shared with `backflow apply`.
struct StoreCatalog {
    connections: Vec<ConnectionRecord>,
    after_sync: Option<String>,
}

impl Catalog for StoreCatalog {
    fn connection(&self, id: &str) -> Option<ConnectionRef<'_>> {
        self.connections
            .iter()
            .find(|c| c.id == id)
            .map(|c| ConnectionRef {
                kind: &c.kind,
                config: &c.config,
            })
    }

    fn has_sync(&self, id: &str) -> bool {
        self.after_sync.as_deref() == Some(id)
    }
}

/// The store-side form of [`target_conflict`]: refuses `definition` (as `id`) when another
/// sync writing through the same destination connection writes the same object.
fn one_writer_check<'a>(
    id: &'a str,
    definition: &'a SyncDefinition,
) -> impl Fn(&ConnectionRecord, &[SyncRecord]) -> Result<(), String> + Send + Sync + 'a {
    move |destination, others| {
        target_conflict(
            id,
            definition,
            ConnectionRef {
                kind: &destination.kind,
                config: &destination.config,
            },
            others.iter().map(|s| (s.id.as_str(), &s.definition)),
        )
    }
}

impl SyncApi {
    /// Validates a definition and checks that what it refers to exists and fits its role,
    /// and that its destination names fit the destination.
    async fn validate(&self, id: &str, sync: &v1::Sync) -> Result<SyncDefinition, ApiError> {
        // Field errors first: they need no store, and name the references to look up.
        let definition = sync_definition_from_proto(id, sync)?;
        let mut connections = Vec::new();
        for connection in [
            &definition.source_connection,
            &definition.destination_connection,
        ] {
            match self.0.store.get_connection(connection).await {
                Ok(c) => connections.push(c),
                Err(crate::store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let after_sync = match &definition.schedule {
            Some(Schedule::AfterSync { sync }) => match self.0.store.get_sync(sync).await {
                Ok(_) => Some(sync.clone()),
                Err(crate::store::StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            _ => None,
        };
        validate_sync(
            id,
            sync,
            &StoreCatalog {
                connections,
                after_sync,
            },
        )
    }

    async fn store_schedule(&self, record: &SyncRecord) -> Result<(), ApiError> {
        let next = next_fire(record.definition.schedule.as_ref(), now_millis());
        self.0.store.set_next_schedule(&record.id, next).await?;
        Ok(())
    }
}

/// Applies the fields named by `paths` from `update` onto `current`.
fn apply_mask(current: &mut v1::Sync, update: v1::Sync, paths: &[String]) -> Result<(), ApiError> {
    for path in paths {
        if !UPDATABLE.contains(&path.as_str()) {
            return Err(ApiError::invalid(
                "update_mask",
                format!(
                    "{} is not an updatable field ({})",
                    backflow_connector_core::quoted(path),
                    UPDATABLE.join(", ")
                ),
            ));
        }
    }
    let source = update.source.unwrap_or_default();
    let destination = update.destination.unwrap_or_default();
    let cur_source = current.source.get_or_insert_with(Default::default);
    let cur_destination = current.destination.get_or_insert_with(Default::default);
    for path in paths {
        match path.as_str() {
            "source" => *cur_source = source.clone(),
            "source.connection" => cur_source.connection.clone_from(&source.connection),
            "source.query" => cur_source.query.clone_from(&source.query),
            "destination" => *cur_destination = destination.clone(),
            "destination.connection" => cur_destination
                .connection
                .clone_from(&destination.connection),
            "destination.object" => cur_destination.object.clone_from(&destination.object),
            "destination.mode" => cur_destination.mode = destination.mode,
            "destination.create_table" => cur_destination.create_table = destination.create_table,
            "destination.shared" => cur_destination.shared = destination.shared,
            "primary_key" => current.primary_key.clone_from(&update.primary_key),
            "mappings" => current.mappings.clone_from(&update.mappings),
            "schedule" => current.schedule.clone_from(&update.schedule),
            "options" => current.options.clone_from(&update.options),
            _ => {}
        }
    }
    Ok(())
}

/// The engine's view of a stored sync.
pub(crate) fn spec_for(id: &str, d: &SyncDefinition) -> SyncSpec {
    SyncSpec {
        name: id.to_owned(),
        query: d.query.clone(),
        primary_key: d.primary_key.clone(),
        object: d.object.clone(),
        destination_connection: d.destination_connection.clone(),
        mode: d.mode,
        create_table: d.create_table,
        mappings: d.mappings.clone(),
        options: d.options.clone(),
    }
}

#[tonic::async_trait]
impl SyncService for SyncApi {
    #[instrument(name = "SyncService/CreateSync", skip_all)]
    async fn create_sync(
        &self,
        request: Request<CreateSyncRequest>,
    ) -> Result<Response<CreateSyncResponse>, Status> {
        let req = request.into_inner();
        if !valid_id(&req.sync_id) {
            return Err(ApiError::invalid(
                "sync_id",
                "must be 1–63 letters, digits, `_` or `-`, starting with a letter or digit",
            )
            .into());
        }
        let sync = req
            .sync
            .ok_or_else(|| ApiError::invalid("sync", "is required"))?;
        let definition = self.validate(&req.sync_id, &sync).await?;
        let now = now_millis();
        let record = SyncRecord {
            id: req.sync_id,
            definition,
            paused: false,
            created_at: now,
            updated_at: now,
            last_run_id: None,
            snapshot: None,
        };
        self.0
            .store
            .create_sync_checked(&record, &one_writer_check(&record.id, &record.definition))
            .await
            .map_err(ApiError::from)?;
        self.store_schedule(&record).await?;
        Ok(Response::new(CreateSyncResponse {
            sync: Some(sync_to_proto(&record)),
        }))
    }

    #[instrument(name = "SyncService/GetSync", skip_all)]
    async fn get_sync(
        &self,
        request: Request<GetSyncRequest>,
    ) -> Result<Response<GetSyncResponse>, Status> {
        let id = parse_name(SYNCS, "name", &request.into_inner().name)?;
        let record = self.0.store.get_sync(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(GetSyncResponse {
            sync: Some(sync_to_proto(&record)),
        }))
    }

    #[instrument(name = "SyncService/ListSyncs", skip_all)]
    async fn list_syncs(
        &self,
        request: Request<ListSyncsRequest>,
    ) -> Result<Response<ListSyncsResponse>, Status> {
        let req = request.into_inner();
        let limit = crate::convert::page_size(req.page_size)?;
        let after = crate::convert::page_token(SYNCS, &req.page_token)?;
        let page = self
            .0
            .store
            .list_syncs(after, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (page, next) = split_page(page, limit, |s| s.id.clone());
        Ok(Response::new(ListSyncsResponse {
            syncs: page.iter().map(sync_to_proto).collect(),
            next_page_token: next,
        }))
    }

    #[instrument(name = "SyncService/UpdateSync", skip_all)]
    async fn update_sync(
        &self,
        request: Request<UpdateSyncRequest>,
    ) -> Result<Response<UpdateSyncResponse>, Status> {
        let req = request.into_inner();
        let update = req
            .sync
            .ok_or_else(|| ApiError::invalid("sync", "is required"))?;
        let id = parse_name(SYNCS, "sync.name", &update.name)?;
        let current = self.0.store.get_sync(&id).await.map_err(ApiError::from)?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let merged = if paths.is_empty() {
            update
        } else {
            let mut merged = sync_definition_to_proto(&current.definition);
            apply_mask(&mut merged, update, &paths)?;
            merged
        };
        let definition = self.validate(&id, &merged).await?;
        let stored = self
            .0
            .store
            .update_sync_checked(
                &id,
                &definition,
                now_millis(),
                &one_writer_check(&id, &definition),
            )
            .await
            .map_err(ApiError::from)?;
        if stored.definition.schedule != current.definition.schedule {
            self.store_schedule(&stored).await?;
        }
        Ok(Response::new(UpdateSyncResponse {
            sync: Some(sync_to_proto(&stored)),
        }))
    }

    #[instrument(name = "SyncService/DeleteSync", skip_all)]
    async fn delete_sync(
        &self,
        request: Request<DeleteSyncRequest>,
    ) -> Result<Response<DeleteSyncResponse>, Status> {
        let id = parse_name(SYNCS, "name", &request.into_inner().name)?;
        self.0
            .store
            .delete_sync(&id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(DeleteSyncResponse {}))
    }

    #[instrument(name = "SyncService/TriggerSync", skip_all, fields(backflow.sync))]
    async fn trigger_sync(
        &self,
        request: Request<TriggerSyncRequest>,
    ) -> Result<Response<TriggerSyncResponse>, Status> {
        let traceparent = traceparent(request.metadata());
        let req = request.into_inner();
        let id = parse_name(SYNCS, "name", &req.name)?;
        tracing::Span::current().record("backflow.sync", id.as_str());
        if req.request_id.len() > 128 {
            return Err(ApiError::invalid("request_id", "is longer than 128 characters").into());
        }
        let enqueued = self
            .0
            .enqueue(&NewRun {
                sync_id: id,
                trigger: RunTrigger::Manual,
                full_resync: req.full_resync,
                request_id: (!req.request_id.is_empty()).then_some(req.request_id),
                traceparent,
            })
            .await?;
        Ok(Response::new(TriggerSyncResponse {
            run: Some(run_to_proto(&enqueued.run)),
            coalesced: enqueued.coalesced,
        }))
    }

    #[instrument(name = "SyncService/PlanSync", skip_all, fields(backflow.sync))]
    async fn plan_sync(
        &self,
        request: Request<PlanSyncRequest>,
    ) -> Result<Response<PlanSyncResponse>, Status> {
        let req = request.into_inner();
        let id = parse_name(SYNCS, "name", &req.name)?;
        tracing::Span::current().record("backflow.sync", id.as_str());
        let sample_size = match req.sample_size {
            0 => 10,
            n => n.min(1000) as usize,
        };
        let sync = self.0.store.get_sync(&id).await.map_err(ApiError::from)?;
        let connection = self
            .0
            .store
            .get_connection(&sync.definition.source_connection)
            .await
            .map_err(ApiError::from)?;
        let source = backflow_connectors::source(&connection.kind, &connection.config)
            .map_err(|e| ApiError::FailedPrecondition(format!("source connection: {e}")))?;
        let snapshots = SnapshotStore::open(&self.0.config.snapshot_store)
            .map_err(|e| ApiError::FailedPrecondition(e.to_string()))?;
        let previous = sync.snapshot.as_ref().map(|s| SnapshotRef {
            path: s.path.clone(),
            rows: s.rows,
        });
        let spec = spec_for(&id, &sync.definition);
        let plan = Engine::new(snapshots)
            .plan(PlanInput {
                spec: &spec,
                source: source.as_ref(),
                previous: previous.as_ref(),
                full_resync: false,
                sample_size,
            })
            .await
            .map_err(|e| {
                // A source that is down may answer next time; anything else needs a change to
                // the sync or the data first.
                let message = format!("plan failed ({}): {e}", e.code());
                if e.is_retryable() {
                    ApiError::Unavailable(message)
                } else {
                    ApiError::FailedPrecondition(message)
                }
            })?;
        Ok(Response::new(PlanSyncResponse {
            read: plan.counts.read,
            added: plan.counts.added,
            changed: plan.counts.changed,
            unchanged: plan.counts.unchanged,
            removed: plan.counts.removed,
            sample_added: plan.sample_added,
            sample_changed: plan.sample_changed,
            sample_removed: plan.sample_removed,
        }))
    }

    #[instrument(name = "SyncService/PauseSync", skip_all)]
    async fn pause_sync(
        &self,
        request: Request<PauseSyncRequest>,
    ) -> Result<Response<PauseSyncResponse>, Status> {
        let id = parse_name(SYNCS, "name", &request.into_inner().name)?;
        let record = self
            .0
            .store
            .set_paused(&id, true, now_millis())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(PauseSyncResponse {
            sync: Some(sync_to_proto(&record)),
        }))
    }

    #[instrument(name = "SyncService/ResumeSync", skip_all)]
    async fn resume_sync(
        &self,
        request: Request<ResumeSyncRequest>,
    ) -> Result<Response<ResumeSyncResponse>, Status> {
        let id = parse_name(SYNCS, "name", &request.into_inner().name)?;
        let record = self
            .0
            .store
            .set_paused(&id, false, now_millis())
            .await
            .map_err(ApiError::from)?;
        self.store_schedule(&record).await?;
        Ok(Response::new(ResumeSyncResponse {
            sync: Some(sync_to_proto(&record)),
        }))
    }
}
