//! Firestore destination over the `google.firestore.v1` gRPC API.
//!
//! One document per primary key in the sync's `collection`; every mapped column is a field.
//! Writes go through `Commit` in requests of at most 500 writes (and under Firestore's 10 MiB
//! request limit); a commit the server refuses is split until the offending documents stand
//! alone and are rejected with the server's message. `insert` and `update` modes first ask
//! `BatchGetDocuments` which documents exist and then commit with `exists` preconditions as the
//! guard, so a race with another writer turns into a skipped row, never a wrong write.
//!
//! `FIRESTORE_EMULATOR_HOST` (or the `emulator_host` config key) selects an emulator the way
//! Google's clients do: plaintext gRPC, no credentials, `Authorization: Bearer owner`.
//! Otherwise the connector exchanges the service-account key named by `credentials` for an
//! OAuth2 token (RS256 JWT bearer grant) and talks TLS to `firestore.googleapis.com`.
//!
//! Collection paths and field names follow Firestore's rules ([`check_destination_names`]:
//! no `.`/`..`, no `__…__`, ids and field names at most 1,500 bytes), checked when a sync is
//! defined and by `check` before writing.

mod client;
mod config;
mod connector;
mod destination;
mod docid;
mod ramp;
mod value;
mod writer;

pub use connector::FirestoreConnector;
pub use destination::FirestoreDestination;
pub use docid::check_destination_names;

use backflow_connector_core::ConnectorError;

/// Validates a Firestore destination config (pure: no I/O); errors name the field.
pub fn validate_destination(
    config: &serde_json::Value,
) -> Result<FirestoreDestination, ConnectorError> {
    Ok(FirestoreDestination::new(
        config::FirestoreConfig::validate(config)?,
    ))
}
