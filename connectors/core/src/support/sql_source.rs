//! Helpers for sources that answer a SQL query: checking the query text once, and turning
//! a reader task's channel into the [`BatchStream`] the [`Source`](crate::Source) contract
//! asks for, with the guarantee that a task which dies early is an error, never an end.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::{ConnectorError, ErrorKind};
use crate::source::BatchStream;

/// What a reader task sends to the stream a source returns. `End` is explicit so that a task
/// that stops without it (a panic, an abort) can never pass for a complete result, whose
/// missing rows the engine would then delete.
#[derive(Debug)]
pub enum ReaderMessage {
    /// The next batch.
    Batch(RecordBatch),
    /// The read failed; nothing follows.
    Failed(ConnectorError),
    /// The result is complete.
    End,
}

/// The batch stream of a reader task's channel: it ends at [`ReaderMessage::End`] only, and
/// a channel closed without it yields a retryable error naming `reader`.
pub fn reader_stream(
    schema: SchemaRef,
    rx: tokio::sync::mpsc::Receiver<ReaderMessage>,
    reader: &'static str,
) -> BatchStream {
    let stream = futures::stream::unfold((rx, false), move |(mut rx, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            Some(ReaderMessage::Batch(b)) => Some((Ok(b), (rx, false))),
            Some(ReaderMessage::Failed(e)) => Some((Err(e), (rx, true))),
            Some(ReaderMessage::End) => None,
            None => Some((
                Err(ConnectorError::internal(format!(
                    "the {reader} reader stopped before the end of the result"
                ))
                .with_retryable(true)),
                (rx, true),
            )),
        }
    });
    BatchStream::new(schema, stream)
}

/// The query without surrounding whitespace and trailing semicolons, or a `Query` error when
/// nothing is left: sources wrap the query (in `COPY (…)`, a cursor, a job), where a trailing
/// `;` is a syntax error the user did not write.
pub fn normalize_query(query: &str) -> Result<&str, ConnectorError> {
    let q = query
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if q.is_empty() {
        return Err(ConnectorError::new(ErrorKind::Query, "the query is empty"));
    }
    check_read_only(q)?;
    Ok(q)
}

/// Statements that change data or schema, refused as a source query's first word.
const WRITING_STATEMENTS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "TRUNCATE", "DROP", "CREATE",
    "ALTER", "GRANT", "REVOKE", "COPY", "CALL", "DO", "EXEC", "EXECUTE", "LOAD", "UNLOAD",
    "VACUUM", "REINDEX", "CLUSTER", "COMMENT", "LOCK", "PUT", "REMOVE",
];

/// Refuses a source query whose first statement word writes (`DELETE FROM customers`): a
/// sync reads its source and never changes it. Sources also read in read-only sessions where
/// the database allows, which catches what a first word cannot show (a writing CTE); this
/// check makes the common mistake a clear error when the sync is defined, instead of the
/// database's own refusal of a wrapped statement at run time.
pub fn check_read_only(query: &str) -> Result<(), ConnectorError> {
    let first = first_word(query);
    match WRITING_STATEMENTS
        .iter()
        .find(|w| w.eq_ignore_ascii_case(first))
    {
        Some(word) => Err(ConnectorError::new(
            ErrorKind::Query,
            format!(
                "the source query must be read-only (a SELECT): it starts with `{word}`, which \
                 writes"
            ),
        )),
        None => Ok(()),
    }
}

/// The first word of `query` after blanks, `(`, and `--` or `/* */` comments.
fn first_word(query: &str) -> &str {
    let mut rest = query;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_reader_that_stops_without_end_is_a_retryable_error() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;

        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(ReaderMessage::Batch(batch)).await.unwrap();
        drop(tx);
        let mut stream = reader_stream(schema.clone(), rx, "test");
        assert_eq!(stream.next().await.unwrap().unwrap().num_rows(), 2);
        let error = stream.next().await.unwrap().unwrap_err();
        assert!(error.is_retryable(), "{error}");
        assert!(stream.next().await.is_none());

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(ReaderMessage::End).await.unwrap();
        let mut stream = reader_stream(schema, rx, "test");
        assert!(stream.next().await.is_none(), "End ends the stream cleanly");
    }

    #[test]
    fn writing_statements_are_refused_whatever_comes_first() {
        for q in [
            "DELETE FROM customers",
            "  delete from customers",
            "-- clean up\nDELETE FROM t",
            "/* x */ (UPDATE t SET a = 1)",
            "insert into t values (1)",
        ] {
            let e = normalize_query(q).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Query, "{q}");
            assert!(e.message().contains("must be read-only"), "{q}: {e}");
        }
        for q in [
            "SELECT 1",
            "with d as (select 1) select * from d",
            "(SELECT deleted FROM t)",
            "/* DELETE */ SELECT 1",
            "VALUES (1)",
            "SELECT * FROM updates",
        ] {
            assert!(normalize_query(q).is_ok(), "{q}");
        }
    }

    #[test]
    fn strips_blanks_and_trailing_semicolons() {
        assert_eq!(normalize_query("  SELECT 1 ;\n; ").unwrap(), "SELECT 1");
        assert_eq!(normalize_query(" ; ").unwrap_err().kind(), ErrorKind::Query);
    }
}
