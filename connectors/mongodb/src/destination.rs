//! The MongoDB destination: preparing the collection a [`Plan`] names, and opening writers.
//!
//! Everything runs as raw commands (`find`, `listCollections`, `listIndexes`, `create`,
//! `createIndexes`, and the writer's `insert`, `update`, `delete`), which every
//! MongoDB-compatible server accepts; the driver's client-level bulk write would need
//! MongoDB 8.

use async_trait::async_trait;
use backflow_connector_core::{
    ConnectorError, Destination, DestinationWriter, ErrorKind, WriteMode, WriteTarget,
};
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind as DriverKind;
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use tracing::Instrument;

use crate::config::MongoConfig;
use crate::error::classify_during;
use crate::plan::Plan;
use crate::writer::MongoWriter;

/// Server error code of a `create` for a collection that already exists (NamespaceExists).
const NAMESPACE_EXISTS: i32 = 48;

/// A validated MongoDB destination; it connects only in `check` and `open`.
#[derive(Debug, Clone)]
pub struct MongoDestination {
    config: MongoConfig,
}

impl MongoDestination {
    pub(crate) fn new(config: MongoConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl Destination for MongoDestination {
    async fn check(&self, target: &WriteTarget) -> Result<(), ConnectorError> {
        let span = tracing::info_span!(
            "destination.check",
            url = %self.config.redacted_url(),
            database = %self.config.database(),
            object = %target.object,
        );
        async {
            let plan = Plan::new(target, &self.config)?;
            let db = self.config.connect().await?;
            // Dropping the client closes its connections in the background; `shutdown` would
            // wait for every clone of it, and hangs on multi-threaded runtimes.
            prepare(&db, &plan, false).await
        }
        .instrument(span)
        .await
    }

    async fn open(
        &self,
        target: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError> {
        let span = tracing::info_span!(
            "destination.open",
            url = %self.config.redacted_url(),
            database = %self.config.database(),
            object = %target.object,
            mode = ?target.mode,
        );
        async {
            let plan = Plan::new(target, &self.config)?;
            let db = self.config.connect().await?;
            prepare(&db, &plan, true).await?;
            // A first run into an empty collection loads with plain inserts: no document
            // can match, so upsert statements would only cost a lookup each.
            let direct = target.initial_load
                && plan.mode != WriteMode::Update
                && is_empty(&db, &plan.collection).await?;
            tracing::info!(
                collection = %plan.collection,
                mode = ?plan.mode,
                direct,
                "destination writer open"
            );
            let writer: Box<dyn DestinationWriter> = Box::new(MongoWriter::new(db, plan, direct));
            Ok(writer)
        }
        .instrument(span)
        .await
    }
}

/// Verifies the collection (and, when keys are fields, their unique index), creating them when
/// `create` is set and the target allows it.
async fn prepare(db: &Database, plan: &Plan, create: bool) -> Result<(), ConnectorError> {
    let names = db
        .list_collection_names()
        .filter(doc! { "name": &plan.collection })
        .await
        .map_err(classify_during("listing collections"))?;
    let exists = names.iter().any(|n| n == &plan.collection);
    if !exists && !plan.create {
        return Err(ConnectorError::new(
            ErrorKind::NotFound,
            format!(
                "collection `{}` does not exist in database `{}`; set `create_table: true` on \
                 the destination to have Backflow create it",
                plan.collection,
                db.name()
            ),
        ));
    }
    if !exists && create {
        create_collection(db, &plan.collection).await?;
    }
    if plan.key_as_id {
        return Ok(());
    }
    let coll = db.collection::<Document>(&plan.collection);
    let wanted = plan.key_names();
    if exists {
        let indexes: Vec<IndexModel> = coll
            .list_indexes()
            .await
            .map_err(classify_during("listing indexes"))?
            .try_collect()
            .await
            .map_err(classify_during("listing indexes"))?;
        let backed = indexes.iter().any(|index| {
            let unique = index
                .options
                .as_ref()
                .and_then(|o| o.unique)
                .unwrap_or(false);
            let fields: Vec<&str> = index.keys.keys().map(String::as_str).collect();
            unique && same_fields(&fields, &wanted)
        });
        if backed {
            return Ok(());
        }
        if !plan.create {
            return Err(ConnectorError::new(
                ErrorKind::Schema,
                format!(
                    "no unique index on ({}) in collection `{}`; with `primary_key_as_id: \
                     false` the primary key must be backed by one (db.{}.createIndex({{{}}}, \
                     {{unique: true}}))",
                    wanted.join(", "),
                    plan.collection,
                    plan.collection,
                    wanted
                        .iter()
                        .map(|k| format!("{k}: 1"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if create {
        let mut keys = Document::new();
        for k in &wanted {
            keys.insert(*k, 1);
        }
        let index = IndexModel::builder()
            .keys(keys)
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name(format!("backflow_key_{}", wanted.join("_")))
                    .build(),
            )
            .build();
        coll.create_index(index).await.map_err(classify_during(
            "creating the unique index on the primary key",
        ))?;
        tracing::info!(collection = %plan.collection, "created unique key index");
    }
    Ok(())
}

/// Creates `collection` up front, so the writer's concurrent commands never race to create
/// it implicitly. Another writer creating it first is fine.
async fn create_collection(db: &Database, collection: &str) -> Result<(), ConnectorError> {
    match db.create_collection(collection).await {
        Ok(()) => {
            tracing::info!(collection, "created collection");
            Ok(())
        }
        Err(e) if matches!(&*e.kind, DriverKind::Command(c) if c.code == NAMESPACE_EXISTS) => {
            Ok(())
        }
        Err(e) => Err(classify_during("creating the collection")(e)),
    }
}

/// Whether `collection` holds no document (one indexed `find` of at most one `_id`).
async fn is_empty(db: &Database, collection: &str) -> Result<bool, ConnectorError> {
    let any = db
        .collection::<Document>(collection)
        .find_one(doc! {})
        .projection(doc! { "_id": 1 })
        .await
        .map_err(classify_during("checking whether the collection is empty"))?;
    Ok(any.is_none())
}

fn same_fields(a: &[&str], b: &[&str]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
