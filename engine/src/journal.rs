//! The write journal: which keys an attempt may have changed in the destination before it
//! committed.
//!
//! A run's writes are acknowledged row by row, but its snapshot becomes current only when the
//! run commits. An attempt that dies in between (a killed worker, a lost lease, a failed run)
//! has changed rows that no snapshot knows about; without a record of them, a key it created
//! and the source then dropped would never be deleted, and a row it rewrote and the source
//! then reverted would look unchanged for good.
//!
//! So before a batch of writes or deletes reaches the destination, its encoded keys are
//! stored as one **segment** at `syncs/<sync>/journal/<attempt>/<seq>.bfj`, next to the
//! snapshots and in the same object store. The next attempt lists every segment of the sync
//! and treats each journaled key as *unknown*: its snapshot entry, or a new one, gets the
//! `UNKNOWN_HASH` (0), which no row hashes to. An unknown key that is in the query result is
//! sent again whatever the snapshot said; one that is not is a removed key, deleted in mirror
//! mode (Backflow wrote it) and left alone, but counted as removed, in the other modes. A key
//! whose resend is refused keeps the unknown hash in the next snapshot, so it stays unknown
//! until a write of it succeeds.
//!
//! A committed run deletes the segments it read and the ones it wrote
//! ([`SnapshotStore::clear_journal`]). Segments that appear after it listed them (a zombie
//! attempt that had not yet noticed its lease was gone) are left for the next run. A segment
//! left behind by a crash after a commit only makes the next run resend its keys.
//!
//! Segments are scoped to their target: each records the destination connection, the object
//! and the key columns. A segment for another target (the sync was pointed elsewhere, which
//! also resets its snapshot) or another key encoding is not applied, and is cleared with the
//! others at the next commit.
//!
//! Object stores write an object whole or not at all, so a segment is never torn; each also
//! ends with a count and a checksum, and one that does not verify fails the run rather than
//! being skipped, since skipping it would forget writes. On a local directory a segment
//! survives the death of the process, not a power loss before the OS flushes it.
//!
//! Segment layout: `BFJ1`, a little-endian `u32` header length, the JSON header, then per key
//! a `u32` length and the key bytes (the snapshot key encoding), then the `u64` key count and
//! the `u64` xxh3 of everything before it.

use arrow::datatypes::Field;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tracing::warn;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::EngineError;
use crate::snapshot::{
    key_schema_from_json, key_schema_to_json, path_safe, same_key_types, SnapshotRef,
};
use crate::spec::SyncSpec;
use crate::store::SnapshotStore;

/// The snapshot hash of a key whose destination row is unknown; row hashes never take it.
pub(crate) const UNKNOWN_HASH: u128 = 0;

const MAGIC: &[u8; 4] = b"BFJ1";
const EXTENSION: &str = "bfj";

/// The hash a row is stored under: its xxh3-128, moved off [`UNKNOWN_HASH`] in the one case
/// in 2^128 where it lands there.
pub(crate) fn row_hash(hash: u128) -> u128 {
    if hash == UNKNOWN_HASH {
        1
    } else {
        hash
    }
}

/// What a segment says about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// The destination the keys were written to: connection, object and key columns.
    target: String,
    /// The key columns as snapshots record them (JSON), so keys decode the same way.
    key_schema: String,
}

/// The destination a sync writes to, as journal segments record it.
pub(crate) fn target_of(spec: &SyncSpec, key_fields: &[Field]) -> String {
    let keys: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    serde_json::json!([spec.destination_connection, spec.object, keys]).to_string()
}

fn journal_prefix(sync: &str) -> Path {
    Path::from(format!("syncs/{}/journal", path_safe(sync)))
}

/// The segments a committed run may delete: the earlier attempts' ones it read, and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalCleanup {
    /// Object paths in the snapshot store.
    pub paths: Vec<String>,
}

/// What writing the journal cost a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JournalStats {
    /// Segments written (one per batch of writes or deletes).
    pub segments: u64,
    /// Keys journaled.
    pub keys: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Keys from earlier uncommitted attempts that this run treated as unknown.
    pub recovered_keys: u64,
    /// Time spent storing segments, in microseconds.
    pub write_micros: u64,
}

/// The journaled keys of earlier attempts, sorted and without duplicates.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Encoded keys.
    pub keys: Vec<Vec<u8>>,
    /// Every segment read, applied or not: all of them are cleared when the run commits.
    pub paths: Vec<String>,
}

/// Encodes one segment's keys.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    buf: Vec<u8>,
    count: u64,
}

impl Segment {
    /// Records one key.
    pub fn push(&mut self, key: &[u8]) {
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.count += 1;
    }

    /// Keys recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    fn finish(mut self) -> Bytes {
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        let checksum = xxh3_64(&self.buf);
        self.buf.extend_from_slice(&checksum.to_le_bytes());
        Bytes::from(self.buf)
    }
}

/// Stores one attempt's segments, in order.
#[derive(Debug)]
pub(crate) struct JournalWriter {
    store: SnapshotStore,
    prefix: Path,
    header: Vec<u8>,
    next: u64,
    written: Vec<String>,
    stats: JournalStats,
}

impl JournalWriter {
    /// A writer for the attempt `run_id` of `spec`, whose keys have `key_fields`.
    pub fn new(store: SnapshotStore, spec: &SyncSpec, run_id: &str, key_fields: &[Field]) -> Self {
        let header = serde_json::to_vec(&Header {
            target: target_of(spec, key_fields),
            key_schema: key_schema_to_json(key_fields),
        })
        .expect("a journal header serializes");
        let mut framed = Vec::with_capacity(8 + header.len());
        framed.extend_from_slice(MAGIC);
        framed.extend_from_slice(&(header.len() as u32).to_le_bytes());
        framed.extend_from_slice(&header);
        Self {
            store,
            prefix: journal_prefix(&spec.name).join(path_safe(run_id)),
            header: framed,
            next: 0,
            written: Vec::new(),
            stats: JournalStats::default(),
        }
    }

    /// An empty segment, to fill with the keys of one batch.
    pub fn segment(&self) -> Segment {
        Segment {
            buf: self.header.clone(),
            count: 0,
        }
    }

    /// Stores `segment` durably; only then may its batch reach the destination.
    pub async fn write(&mut self, segment: Segment) -> Result<(), EngineError> {
        let started = std::time::Instant::now();
        let keys = segment.len();
        let bytes = segment.finish();
        let path = self
            .prefix
            .clone()
            .join(format!("{:010}.{EXTENSION}", self.next));
        self.next += 1;
        self.stats.bytes += bytes.len() as u64;
        self.store
            .store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| EngineError::Snapshot(format!("cannot write journal {path}: {e}")))?;
        self.written.push(path.to_string());
        self.stats.segments += 1;
        self.stats.keys += keys;
        self.stats.write_micros += started.elapsed().as_micros() as u64;
        Ok(())
    }

    /// The segments written, and what they cost.
    pub fn finish(self) -> (Vec<String>, JournalStats) {
        (self.written, self.stats)
    }
}

impl SnapshotStore {
    /// Reads every journal segment of `spec`'s sync: the keys of the segments written for the
    /// same target and key encoding, sorted and deduplicated, and the paths of all of them.
    ///
    /// Segments of the attempt that wrote `committed` (the sync's committed snapshot) are not
    /// applied, only listed for clearing: that attempt finished every write before its snapshot
    /// was committed, so the snapshot already says what they wrote. They are still there when
    /// its process died between the commit and clearing its journal; applying them would
    /// resend every row it wrote, exact but needless.
    pub(crate) async fn recover_journal(
        &self,
        spec: &SyncSpec,
        key_fields: &[Field],
        committed: Option<&SnapshotRef>,
    ) -> Result<Recovered, EngineError> {
        let prefix = journal_prefix(&spec.name);
        // `syncs/<sync>/<attempt>.parquet` was written by the attempt whose segments are
        // under `syncs/<sync>/journal/<attempt>/`.
        let committed_attempt = committed.and_then(|r| {
            Path::from(r.path.as_str())
                .filename()
                .and_then(|name| name.strip_suffix(".parquet"))
                .map(str::to_owned)
        });
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| EngineError::Snapshot(format!("cannot list {prefix}: {e}")))?;
        let target = target_of(spec, key_fields);
        let mut recovered = Recovered::default();
        let mut ignored = 0usize;
        for object in objects {
            if object.location.extension() != Some(EXTENSION) {
                continue;
            }
            let path = object.location;
            let parts: Vec<_> = path.parts().collect();
            let attempt = parts.len().checked_sub(2).map(|i| parts[i].as_ref());
            if committed_attempt.is_some() && attempt == committed_attempt.as_deref() {
                recovered.paths.push(path.to_string());
                continue;
            }
            let unreadable = |e: object_store::Error| {
                EngineError::Snapshot(format!("cannot read journal {path}: {e}"))
            };
            let bytes = self
                .store
                .get(&path)
                .await
                .map_err(unreadable)?
                .bytes()
                .await
                .map_err(unreadable)?;
            let (header, keys) = parse_segment(&bytes)
                .map_err(|why| EngineError::Snapshot(format!("journal {path} {why}")))?;
            let applies = header.target == target
                && key_schema_from_json(&header.key_schema)
                    .is_ok_and(|fields| same_key_types(&fields, key_fields));
            if applies {
                recovered.keys.extend(keys.into_iter().map(<[u8]>::to_vec));
            } else {
                ignored += 1;
            }
            recovered.paths.push(path.to_string());
        }
        if ignored > 0 {
            warn!(
                sync = %spec.name,
                segments = ignored,
                "journal segments written for another destination or key were not applied"
            );
        }
        recovered.keys.sort_unstable();
        recovered.keys.dedup();
        Ok(recovered)
    }

    /// Deletes the segments a committed run read and wrote. Call it only once the run's
    /// snapshot is committed: before that, these segments are what makes a retry exact.
    pub async fn clear_journal(&self, cleanup: &JournalCleanup) -> Result<(), EngineError> {
        for path in &cleanup.paths {
            self.delete_object(&Path::from(path.as_str())).await?;
        }
        Ok(())
    }
}

/// Splits a segment into its header and keys, verifying its framing, count and checksum.
fn parse_segment(bytes: &[u8]) -> Result<(Header, Vec<&[u8]>), &'static str> {
    const TRAILER: usize = 16;
    if bytes.len() < 8 + TRAILER || &bytes[..4] != MAGIC {
        return Err("is not a journal segment");
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
    let count = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    let checksum = u64::from_le_bytes(trailer[8..].try_into().expect("8 bytes"));
    if xxh3_64(&bytes[..bytes.len() - 8]) != checksum {
        return Err("fails its checksum");
    }
    let header_len = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes")) as usize;
    let header_bytes = body
        .get(8..8 + header_len)
        .ok_or("has a truncated header")?;
    let header: Header =
        serde_json::from_slice(header_bytes).map_err(|_| "has an unreadable header")?;
    let mut rest = &body[8 + header_len..];
    let mut keys = Vec::with_capacity(count.min(1 << 20) as usize);
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or("has a truncated key")?;
        let key = rest.get(4..4 + len).ok_or("has a truncated key")?;
        keys.push(key);
        rest = &rest[4 + len..];
    }
    if keys.len() as u64 != count {
        return Err("holds a different number of keys than it says");
    }
    Ok((header, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{SyncMode, SyncSpec};
    use arrow::datatypes::DataType;

    fn spec(object: &str) -> SyncSpec {
        SyncSpec {
            name: "s".into(),
            query: "q".into(),
            primary_key: vec!["id".into()],
            object: object.into(),
            destination_connection: "app".into(),
            mode: SyncMode::Mirror,
            create_table: false,
            mappings: vec![],
            options: Default::default(),
        }
    }

    #[tokio::test]
    async fn segments_round_trip_and_apply_only_to_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::local(dir.path()).unwrap();
        let keys = vec![Field::new("id", DataType::Int64, false)];
        let mut writer = JournalWriter::new(store.clone(), &spec("t"), "run-1-a1", &keys);
        let mut a = writer.segment();
        a.push(b"\x01k2");
        a.push(b"\x01k1");
        writer.write(a).await.unwrap();
        let mut b = writer.segment();
        b.push(b"\x01k1");
        b.push(b"");
        writer.write(b).await.unwrap();
        let (written, stats) = writer.finish();
        assert_eq!(written.len(), 2);
        assert_eq!((stats.segments, stats.keys), (2, 4));

        let recovered = store
            .recover_journal(&spec("t"), &keys, None)
            .await
            .unwrap();
        assert_eq!(
            recovered.keys,
            vec![b"".to_vec(), b"\x01k1".to_vec(), b"\x01k2".to_vec()]
        );
        assert_eq!(recovered.paths, written);

        // Another object, or another key type: read (so it is cleared), never applied.
        let other = store
            .recover_journal(&spec("u"), &keys, None)
            .await
            .unwrap();
        assert!(other.keys.is_empty());
        assert_eq!(other.paths.len(), 2);
        let text_keys = vec![Field::new("id", DataType::Utf8, false)];
        let other = store
            .recover_journal(&spec("t"), &text_keys, None)
            .await
            .unwrap();
        assert!(other.keys.is_empty());

        store
            .clear_journal(&JournalCleanup { paths: written })
            .await
            .unwrap();
        let after = store
            .recover_journal(&spec("t"), &keys, None)
            .await
            .unwrap();
        assert!(after.keys.is_empty() && after.paths.is_empty());
    }

    #[tokio::test]
    async fn the_committed_attempts_segments_are_cleared_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::local(dir.path()).unwrap();
        let keys = vec![Field::new("id", DataType::Int64, false)];
        // Attempt 1 died after writing k1; attempt 2 wrote k2 and committed its snapshot, but
        // its process died before clearing the journal.
        for (attempt, key) in [("run-1-a1", b"\x01k1"), ("run-1-a2", b"\x01k2")] {
            let mut writer = JournalWriter::new(store.clone(), &spec("t"), attempt, &keys);
            let mut segment = writer.segment();
            segment.push(key);
            writer.write(segment).await.unwrap();
        }
        let committed = SnapshotRef {
            path: "syncs/t/run-1-a2.parquet".into(),
            rows: 2,
        };
        let recovered = store
            .recover_journal(&spec("t"), &keys, Some(&committed))
            .await
            .unwrap();
        // Attempt 1's key stays unknown (a zombie of it may have written after attempt 2
        // listed the journal); attempt 2's is in its snapshot already.
        assert_eq!(recovered.keys, vec![b"\x01k1".to_vec()]);
        assert_eq!(
            recovered.paths.len(),
            2,
            "both are cleared at the next commit"
        );
        let uncommitted = store
            .recover_journal(&spec("t"), &keys, None)
            .await
            .unwrap();
        assert_eq!(uncommitted.keys.len(), 2);
    }

    #[test]
    fn damaged_segments_are_refused_not_skipped() {
        let keys = vec![Field::new("id", DataType::Int64, false)];
        let dir = tempfile::tempdir().unwrap();
        let writer = JournalWriter::new(
            SnapshotStore::local(dir.path()).unwrap(),
            &spec("t"),
            "r",
            &keys,
        );
        let mut segment = writer.segment();
        segment.push(b"\x01abc");
        let good = segment.finish().to_vec();
        assert_eq!(parse_segment(&good).unwrap().1, vec![b"\x01abc".as_slice()]);
        let mut flipped = good.clone();
        let at = flipped.len() - 20;
        flipped[at] ^= 1;
        assert_eq!(parse_segment(&flipped).unwrap_err(), "fails its checksum");
        assert!(parse_segment(&good[..good.len() - 3]).is_err());
        assert_eq!(
            parse_segment(b"nonsense").unwrap_err(),
            "is not a journal segment"
        );
    }

    #[test]
    fn no_row_hashes_to_unknown() {
        assert_ne!(row_hash(UNKNOWN_HASH), UNKNOWN_HASH);
        assert_eq!(row_hash(42), 42);
    }
}
