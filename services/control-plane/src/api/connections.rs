//! `ConnectionService`.

use std::sync::Arc;
use std::time::Duration;

use backflow_common::convert::connector::connector_type_to_proto;
use backflow_connector_core::secret::restore_redacted;
use backflow_proto::json::{struct_from_json, struct_to_json};
use backflow_proto::v1::connection_service_server::ConnectionService;
use backflow_proto::v1::{
    CreateConnectionRequest, CreateConnectionResponse, DeleteConnectionRequest,
    DeleteConnectionResponse, GetConnectionRequest, GetConnectionResponse, ListConnectionsRequest,
    ListConnectionsResponse, ListConnectorTypesRequest, ListConnectorTypesResponse,
    TestConnectionRequest, TestConnectionResponse, UpdateConnectionRequest,
    UpdateConnectionResponse,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::ControlPlane;
use crate::convert::{
    connection_from_proto, connection_to_proto, connection_with_secrets_to_proto, page_size,
    page_token, parse_name, valid_id, CONNECTIONS,
};
use crate::error::ApiError;
use crate::model::now_millis;

/// How long TestConnection waits for a connector's checks.
const TEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The `ConnectionService` handlers.
#[derive(Debug, Clone)]
pub struct ConnectionApi(pub Arc<ControlPlane>);

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    #[instrument(name = "ConnectionService/CreateConnection", skip_all)]
    async fn create_connection(
        &self,
        request: Request<CreateConnectionRequest>,
    ) -> Result<Response<CreateConnectionResponse>, Status> {
        let req = request.into_inner();
        if !valid_id(&req.connection_id) {
            return Err(ApiError::invalid(
                "connection_id",
                "must be 1–63 letters, digits, `_` or `-`, starting with a letter or digit",
            )
            .into());
        }
        let connection = req
            .connection
            .ok_or_else(|| ApiError::invalid("connection", "is required"))?;
        let record = connection_from_proto(req.connection_id, &connection, now_millis())?;
        if req.validate_only {
            // The one check left to the store: the id must be free.
            match self.0.store.get_connection(&record.id).await {
                Ok(_) => {
                    return Err(ApiError::AlreadyExists {
                        kind: "connection",
                        id: record.id,
                    }
                    .into())
                }
                Err(crate::store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(ApiError::from(e).into()),
            }
        } else {
            self.0
                .store
                .create_connection(&record)
                .await
                .map_err(ApiError::from)?;
        }
        Ok(Response::new(CreateConnectionResponse {
            connection: Some(connection_to_proto(&record)),
        }))
    }

    #[instrument(name = "ConnectionService/GetConnection", skip_all)]
    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Result<Response<GetConnectionResponse>, Status> {
        let id = parse_name(CONNECTIONS, "name", &request.into_inner().name)?;
        let record = self
            .0
            .store
            .get_connection(&id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(GetConnectionResponse {
            connection: Some(connection_to_proto(&record)),
        }))
    }

    #[instrument(name = "ConnectionService/ListConnections", skip_all)]
    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let req = request.into_inner();
        let limit = page_size(req.page_size)?;
        let after = page_token(CONNECTIONS, &req.page_token)?;
        let page = self
            .0
            .store
            .list_connections(after, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (page, next) = split_page(page, limit, |c| c.id.clone());
        Ok(Response::new(ListConnectionsResponse {
            connections: page.iter().map(connection_to_proto).collect(),
            next_page_token: next,
        }))
    }

    #[instrument(name = "ConnectionService/UpdateConnection", skip_all)]
    async fn update_connection(
        &self,
        request: Request<UpdateConnectionRequest>,
    ) -> Result<Response<UpdateConnectionResponse>, Status> {
        let req = request.into_inner();
        let mut connection = req
            .connection
            .ok_or_else(|| ApiError::invalid("connection", "is required"))?;
        let id = parse_name(CONNECTIONS, "connection.name", &connection.name)?;
        let current = self
            .0
            .store
            .get_connection(&id)
            .await
            .map_err(ApiError::from)?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        for path in &paths {
            match path.as_str() {
                "type" | "config" => {}
                other => {
                    return Err(ApiError::invalid(
                        "update_mask",
                        format!(
                            "{} is not an updatable field (type, config)",
                            backflow_connector_core::quoted(other)
                        ),
                    )
                    .into())
                }
            }
        }
        if !paths.is_empty() {
            let stored = connection_with_secrets_to_proto(&current);
            if !paths.iter().any(|p| p == "type") {
                connection.r#type = stored.r#type;
            }
            if !paths.iter().any(|p| p == "config") {
                connection.config = stored.config;
            }
        }
        // A config read back from this API carries `***` for literal secrets: unchanged
        // otherwise, it keeps the stored secrets; changed, it is refused by the conversion
        // below rather than storing `***` as a password.
        if let Some(config) = &connection.config {
            if let Some(restored) = restore_redacted(&struct_to_json(config), &current.config) {
                connection.config = Some(struct_from_json(&restored));
            }
        }
        let mut record = connection_from_proto(id, &connection, now_millis())?;
        record.created_at = current.created_at;
        if record.kind == current.kind && record.config == current.config {
            // Nothing changes: nothing is written, and `update_time` says so.
            return Ok(Response::new(UpdateConnectionResponse {
                connection: Some(connection_to_proto(&current)),
            }));
        }
        let stored = if req.validate_only {
            record
        } else {
            self.0
                .store
                .update_connection(&record)
                .await
                .map_err(ApiError::from)?
        };
        Ok(Response::new(UpdateConnectionResponse {
            connection: Some(connection_to_proto(&stored)),
        }))
    }

    #[instrument(name = "ConnectionService/DeleteConnection", skip_all)]
    async fn delete_connection(
        &self,
        request: Request<DeleteConnectionRequest>,
    ) -> Result<Response<DeleteConnectionResponse>, Status> {
        let id = parse_name(CONNECTIONS, "name", &request.into_inner().name)?;
        self.0
            .store
            .delete_connection(&id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(DeleteConnectionResponse {}))
    }

    #[instrument(name = "ConnectionService/TestConnection", skip_all)]
    async fn test_connection(
        &self,
        request: Request<TestConnectionRequest>,
    ) -> Result<Response<TestConnectionResponse>, Status> {
        let id = parse_name(CONNECTIONS, "name", &request.into_inner().name)?;
        let record = self
            .0
            .store
            .get_connection(&id)
            .await
            .map_err(ApiError::from)?;
        // Every connector type of this build can be read from, and a source's check covers
        // configuration, reachability and credentials. Destination-specific checks (the
        // table, its columns, privileges) need a sync's schema and run with each run.
        let checked = match backflow_connectors::source(&record.kind, &record.config) {
            Ok(source) => match tokio::time::timeout(TEST_TIMEOUT, source.check()).await {
                Ok(result) => result,
                Err(_) => Err(backflow_connector_core::ConnectorError::connectivity(
                    format!("no answer within {} s", TEST_TIMEOUT.as_secs()),
                )),
            },
            Err(e) => Err(e),
        };
        Ok(Response::new(match checked {
            Ok(()) => TestConnectionResponse {
                ok: true,
                ..Default::default()
            },
            Err(e) => TestConnectionResponse {
                ok: false,
                error_kind: e.kind().as_str().to_owned(),
                message: e.message().to_owned(),
                field: e.field().unwrap_or_default().to_owned(),
            },
        }))
    }

    #[instrument(name = "ConnectionService/ListConnectorTypes", skip_all)]
    async fn list_connector_types(
        &self,
        _request: Request<ListConnectorTypesRequest>,
    ) -> Result<Response<ListConnectorTypesResponse>, Status> {
        Ok(Response::new(ListConnectorTypesResponse {
            connector_types: backflow_connectors::connectors()
                .iter()
                .map(|c| connector_type_to_proto(*c))
                .collect(),
        }))
    }
}

/// Splits a page fetched with `limit + 1` rows into the page and the next page token.
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    token: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(token).unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}
