//! Helpers shared by the integration tests; they talk to the Firestore emulator started by
//! `scripts/services.sh start` and fail (never skip) when it is not configured.
// Each test binary uses some of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use backflow_connector_contract::{fixtures, server_url};
use backflow_connector_core::{WriteMode, WriteOutcome, WriteTarget};
use backflow_firestore::{validate_destination, FirestoreDestination};
use googleapis_tonic_google_firestore_v1::google::firestore::v1::{
    firestore_client::FirestoreClient, run_query_request, structured_query, value::ValueType,
    write::Operation, CommitRequest, Document, RunQueryRequest, StructuredQuery, Value, Write,
};
use tonic::transport::Channel;

pub use backflow_connector_contract::unique_name as unique;

/// The project every test writes into; collections are unique per test.
pub const PROJECT: &str = "backflow-test";

/// The emulator's `host:port` from `BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST`.
pub fn host() -> String {
    server_url("BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST")
}

pub fn destination() -> FirestoreDestination {
    validate_destination(&serde_json::json!({ "project": PROJECT, "emulator_host": host() }))
        .unwrap()
}

pub fn target(collection: &str, schema: SchemaRef, key: &[&str], mode: WriteMode) -> WriteTarget {
    WriteTarget {
        object: collection.to_string(),
        schema,
        primary_key: key.iter().map(|k| k.to_string()).collect(),
        mode,
        create_table: true,
        deletes: true,
        initial_load: false,
    }
}

pub fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Opens a writer for `target`, writes `batch`, closes, and returns the outcome.
pub async fn write(target: &WriteTarget, batch: &RecordBatch) -> WriteOutcome {
    fixtures::write_once(&destination(), target, batch).await
}

/// Opens a writer for `target`, deletes `keys`, closes, and returns the outcome.
pub async fn delete(target: &WriteTarget, keys: &RecordBatch) -> WriteOutcome {
    fixtures::delete_once(&destination(), target, keys).await
}

async fn client() -> FirestoreClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", host()))
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("the Firestore emulator at {} is unreachable: {e}", host()));
    FirestoreClient::new(channel).max_decoding_message_size(64 << 20)
}

fn root() -> String {
    format!("projects/{PROJECT}/databases/(default)/documents")
}

/// Every document of a top-level `collection`, by id.
pub async fn documents(collection: &str) -> BTreeMap<String, HashMap<String, Value>> {
    let request = RunQueryRequest {
        parent: root(),
        explain_options: None,
        query_type: Some(run_query_request::QueryType::StructuredQuery(
            StructuredQuery {
                from: vec![structured_query::CollectionSelector {
                    collection_id: collection.to_string(),
                    all_descendants: false,
                }],
                ..Default::default()
            },
        )),
        consistency_selector: None,
    };
    let mut stream = client()
        .await
        .run_query(request)
        .await
        .unwrap()
        .into_inner();
    let mut out = BTreeMap::new();
    while let Some(item) = stream.message().await.unwrap() {
        if let Some(doc) = item.document {
            let id = doc.name.rsplit('/').next().unwrap().to_string();
            out.insert(id, doc.fields);
        }
    }
    out
}

/// Deletes every document of a top-level `collection`.
pub async fn delete_collection(collection: &str) {
    let names: Vec<String> = documents(collection)
        .await
        .into_keys()
        .map(|id| format!("{}/{collection}/{id}", root()))
        .collect();
    for chunk in names.chunks(500) {
        client()
            .await
            .commit(CommitRequest {
                database: format!("projects/{PROJECT}/databases/(default)"),
                writes: chunk
                    .iter()
                    .map(|name| Write {
                        operation: Some(Operation::Delete(name.clone())),
                        ..Default::default()
                    })
                    .collect(),
                transaction: Vec::new(),
            })
            .await
            .unwrap();
    }
}

/// Writes a document directly, as another writer would.
pub async fn seed(collection: &str, id: &str, fields: Vec<(&str, Value)>) {
    let doc = Document {
        name: format!("{}/{collection}/{id}", root()),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        create_time: None,
        update_time: None,
    };
    client()
        .await
        .commit(CommitRequest {
            database: format!("projects/{PROJECT}/databases/(default)"),
            writes: vec![Write {
                operation: Some(Operation::Update(doc)),
                ..Default::default()
            }],
            transaction: Vec::new(),
        })
        .await
        .unwrap();
}

pub fn int(v: i64) -> Value {
    Value {
        value_type: Some(ValueType::IntegerValue(v)),
    }
}

pub fn string(v: &str) -> Value {
    Value {
        value_type: Some(ValueType::StringValue(v.to_string())),
    }
}

pub fn null() -> Value {
    Value {
        value_type: Some(ValueType::NullValue(0)),
    }
}
