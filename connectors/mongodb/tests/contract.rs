//! The shared destination contract suite against FerretDB (or any MongoDB-protocol server at
//! `BACKFLOW_TEST_MONGODB_URL`).

mod common;

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use backflow_connector_contract::{
    hex, unique_name, CredentialCase, Harness, HarnessResult, Rejection, Row,
};
use backflow_connector_core::types::{is_json, is_uuid};
use backflow_connector_core::{Connector, Destination, WriteTarget};
use backflow_mongodb::validate_destination;
use common::{collection, url, DATABASE};
use futures::TryStreamExt;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use serde_json::Value;

struct MongoHarness {
    destination: Arc<dyn Destination>,
}

fn harness() -> MongoHarness {
    MongoHarness {
        // FerretDB 1.x has no Decimal128 (FerretDB issue #66): decimals are stored as their
        // exact text here. Against MongoDB the default `decimal128` applies.
        destination: Arc::new(
            validate_destination(&serde_json::json!({
                "url": url(), "database": DATABASE, "decimals": "string"
            }))
            .unwrap(),
        ),
    }
}

/// A BSON value in the suite's canonical value form for a column of type `dt`.
fn canonical(value: &Bson, dt: &DataType, json: bool, uuid: bool) -> Value {
    match value {
        Bson::Null => Value::Null,
        Bson::Binary(b) if uuid || b.subtype == BinarySubtype::Uuid => Value::String(hex(&b.bytes)),
        Bson::Binary(b) => Value::String(hex(&b.bytes)),
        Bson::DateTime(d) => {
            let text = d.try_to_rfc3339_string().unwrap_or_default();
            match dt {
                DataType::Date32 => Value::String(text.chars().take(10).collect()),
                _ => Value::String(text),
            }
        }
        Bson::Decimal128(d) => Value::String(d.to_string()),
        other if json => other.clone().into_relaxed_extjson(),
        other => other.clone().into_relaxed_extjson(),
    }
}

#[async_trait]
impl Harness for MongoHarness {
    fn connector(&self) -> &'static dyn Connector {
        &backflow_mongodb::MongoConnector
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
        primary_key: &[String],
    ) -> HarnessResult<Vec<Row>> {
        let docs: Vec<Document> = collection(object)
            .await
            .find(doc! {})
            .await?
            .try_collect()
            .await?;
        let mut rows = Vec::with_capacity(docs.len());
        for mut d in docs {
            match (d.remove("_id"), primary_key) {
                (Some(Bson::Document(id)), key) if key.len() > 1 => {
                    for (k, v) in id {
                        d.insert(k, v);
                    }
                }
                (Some(id), [key]) => {
                    d.insert(key.clone(), id);
                }
                _ => {}
            }
            let mut row = Row::new();
            for field in schema.fields() {
                let value = d.get(field.name()).cloned().unwrap_or(Bson::Null);
                row.insert(
                    field.name().clone(),
                    canonical(&value, field.data_type(), is_json(field), is_uuid(field)),
                );
            }
            rows.push(row);
        }
        Ok(rows)
    }

    async fn prepare_rejection(
        &self,
        object: &str,
        _target: &WriteTarget,
    ) -> HarnessResult<Rejection> {
        let coll = collection(object).await;
        let poison = "poison-duplicate".to_string();
        coll.insert_one(doc! {"_id": -1i64, "name": "harness", "payload": &poison})
            .await?;
        coll.create_index(
            IndexModel::builder()
                .keys(doc! {"payload": 1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
        Ok(Rejection {
            poison,
            message_contains: "duplicate key".to_string(),
        })
    }

    fn wrong_credential(&self) -> CredentialCase {
        let secret = "wrong-mongo-password".to_string();
        let url = url().replacen("backflow:backflow@", &format!("backflow:{secret}@"), 1);
        assert!(url.contains(&secret), "the test URL must carry credentials");
        CredentialCase::Refused {
            destination: Arc::new(
                validate_destination(&serde_json::json!({"url": url, "database": DATABASE}))
                    .unwrap(),
            ),
            secret,
        }
    }

    fn unreachable(&self) -> Arc<dyn Destination> {
        Arc::new(
            validate_destination(&serde_json::json!({
                "url": "mongodb://127.0.0.1:1/", "database": DATABASE, "connect_timeout_secs": 2
            }))
            .unwrap(),
        )
    }

    async fn drop_object(&self, object: &str) -> HarnessResult<()> {
        collection(object).await.drop().await?;
        Ok(())
    }
}

backflow_connector_contract::destination_contract_suite!(harness());
