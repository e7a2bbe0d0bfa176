//! Cutting statements into commands within the server's limits, and reading command replies.

use backflow_connector_core::{ConnectorError, ErrorKind};
use mongodb::bson::{Bson, Document, RawBson};

/// The largest document MongoDB stores (`maxBsonObjectSize`).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// A command body may exceed a document by 16 KiB; statements are packed up to the document
/// limit minus room for the command's own fields. That also keeps every message far below the
/// 48 MB `maxMessageSizeBytes`.
const MAX_COMMAND_PAYLOAD: usize = MAX_DOCUMENT_BYTES - 64 * 1024;
/// Statements (or documents) per command; the server's `maxWriteBatchSize` is 100 000. A
/// thousand keeps a command that has to be re-run in halves cheap.
pub(crate) const MAX_STATEMENTS: usize = 1_000;
/// Fewer statements per command than this are not worth a command of their own when a batch
/// is spread over concurrent commands.
const MIN_STATEMENTS: usize = 100;
/// Server error code of a unique-index violation (DuplicateKey).
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// How many statements of a batch of `len` go in one command so that the batch spreads over
/// `in_flight` concurrent commands: at least [`MIN_STATEMENTS`], at most `max_items`.
pub(crate) fn per_command(len: usize, in_flight: usize, max_items: usize) -> usize {
    len.div_ceil(in_flight.max(1))
        .max(MIN_STATEMENTS)
        .min(max_items)
}

/// Cuts items of the given encoded sizes into `[lo, hi)` ranges of at most `max_items` items
/// that fit one command.
pub(crate) fn chunks(sizes: impl Iterator<Item = usize>, max_items: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut lo, mut bytes, mut n) = (0, 0, 0);
    for (i, size) in sizes.enumerate() {
        let item = size + 8;
        if n > 0 && (bytes + item > MAX_COMMAND_PAYLOAD || n == max_items) {
            out.push((lo, i));
            lo = i;
            bytes = 0;
            n = 0;
        }
        bytes += item;
        n += 1;
    }
    if n > 0 {
        out.push((lo, lo + n));
    }
    out
}

/// One statement (or document) the server refused.
#[derive(Debug, Clone)]
pub(crate) struct WriteError {
    /// Its index within the command.
    pub(crate) index: usize,
    /// The server's error code.
    pub(crate) code: Option<i32>,
    /// The server's message, with its code.
    pub(crate) message: String,
}

impl WriteError {
    /// Whether the refusal was a unique-index violation.
    pub(crate) fn is_duplicate_key(&self) -> bool {
        self.code == Some(DUPLICATE_KEY)
    }
}

/// What one `insert`, `update` or `delete` command reported.
#[derive(Debug)]
pub(crate) struct WriteReply {
    /// `n`: documents inserted, statements that matched or upserted, documents deleted.
    pub(crate) n: Option<u64>,
    /// `update` only: the statements that inserted a document, as the server's `index` and
    /// the new document's `_id`.
    pub(crate) upserted: Vec<(Option<usize>, Option<RawBson>)>,
    /// `writeErrors`.
    pub(crate) errors: Vec<WriteError>,
}

impl WriteReply {
    /// Reads a reply, failing (retryably) when it reports a write-concern error: then the
    /// durability of the write is unknown and the run must be retried.
    pub(crate) fn read(reply: &Document) -> Result<Self, ConnectorError> {
        if let Ok(wce) = reply.get_document("writeConcernError") {
            return Err(ConnectorError::new(
                ErrorKind::Internal,
                format!(
                    "write concern not satisfied: {}",
                    wce.get_str("errmsg").unwrap_or("unknown")
                ),
            )
            .with_retryable(true));
        }
        Ok(Self {
            n: count(reply, "n"),
            upserted: upserted(reply),
            errors: write_errors(reply),
        })
    }
}

fn count(reply: &Document, field: &str) -> Option<u64> {
    match reply.get(field) {
        Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
        Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
        Some(Bson::Double(n)) if *n >= 0.0 => Some(*n as u64),
        _ => None,
    }
}

fn int(d: &Document, field: &str) -> Option<i64> {
    match d.get(field) {
        Some(Bson::Int32(i)) => Some((*i).into()),
        Some(Bson::Int64(i)) => Some(*i),
        _ => None,
    }
}

fn upserted(reply: &Document) -> Vec<(Option<usize>, Option<RawBson>)> {
    reply
        .get_array("upserted")
        .map(|items| {
            items
                .iter()
                .filter_map(Bson::as_document)
                .map(|u| {
                    let index = int(u, "index").and_then(|i| usize::try_from(i).ok());
                    let id = u
                        .get("_id")
                        .and_then(|id| RawBson::try_from(id.clone()).ok());
                    (index, id)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_errors(reply: &Document) -> Vec<WriteError> {
    reply
        .get_array("writeErrors")
        .map(|items| {
            items
                .iter()
                .filter_map(Bson::as_document)
                .filter_map(|e| {
                    let index = usize::try_from(int(e, "index")?).ok()?;
                    let code = int(e, "code").and_then(|c| i32::try_from(c).ok());
                    let message = e.get_str("errmsg").unwrap_or("write error");
                    let message = match code {
                        Some(c) => format!("{message} (code {c})"),
                        None => message.to_string(),
                    };
                    Some(WriteError {
                        index,
                        code,
                        message,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a command refused as a whole may be about particular rows, so re-running it in
/// halves can isolate them (a server that cannot store one value fails the whole command).
pub(crate) fn splittable(e: &ConnectorError) -> bool {
    e.code().is_some()
        && matches!(e.kind(), ErrorKind::Data | ErrorKind::Internal)
        && !e.is_retryable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn chunks_respect_the_limits() {
        assert_eq!(chunks([10usize, 10, 10].into_iter(), 1000), vec![(0, 3)]);
        let big = MAX_COMMAND_PAYLOAD / 2;
        assert_eq!(
            chunks([big, big, 10].into_iter(), 1000),
            vec![(0, 1), (1, 3)]
        );
        let many = chunks(std::iter::repeat_n(1usize, 1001), 1000);
        assert_eq!(many, vec![(0, 1000), (1000, 1001)]);
        assert!(chunks(std::iter::empty(), 1000).is_empty());
    }

    #[test]
    fn batches_spread_over_concurrent_commands() {
        assert_eq!(per_command(4, 4, 1000), 100);
        assert_eq!(per_command(666, 4, 1000), 167);
        assert_eq!(per_command(8192, 4, 1000), 1000);
        assert_eq!(per_command(10, 4, 50), 50);
    }

    #[test]
    fn replies_are_read() {
        let reply = WriteReply::read(&doc! {
            "n": 3,
            "upserted": [{"index": 2, "_id": 7i64}],
            "writeErrors": [{"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"}],
            "ok": 1.0
        })
        .unwrap();
        assert_eq!(reply.n, Some(3));
        assert_eq!(reply.upserted.len(), 1);
        assert_eq!(reply.upserted[0].0, Some(2));
        assert_eq!(reply.errors.len(), 1);
        assert!(reply.errors[0].is_duplicate_key());
        assert_eq!(reply.errors[0].message, "E11000 duplicate key (code 11000)");

        let e = WriteReply::read(&doc! {"n": 1, "writeConcernError": {"errmsg": "timeout"}})
            .unwrap_err();
        assert!(e.is_retryable());
    }
}
