//! Object stores for cloud URLs (`cloud` feature only).
//!
//! Credentials and endpoints come from the standard environment variables of each cloud
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), so nothing secret ever sits in the connection config.

use std::sync::Arc;

use backflow_connector_core::{ConnectorError, ErrorKind};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::ObjectStore;
use url::Url;

/// Builds the object store serving `url` from the process environment.
pub(crate) fn object_store_for(url: &Url) -> Result<Arc<dyn ObjectStore>, ConnectorError> {
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.scheme() {
        "s3" | "s3a" => AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
        "gs" => GoogleCloudStorageBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
        _ => MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
    };
    built.map_err(|e| {
        ConnectorError::new(
            ErrorKind::Config,
            format!("cannot configure the object store for `{url}`: {e}"),
        )
    })
}
