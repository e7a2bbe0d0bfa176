//! The gRPC client: channel, authentication metadata, and the three calls the writer uses.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use backflow_connector_core::{ConnectorError, ErrorKind};
use backflow_google_auth::ServiceAccount;
use futures::StreamExt;
use googleapis_tonic_google_firestore_v1::google::firestore::v1::{
    batch_get_documents_response, firestore_client::FirestoreClient, BatchGetDocumentsRequest,
    CommitRequest, DocumentMask, Write,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::config::{FirestoreConfig, Target};

/// Google's Firestore endpoint.
const SERVICE_URL: &str = "https://firestore.googleapis.com";
/// The OAuth2 scope of the Firestore API.
const SCOPE: &str = "https://www.googleapis.com/auth/datastore";
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts of a call that failed transiently (unavailable, aborted, throttled).
const ATTEMPTS: u32 = 5;
/// Responses carry at most one 1 MiB document each; leave room for the envelope.
const MAX_MESSAGE: usize = 16 << 20;

#[derive(Debug, Clone)]
enum Auth {
    Emulator,
    Service(Arc<ServiceAccount>),
}

/// A connected Firestore client for one database.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: FirestoreClient<Channel>,
    auth: Auth,
    /// `projects/{p}/databases/{d}`.
    database: String,
    /// Where requests go, for messages.
    endpoint: String,
    /// Whether this is an emulator (no write-rate ramp-up, non-atomic commits).
    emulator: bool,
}

impl Client {
    /// Resolves credentials and connects to the emulator or to Google's service.
    pub(crate) async fn connect(config: &FirestoreConfig) -> Result<Self, ConnectorError> {
        let (endpoint, auth) = match config.target()? {
            Target::Emulator(host) => (format!("http://{host}"), Auth::Emulator),
            Target::Service { credentials } => (
                SERVICE_URL.to_string(),
                Auth::Service(Arc::new(ServiceAccount::load(&credentials, SCOPE)?)),
            ),
        };
        let mut builder = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| ConnectorError::config("emulator_host", format!("bad address: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        if matches!(auth, Auth::Service(_)) {
            builder = builder
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| ConnectorError::internal(format!("TLS setup: {e}")))?;
        }
        let channel = builder.connect().await.map_err(|e| {
            ConnectorError::connectivity(format!("cannot connect to Firestore at {endpoint}: {e}"))
        })?;
        let emulator = matches!(auth, Auth::Emulator);
        Ok(Self {
            inner: FirestoreClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(usize::MAX),
            auth,
            database: config.database_path(),
            endpoint,
            emulator,
        })
    }

    /// `projects/{p}/databases/{d}/documents`, the prefix of every document name.
    pub(crate) fn documents_root(&self) -> String {
        format!("{}/documents", self.database)
    }

    /// Whether requests go to an emulator.
    pub(crate) fn is_emulator(&self) -> bool {
        self.emulator
    }

    /// Wraps `message` with the authorization and routing headers Google's clients send.
    async fn request<T>(&self, message: T) -> Result<Request<T>, ConnectorError> {
        let mut request = Request::new(message);
        let bearer = match &self.auth {
            Auth::Emulator => "Bearer owner".to_string(),
            Auth::Service(account) => format!("Bearer {}", account.token().await?.expose()),
        };
        let bearer = MetadataValue::try_from(bearer)
            .map_err(|_| ConnectorError::internal("the access token is not a valid header"))?;
        let metadata = request.metadata_mut();
        metadata.insert("authorization", bearer);
        let routing = format!("database={}", self.database.replace('/', "%2F"));
        if let (Ok(prefix), Ok(routing)) = (
            MetadataValue::try_from(self.database.as_str()),
            MetadataValue::try_from(routing),
        ) {
            metadata.insert("google-cloud-resource-prefix", prefix);
            metadata.insert("x-goog-request-params", routing);
        }
        Ok(request)
    }

    /// Applies `writes` atomically (on Google's service; the emulator applies them in order and
    /// stops at the first failure). A refused commit returns the server's status.
    pub(crate) async fn commit(&self, writes: &[Write]) -> Result<(), CommitError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .request(CommitRequest {
                    database: self.database.clone(),
                    writes: writes.to_vec(),
                    transaction: Vec::new(),
                })
                .await
                .map_err(CommitError::Fatal)?;
            match self.inner.clone().commit(request).await {
                Ok(_) => return Ok(()),
                Err(status) if is_transient(&status) && attempt < ATTEMPTS => {
                    tracing::warn!(attempt, code = ?status.code(), "commit failed transiently, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(status) if is_document_level(&status) => {
                    return Err(CommitError::Refused(status))
                }
                Err(status) => return Err(CommitError::Fatal(self.classify("commit", &status))),
            }
        }
    }

    /// The names among `names` that exist, by `BatchGetDocuments` with an empty field mask.
    pub(crate) async fn existing(
        &self,
        names: &[String],
    ) -> Result<HashSet<String>, ConnectorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_existing(names).await {
                Ok(found) => return Ok(found),
                Err(Ok(status)) if is_transient(&status) && attempt < ATTEMPTS => {
                    tracing::warn!(attempt, code = ?status.code(), "batch get failed transiently, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(Ok(status)) => return Err(self.classify("batch get", &status)),
                Err(Err(e)) => return Err(e),
            }
        }
    }

    async fn try_existing(
        &self,
        names: &[String],
    ) -> Result<HashSet<String>, Result<Status, ConnectorError>> {
        let request = self
            .request(BatchGetDocumentsRequest {
                database: self.database.clone(),
                documents: names.to_vec(),
                mask: Some(DocumentMask {
                    field_paths: Vec::new(),
                }),
                consistency_selector: None,
            })
            .await
            .map_err(Err)?;
        let mut stream = self
            .inner
            .clone()
            .batch_get_documents(request)
            .await
            .map_err(Ok)?
            .into_inner();
        let mut found = HashSet::new();
        while let Some(item) = stream.next().await {
            if let Some(batch_get_documents_response::Result::Found(doc)) = item.map_err(Ok)?.result
            {
                found.insert(doc.name);
            }
        }
        Ok(found)
    }

    /// Maps a whole-request failure to a connector error with the server's code.
    pub(crate) fn classify(&self, what: &str, status: &Status) -> ConnectorError {
        let kind = match status.code() {
            Code::Unauthenticated => ErrorKind::Auth,
            Code::PermissionDenied => ErrorKind::Permission,
            Code::NotFound => ErrorKind::NotFound,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => ErrorKind::Data,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled => ErrorKind::Connectivity,
            _ => ErrorKind::Internal,
        };
        ConnectorError::new(
            kind,
            format!(
                "Firestore {what} at {} failed: {}",
                self.endpoint,
                status.message()
            ),
        )
        .with_code(format!("{:?}", status.code()))
        .with_retryable(is_transient(status) || kind == ErrorKind::Connectivity)
    }
}

/// Why a commit did not apply.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The server refused a write of the request (a precondition, a value): worth splitting.
    Refused(Status),
    /// The request as a whole failed: the run fails.
    Fatal(ConnectorError),
}

/// Codes that clear up by themselves: retried with backoff, as Google's clients do.
fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Aborted | Code::ResourceExhausted | Code::DeadlineExceeded
    )
}

/// Codes a single document can cause, so splitting the commit isolates it.
fn is_document_level(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * (1 << attempt.min(6)))
}
