//! How requests authenticate: an OAuth2 token from the service-account key, or nothing for
//! an emulator.

use std::sync::Arc;

use backflow_connector_core::{ConnectorError, Secret};
use backflow_google_auth::ServiceAccount;

use crate::config::BigQueryConfig;

/// The OAuth2 scope that covers both the REST API and the Storage Read API.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// The credentials of one connection, shared by its REST and gRPC clients.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// An emulator: no `Authorization` header at all.
    None,
    /// Google's service (or a private endpoint): bearer tokens from the key.
    Service(Arc<ServiceAccount>),
}

impl Credentials {
    /// Resolves and parses the key the config references, if any.
    pub(crate) fn load(config: &BigQueryConfig) -> Result<Self, ConnectorError> {
        match config.credentials() {
            Some(reference) => Ok(Self::Service(Arc::new(ServiceAccount::load(
                reference, SCOPE,
            )?))),
            None => Ok(Self::None),
        }
    }

    /// The `Authorization` header value for the next request, if any.
    pub(crate) async fn authorization(&self) -> Result<Option<Secret>, ConnectorError> {
        match self {
            Self::None => Ok(None),
            Self::Service(account) => Ok(Some(Secret::new(format!(
                "Bearer {}",
                account.token().await?.expose()
            )))),
        }
    }
}
