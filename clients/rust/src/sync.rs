//! [`SyncBuilder`]: a sync definition in a few chained calls instead of nested messages with
//! optional fields, and the resource names the API expects.

use std::time::Duration;

use backflow_proto::v1;

/// A sync definition to pass to [`crate::Client::create_sync`]. Starts as an upsert with no
/// schedule (runs only when triggered) and default options.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncBuilder {
    sync: v1::Sync,
}

impl SyncBuilder {
    /// Copies the result of `query` on connection `source` into `object` (a table or
    /// collection) on connection `destination`, keyed by `primary_key`.
    pub fn new(
        source: &str,
        query: impl Into<String>,
        destination: &str,
        object: impl Into<String>,
        primary_key: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            sync: v1::Sync {
                source: Some(v1::SyncSource {
                    connection: resource_name(CONNECTIONS, source),
                    query: query.into(),
                }),
                primary_key: primary_key.into_iter().map(Into::into).collect(),
                destination: Some(v1::SyncDestination {
                    connection: resource_name(CONNECTIONS, destination),
                    object: object.into(),
                    mode: v1::SyncMode::Upsert as i32,
                    create_table: false,
                    shared: false,
                }),
                ..Default::default()
            },
        }
    }

    /// How rows are applied (default upsert).
    pub fn mode(mut self, mode: v1::SyncMode) -> Self {
        self.destination().mode = mode as i32;
        self
    }

    /// Create the destination object when it is missing.
    pub fn create_table(mut self, create: bool) -> Self {
        self.destination().create_table = create;
        self
    }

    /// Lets other syncs write the same object when they say so too; without it the server
    /// refuses a second sync writing the object of another.
    pub fn shared(mut self, shared: bool) -> Self {
        self.destination().shared = shared;
        self
    }

    /// Writes query column `from` into destination column `to`.
    pub fn mapping(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.sync.mappings.push(v1::Mapping {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Runs every `interval` (at least one second).
    pub fn every(mut self, interval: Duration) -> Self {
        let every = prost_types::Duration {
            seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(interval.subsec_nanos()).unwrap_or(0),
        };
        self.sync.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::Every(every)),
        });
        self
    }

    /// Runs at the times of a cron expression, in UTC.
    pub fn cron(mut self, expression: impl Into<String>) -> Self {
        self.sync.schedule = Some(v1::Schedule {
            kind: Some(v1::schedule::Kind::Cron(expression.into())),
        });
        self
    }

    /// Safety and tuning knobs; unset fields keep the server's defaults.
    pub fn options(mut self, options: v1::SyncOptions) -> Self {
        self.sync.options = Some(options);
        self
    }

    /// The message, for calls the client does not wrap (`UpdateSync`).
    pub fn build(self) -> v1::Sync {
        self.sync
    }

    fn destination(&mut self) -> &mut v1::SyncDestination {
        self.sync.destination.get_or_insert_with(Default::default)
    }
}

impl From<SyncBuilder> for v1::Sync {
    fn from(builder: SyncBuilder) -> Self {
        builder.sync
    }
}

/// `connections`.
pub(crate) const CONNECTIONS: &str = "connections";
/// `syncs`.
pub(crate) const SYNCS: &str = "syncs";
/// `runs`.
pub(crate) const RUNS: &str = "runs";

/// `collection/id` for a bare id; a full name is kept, so callers may pass either
/// `customer_scores` or `syncs/customer_scores`. A name of another collection is sent as
/// written and the server names the field it refuses.
pub(crate) fn resource_name(collection: &str, name: &str) -> String {
    let name = name.trim();
    if name.contains('/') {
        name.to_owned()
    } else {
        format!("{collection}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_ids_and_full_names() {
        assert_eq!(resource_name(SYNCS, "scores"), "syncs/scores");
        assert_eq!(resource_name(SYNCS, " syncs/scores "), "syncs/scores");
        assert_eq!(resource_name(RUNS, "runs/0193"), "runs/0193");
        assert_eq!(resource_name(SYNCS, "runs/0193"), "runs/0193");
    }

    #[test]
    fn the_builder_fills_the_nested_messages() {
        let sync = SyncBuilder::new("warehouse", "SELECT 1 AS id", "app_db", "t", ["id"])
            .mode(v1::SyncMode::Mirror)
            .create_table(true)
            .mapping("id", "key")
            .every(Duration::from_millis(1500))
            .build();
        assert_eq!(sync.source.unwrap().connection, "connections/warehouse");
        let destination = sync.destination.unwrap();
        assert_eq!(destination.connection, "connections/app_db");
        assert_eq!(destination.mode(), v1::SyncMode::Mirror);
        assert!(destination.create_table);
        assert_eq!(sync.primary_key, ["id"]);
        assert_eq!(sync.mappings[0].to, "key");
        assert_eq!(
            sync.schedule.unwrap().kind,
            Some(v1::schedule::Kind::Every(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            }))
        );
    }
}
