//! The MongoDB destination: validation of what a sync asks for, and opening writers.
//!
//! Everything runs as raw commands (`find`, `listCollections`, `listIndexes`, `create`,
//! `createIndexes`, and the writer's `insert`, `update`, `delete`), which every
//! MongoDB-compatible server accepts; the driver's client-level bulk write would need
//! MongoDB 8.

use async_trait::async_trait;
use backflow_connector_core::{
    quoted, CanonicalType, ConnectorError, Destination, DestinationWriter, ErrorKind, NameError,
    WriteMode, WriteTarget,
};
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind as DriverKind;
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use tracing::Instrument;

use crate::config::{DecimalsAs, MongoConfig};
use crate::error::classify_during;
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

/// One written column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) canonical: CanonicalType,
    /// Whether the column is part of the primary key.
    pub(crate) key: bool,
}

/// What the target asks for, checked without I/O.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) collection: String,
    pub(crate) columns: Vec<Column>,
    /// Schema indices of the primary-key columns, in key order.
    pub(crate) key: Vec<usize>,
    pub(crate) mode: WriteMode,
    create: bool,
    pub(crate) key_as_id: bool,
    pub(crate) decimals: DecimalsAs,
}

/// The longest namespace (`database.collection`) MongoDB accepts, in bytes (MongoDB 4.4+;
/// sharded and older deployments allow less and refuse longer names themselves).
pub const MAX_NAMESPACE_BYTES: usize = 255;

/// Whether MongoDB takes `name` as a top-level field name that `$set` writes verbatim.
pub(crate) fn check_field_name(name: &str) -> Result<(), NameError> {
    let problem = if name.is_empty() {
        Some("an empty field name")
    } else if name.starts_with('$') {
        Some("a field name starting with `$` (an operator in MongoDB)")
    } else if name.contains('.') {
        Some("a field name containing `.` (a path in MongoDB)")
    } else if name.contains('\0') {
        Some("a field name containing a NUL character")
    } else {
        None
    };
    match problem {
        Some(p) => Err(NameError::column(
            name,
            format!(
                "column {} would be {p}; rename it with a mapping",
                quoted(name)
            ),
        )),
        None => Ok(()),
    }
}

/// Whether MongoDB takes `collection` as a collection name in `database`, exactly as
/// written: not empty, no `$` or NUL, not in the reserved `system.` namespace, and
/// `database.collection` at most 255 bytes. `database` is `None` when unknown (the
/// namespace length is then not checked).
pub(crate) fn check_collection_name(
    database: Option<&str>,
    collection: &str,
) -> Result<(), NameError> {
    let problem = if collection.is_empty() {
        Some("it is empty".to_owned())
    } else if collection.contains('$') {
        Some("it contains `$`".to_owned())
    } else if collection.contains('\0') {
        Some("it contains a NUL character".to_owned())
    } else if collection.starts_with("system.") {
        Some("the `system.` prefix is reserved for MongoDB's own collections".to_owned())
    } else {
        database
            .map(|db| db.len() + 1 + collection.len())
            .filter(|n| *n > MAX_NAMESPACE_BYTES)
            .map(|n| {
                format!(
                    "the namespace `database.collection` would be {n} bytes; MongoDB allows \
                     {MAX_NAMESPACE_BYTES}"
                )
            })
    };
    match problem {
        Some(why) => Err(NameError::object(format!(
            "{} is not a collection name MongoDB accepts: {why}",
            quoted(collection)
        ))),
        None => Ok(()),
    }
}

/// Checks a sync's destination names without I/O: the collection (in `database`, when
/// known) and every destination column as a top-level field name.
pub fn check_destination_names(
    database: Option<&str>,
    collection: &str,
    columns: &[&str],
) -> Result<(), NameError> {
    check_collection_name(database, collection)?;
    for column in columns {
        check_field_name(column)?;
    }
    Ok(())
}

impl Plan {
    fn new(target: &WriteTarget, config: &MongoConfig) -> Result<Self, ConnectorError> {
        let collection = target.object.clone();
        check_collection_name(Some(config.database()), &collection)?;
        if target.primary_key.is_empty() {
            return Err(ConnectorError::config(
                "primary_key",
                "a primary key of at least one column is required",
            ));
        }
        let mut columns: Vec<Column> = Vec::with_capacity(target.schema.fields().len());
        for field in target.schema.fields() {
            let name = field.name();
            check_field_name(name)?;
            if columns.iter().any(|c| &c.name == name) {
                return Err(ConnectorError::schema(
                    name,
                    format!("column `{name}` appears twice in the sync's schema"),
                ));
            }
            columns.push(Column {
                name: name.clone(),
                canonical: CanonicalType::require(field)?,
                key: target.primary_key.contains(name),
            });
        }
        let mut key = Vec::with_capacity(target.primary_key.len());
        for k in &target.primary_key {
            let Some(i) = columns.iter().position(|c| &c.name == k) else {
                return Err(ConnectorError::config(
                    "primary_key",
                    format!("primary key column `{k}` is not among the synced columns"),
                ));
            };
            if key.contains(&i) {
                return Err(ConnectorError::config(
                    "primary_key",
                    format!("primary key column `{k}` is listed twice"),
                ));
            }
            key.push(i);
        }
        let id_column = columns.iter().any(|c| c.name == "_id");
        let id_is_the_key =
            config.primary_key_as_id && key.len() == 1 && columns[key[0]].name == "_id";
        if id_column && !id_is_the_key {
            return Err(ConnectorError::schema(
                "_id",
                "column `_id` is MongoDB's document id: it may only be the single primary key \
                 column (with `primary_key_as_id: true`); rename it with a mapping",
            ));
        }
        Ok(Self {
            collection,
            columns,
            key,
            mode: target.mode,
            create: target.create_table,
            key_as_id: config.primary_key_as_id,
            decimals: config.decimals,
        })
    }

    /// The primary-key column names, in key order.
    pub(crate) fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    use backflow_connector_core::NamePart;

    #[test]
    fn field_names_mongodb_refuses_are_config_errors_naming_the_column() {
        for bad in ["", "$x", "a.b", "nul\0"] {
            let e = ConnectorError::from(check_field_name(bad).unwrap_err());
            assert_eq!(e.kind(), ErrorKind::Config);
            assert_eq!(e.column(), Some(bad));
            assert!(!e.is_retryable());
        }
        assert!(check_field_name("ok_name").is_ok());
    }

    #[test]
    fn collection_names_follow_mongodb_rules() {
        assert!(check_destination_names(Some("shop"), "orders", &["_id", "total"]).is_ok());
        for bad in ["", "a$b", "a\0b", "system.users"] {
            let e = check_destination_names(Some("shop"), bad, &[]).unwrap_err();
            assert_eq!(e.part, NamePart::Object, "{bad:?}");
        }
        // `shop.` is 5 bytes: 250 bytes of collection fill the 255-byte namespace exactly.
        assert!(check_collection_name(Some("shop"), &"c".repeat(250)).is_ok());
        let e = check_collection_name(Some("shop"), &"c".repeat(251)).unwrap_err();
        assert!(e.message.contains("256 bytes"), "{e}");
        assert!(check_collection_name(None, &"c".repeat(251)).is_ok());
        let huge = "c".repeat(1 << 20);
        let e = check_collection_name(Some("shop"), &huge).unwrap_err();
        assert!(e.message.len() < 500, "{}", e.message.len());
        let e = check_destination_names(Some("shop"), "orders", &["ok", "$bad"]).unwrap_err();
        assert_eq!(e.part, NamePart::Column("$bad".into()));
    }
}
