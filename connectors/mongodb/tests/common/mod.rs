//! Helpers shared by the integration tests; they talk to a real MongoDB-protocol server
//! (FerretDB here) and fail, never skip, when it is not configured.
// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use backflow_connector_contract::server_url;
use backflow_connector_core::{WriteMode, WriteTarget};
use backflow_mongodb::{validate_destination, MongoDestination};
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::{Client, Collection};

pub use backflow_connector_contract::fixtures::write_once;
pub use backflow_connector_contract::unique_name as unique;

/// The server URL from `BACKFLOW_TEST_MONGODB_URL`; panics with how to get one.
pub fn url() -> String {
    server_url("BACKFLOW_TEST_MONGODB_URL")
}

/// The database the tests write into.
pub const DATABASE: &str = "backflow_test";

/// A destination on the test server with extra config keys merged in.
pub fn destination_with(extra: serde_json::Value) -> MongoDestination {
    let mut config = serde_json::json!({ "url": url(), "database": DATABASE });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    validate_destination(&config).unwrap()
}

pub fn destination() -> MongoDestination {
    destination_with(serde_json::json!({}))
}

/// A direct client for setting up and inspecting collections.
pub async fn collection(name: &str) -> Collection<Document> {
    let client = Client::with_uri_str(url()).await.unwrap();
    client.database(DATABASE).collection(name)
}

/// Every document of a collection, sorted by `_id`.
pub async fn documents(name: &str) -> Vec<Document> {
    collection(name)
        .await
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// A batch from named columns.
pub fn batch(columns: Vec<(Field, ArrayRef)>) -> RecordBatch {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

pub fn target(object: &str, batch: &RecordBatch, key: &[&str], mode: WriteMode) -> WriteTarget {
    WriteTarget {
        object: object.to_string(),
        schema: batch.schema(),
        primary_key: key.iter().map(|k| k.to_string()).collect(),
        mode,
        create_table: true,
        deletes: true,
        initial_load: false,
    }
}
