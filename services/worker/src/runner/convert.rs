//! Pure conversions between the `backflow.v1` messages of a lease and the engine's types.
//!
//! A lease comes from another process, possibly of another version, so nothing here trusts
//! it: every missing or malformed field becomes a [`LeaseError`] naming the field, never a
//! panic. The field conversions themselves are shared with the control plane
//! ([`backflow_common::convert`]); this module adds the lease's checks around them.

use std::time::SystemTime;

use backflow_common::convert::sync::{
    mapping_from_proto, sync_mode_from_proto, sync_options_from_proto,
};
use backflow_proto::v1 as pb;

use crate::runner::failure::LeaseError;
use backflow_engine::{SnapshotRef, SyncMode, SyncOptions, SyncSpec};

/// The `{id}` of `{collection}/{id}`, or an error naming `field`.
pub(crate) fn resource_id<'a>(
    name: &'a str,
    collection: &str,
    field: &str,
) -> Result<&'a str, LeaseError> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            LeaseError::invalid_lease(field, format!("must look like `{collection}/{{id}}`"))
        })
}

/// The engine's view of a sync from the lease's `Sync`.
pub(crate) fn sync_spec(sync: Option<&pb::Sync>) -> Result<SyncSpec, LeaseError> {
    let sync = sync.ok_or_else(|| LeaseError::invalid_lease("sync", "is missing"))?;
    let name = sync
        .name
        .strip_prefix("syncs/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| LeaseError::invalid_sync("name", "must look like `syncs/{id}`"))?;
    let source = sync
        .source
        .as_ref()
        .ok_or_else(|| LeaseError::invalid_sync("source", "is missing"))?;
    if source.query.trim().is_empty() {
        return Err(LeaseError::invalid_sync("source.query", "is empty"));
    }
    let destination = sync
        .destination
        .as_ref()
        .ok_or_else(|| LeaseError::invalid_sync("destination", "is missing"))?;
    if destination.object.trim().is_empty() {
        return Err(LeaseError::invalid_sync("destination.object", "is empty"));
    }
    if sync.primary_key.is_empty() {
        return Err(LeaseError::invalid_sync(
            "primary_key",
            "is empty; name the columns that identify a row",
        ));
    }
    if let Some(i) = sync.primary_key.iter().position(|c| c.is_empty()) {
        return Err(LeaseError::invalid_sync(
            format!("primary_key[{i}]"),
            "is empty",
        ));
    }
    let mut mappings = Vec::with_capacity(sync.mappings.len());
    for (i, m) in sync.mappings.iter().enumerate() {
        if m.from.is_empty() {
            return Err(LeaseError::invalid_sync(
                format!("mappings[{i}].from"),
                "is empty",
            ));
        }
        if m.to.is_empty() {
            return Err(LeaseError::invalid_sync(
                format!("mappings[{i}].to"),
                "is empty",
            ));
        }
        mappings.push(mapping_from_proto(m));
    }
    Ok(SyncSpec {
        name: name.to_owned(),
        query: source.query.clone(),
        primary_key: sync.primary_key.clone(),
        object: destination.object.clone(),
        destination_connection: destination
            .connection
            .strip_prefix("connections/")
            .unwrap_or(&destination.connection)
            .to_owned(),
        mode: sync_mode(destination.mode)?,
        create_table: destination.create_table,
        mappings,
        options: sync_options(sync.options.as_ref())?,
    })
}

/// `SYNC_MODE_*` to [`SyncMode`]; unspecified and unknown values are refused.
pub(crate) fn sync_mode(mode: i32) -> Result<SyncMode, LeaseError> {
    sync_mode_from_proto(mode).map_err(|e| {
        LeaseError::invalid_sync(
            "destination.mode",
            format!("{e}; expected upsert, insert, update or mirror"),
        )
    })
}

/// The options, every unset field taking [`SyncOptions::default`]'s value; a zero batch
/// size is refused (the engine could not make progress).
pub(crate) fn sync_options(options: Option<&pb::SyncOptions>) -> Result<SyncOptions, LeaseError> {
    let options = sync_options_from_proto(&options.copied().unwrap_or_default());
    if options.batch_size == 0 {
        return Err(LeaseError::invalid_sync(
            "options.batch_size",
            "must be at least 1",
        ));
    }
    Ok(options)
}

/// The previous snapshot; a pointer with an empty path and no rows means "none yet".
pub(crate) fn previous_snapshot(
    pointer: Option<&pb::SnapshotPointer>,
) -> Result<Option<SnapshotRef>, LeaseError> {
    match pointer {
        None => Ok(None),
        Some(p) if p.path.is_empty() && p.rows == 0 => Ok(None),
        Some(p) if p.path.is_empty() => Err(LeaseError::invalid_lease(
            "snapshot.path",
            format!("is empty although the snapshot has {} rows", p.rows),
        )),
        Some(p) => Ok(Some(SnapshotRef {
            path: p.path.clone(),
            rows: p.rows,
        })),
    }
}

/// A connection's type and config as the registry takes them.
pub(crate) fn connection(
    connection: Option<&pb::Connection>,
    field: &str,
) -> Result<(String, serde_json::Value), LeaseError> {
    let c = connection.ok_or_else(|| LeaseError::invalid_lease(field, "is missing"))?;
    if c.r#type.is_empty() {
        return Err(LeaseError::invalid_lease(
            format!("{field}.type"),
            "is empty",
        ));
    }
    let config = c.config.as_ref().map_or_else(
        || serde_json::json!({}),
        backflow_proto::json::struct_to_json,
    );
    Ok((c.r#type.clone(), config))
}

/// A protobuf timestamp as a wall-clock time; `None` when unset or out of range.
pub(crate) fn time_from_proto(t: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// A written snapshot as the pointer the control plane stores.
pub(crate) fn snapshot_pointer(s: &SnapshotRef) -> pb::SnapshotPointer {
    pb::SnapshotPointer {
        path: s.path.clone(),
        rows: s.rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_engine::Mapping;

    fn proto_sync() -> pb::Sync {
        pb::Sync {
            name: "syncs/customer_scores".into(),
            source: Some(pb::SyncSource {
                connection: "connections/warehouse".into(),
                query: "SELECT customer_id, churn_risk FROM scores".into(),
            }),
            primary_key: vec!["customer_id".into()],
            destination: Some(pb::SyncDestination {
                connection: "connections/app_db".into(),
                object: "public.customer_scores".into(),
                mode: pb::SyncMode::Mirror as i32,
                create_table: true,
                ..Default::default()
            }),
            mappings: vec![pb::Mapping {
                from: "churn_risk".into(),
                to: "churn_risk_score".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_full_sync_converts_field_by_field() {
        let mut sync = proto_sync();
        sync.options = Some(pb::SyncOptions {
            allow_empty_source: Some(true),
            max_delete_fraction: Some(0.1),
            max_rejected_rows: Some(7),
            batch_size: Some(100),
            max_attempts: Some(9),
        });
        let spec = sync_spec(Some(&sync)).unwrap();
        assert_eq!(
            spec,
            SyncSpec {
                name: "customer_scores".into(),
                query: "SELECT customer_id, churn_risk FROM scores".into(),
                primary_key: vec!["customer_id".into()],
                object: "public.customer_scores".into(),
                destination_connection: "app_db".into(),
                mode: SyncMode::Mirror,
                create_table: true,
                mappings: vec![Mapping {
                    from: "churn_risk".into(),
                    to: "churn_risk_score".into(),
                }],
                options: SyncOptions {
                    allow_empty_source: true,
                    max_delete_fraction: 0.1,
                    max_rejected_rows: 7,
                    batch_size: 100,
                },
            }
        );
    }

    #[test]
    fn unset_options_take_the_engine_defaults() {
        let spec = sync_spec(Some(&proto_sync())).unwrap();
        assert_eq!(spec.options, SyncOptions::default());

        let mut sync = proto_sync();
        sync.options = Some(pb::SyncOptions {
            max_delete_fraction: Some(0.9),
            ..Default::default()
        });
        let options = sync_spec(Some(&sync)).unwrap().options;
        assert_eq!(
            options,
            SyncOptions {
                max_delete_fraction: 0.9,
                ..SyncOptions::default()
            }
        );
    }

    #[test]
    fn every_mode_maps_and_bad_modes_name_the_field() {
        for (proto, mode) in [
            (pb::SyncMode::Upsert, SyncMode::Upsert),
            (pb::SyncMode::Insert, SyncMode::Insert),
            (pb::SyncMode::Update, SyncMode::Update),
            (pb::SyncMode::Mirror, SyncMode::Mirror),
        ] {
            assert_eq!(sync_mode(proto as i32).unwrap(), mode);
        }
        for bad in [pb::SyncMode::Unspecified as i32, 42, -1] {
            let e = sync_mode(bad).unwrap_err();
            assert!(e.to_string().contains("`destination.mode`"), "{e}");
            assert_eq!(e.code(), "invalid_definition");
            assert!(!e.is_retryable());
        }
    }

    /// Breaks one field of a valid sync.
    type Breaker = fn(&mut pb::Sync);

    #[test]
    fn malformed_syncs_name_the_field_at_fault() {
        let cases: Vec<(&str, Breaker)> = vec![
            ("name", |s| s.name = "customer_scores".into()),
            ("name", |s| s.name = "syncs/".into()),
            ("source", |s| s.source = None),
            ("source.query", |s| {
                s.source.as_mut().unwrap().query = " ".into()
            }),
            ("destination", |s| s.destination = None),
            ("destination.object", |s| {
                s.destination.as_mut().unwrap().object = String::new()
            }),
            ("destination.mode", |s| {
                s.destination.as_mut().unwrap().mode = 0
            }),
            ("primary_key", |s| s.primary_key.clear()),
            ("primary_key[1]", |s| s.primary_key.push(String::new())),
            ("mappings[0].to", |s| s.mappings[0].to = String::new()),
            ("options.batch_size", |s| {
                s.options = Some(pb::SyncOptions {
                    batch_size: Some(0),
                    ..Default::default()
                })
            }),
        ];
        for (field, break_it) in cases {
            let mut sync = proto_sync();
            break_it(&mut sync);
            let e = sync_spec(Some(&sync)).unwrap_err();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{field}: {e}"
            );
            assert!(!e.is_retryable(), "{field}");
        }
        let e = sync_spec(None).unwrap_err();
        assert!(e.to_string().contains("`sync`"), "{e}");
    }

    #[test]
    fn resource_ids_are_the_part_after_the_collection() {
        assert_eq!(resource_id("runs/r-1", "runs", "ref.run").unwrap(), "r-1");
        for bad in ["r-1", "runs/", "syncs/r-1", "runs/a/b", "runsx/a"] {
            let e = resource_id(bad, "runs", "ref.run").unwrap_err();
            assert!(e.to_string().contains("`ref.run`"), "{bad}: {e}");
        }
    }

    #[test]
    fn previous_snapshot_is_none_before_the_first_run() {
        assert_eq!(previous_snapshot(None).unwrap(), None);
        assert_eq!(
            previous_snapshot(Some(&pb::SnapshotPointer::default())).unwrap(),
            None
        );
        assert_eq!(
            previous_snapshot(Some(&pb::SnapshotPointer {
                path: "syncs/s/r-a1.parquet".into(),
                rows: 3,
            }))
            .unwrap(),
            Some(SnapshotRef {
                path: "syncs/s/r-a1.parquet".into(),
                rows: 3,
            })
        );
        assert!(previous_snapshot(Some(&pb::SnapshotPointer {
            path: String::new(),
            rows: 3,
        }))
        .is_err());
    }

    #[test]
    fn connections_keep_their_type_and_json_config() {
        let config = backflow_proto::json::struct_from_json(&serde_json::json!({
            "url": "postgres://app@db/app", "port": 5432
        }));
        let c = pb::Connection {
            name: "connections/app_db".into(),
            r#type: "postgres".into(),
            config: Some(config),
            ..Default::default()
        };
        let (kind, json) = connection(Some(&c), "destination").unwrap();
        assert_eq!(kind, "postgres");
        assert_eq!(json["port"], 5432);
        let e = connection(None, "destination").unwrap_err();
        assert!(e.to_string().contains("`destination`"), "{e}");
        let e = connection(
            Some(&pb::Connection {
                r#type: String::new(),
                ..c
            }),
            "source",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`source.type`"), "{e}");
    }
}
