//! The shared destination contract suite against the Node.js Firestore emulator
//! (`@firestore-emulator/server` at `BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST`).

mod common;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use backflow_connector_contract::{
    hex, unique_name, CredentialCase, Harness, HarnessResult, Rejection, Row,
};
use backflow_connector_core::{Connector, Destination, WriteTarget};
use backflow_firestore::validate_destination;
use common::{delete_collection, documents, PROJECT};
use googleapis_tonic_google_firestore_v1::google::firestore::v1::value::ValueType;
use googleapis_tonic_google_firestore_v1::google::firestore::v1::Value;
use serde_json::{json, Value as Json};

struct FirestoreHarness {
    destination: Arc<dyn Destination>,
}

fn harness() -> FirestoreHarness {
    FirestoreHarness {
        destination: Arc::new(common::destination()),
    }
}

/// A Firestore value in the suite's canonical value form. Decimals, dates, times and UUIDs
/// are stored as strings already in canonical form; bytes read back as hex.
fn canonical(value: &Value) -> Json {
    match &value.value_type {
        None | Some(ValueType::NullValue(_)) => Json::Null,
        Some(ValueType::BooleanValue(b)) => json!(b),
        Some(ValueType::IntegerValue(i)) => json!(i),
        Some(ValueType::DoubleValue(d)) => json!(d),
        Some(ValueType::StringValue(s)) => json!(s),
        Some(ValueType::BytesValue(b)) => json!(hex(b)),
        Some(ValueType::TimestampValue(t)) => {
            let at = chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32)
                .expect("timestamp in range");
            json!(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        }
        Some(ValueType::ArrayValue(a)) => Json::Array(a.values.iter().map(canonical).collect()),
        Some(ValueType::MapValue(m)) => Json::Object(
            m.fields
                .iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        Some(other) => panic!("the connector never writes {other:?}"),
    }
}

#[async_trait]
impl Harness for FirestoreHarness {
    fn connector(&self) -> &'static dyn Connector {
        &backflow_firestore::FirestoreConnector
    }

    fn destination(&self) -> Arc<dyn Destination> {
        self.destination.clone()
    }

    fn unique_object(&self, prefix: &str) -> String {
        unique_name(prefix)
    }

    async fn read(
        &self,
        object: &str,
        schema: &SchemaRef,
        _primary_key: &[String],
    ) -> HarnessResult<Vec<Row>> {
        // Key columns are document fields too, so every row reads back from its fields.
        Ok(documents(object)
            .await
            .into_values()
            .map(|fields| {
                schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let value = fields.get(f.name()).map_or(Json::Null, canonical);
                        (f.name().clone(), value)
                    })
                    .collect()
            })
            .collect())
    }

    async fn prepare_rejection(
        &self,
        _object: &str,
        _target: &WriteTarget,
    ) -> HarnessResult<Rejection> {
        // Firestore refuses documents over 1 MiB; the connector checks that before sending.
        Ok(Rejection {
            poison: "p".repeat(1 << 20),
            message_contains: "over Firestore's limit".to_string(),
        })
    }

    fn wrong_credential(&self) -> CredentialCase {
        CredentialCase::NotEnforced {
            reason: "the Firestore emulator accepts any credentials (Google's clients send \
                     `Bearer owner`); the service-account path needs Google's service",
        }
    }

    fn unreachable(&self) -> Arc<dyn Destination> {
        Arc::new(
            validate_destination(&json!({"project": PROJECT, "emulator_host": "127.0.0.1:1"}))
                .unwrap(),
        )
    }

    async fn drop_object(&self, object: &str) -> HarnessResult<()> {
        delete_collection(object).await;
        Ok(())
    }
}

backflow_connector_contract::destination_contract_suite!(harness());
