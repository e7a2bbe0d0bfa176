//! A run's results on the wire: counts, stage timings and rejected rows, which the worker
//! reports and the control plane stores and shows.

use backflow_engine::{RejectedOperation, RejectedRow, RunCounts, StageTimings};
use backflow_proto::v1;

use super::time::{duration_from_proto, duration_to_proto};

/// The engine's counts on the wire.
pub fn counts_to_proto(c: &RunCounts) -> v1::RunCounts {
    v1::RunCounts {
        read: c.read,
        added: c.added,
        changed: c.changed,
        unchanged: c.unchanged,
        removed: c.removed,
        written: c.written,
        deleted: c.deleted,
        failed: c.failed,
        skipped: c.skipped,
    }
}

/// Counts from the wire.
pub fn counts_from_proto(c: &v1::RunCounts) -> RunCounts {
    RunCounts {
        read: c.read,
        added: c.added,
        changed: c.changed,
        unchanged: c.unchanged,
        removed: c.removed,
        written: c.written,
        deleted: c.deleted,
        failed: c.failed,
        skipped: c.skipped,
    }
}

/// The engine's stage timings on the wire.
pub fn timings_to_proto(t: &StageTimings) -> v1::RunTimings {
    v1::RunTimings {
        source_read: Some(duration_to_proto(t.source_read)),
        diff: Some(duration_to_proto(t.diff)),
        destination_write: Some(duration_to_proto(t.destination_write)),
        snapshot_write: Some(duration_to_proto(t.snapshot_write)),
        total: Some(duration_to_proto(t.total)),
    }
}

/// Timings from the wire; a missing or negative duration counts as zero, because timings are
/// informational and must not fail a completed run.
pub fn timings_from_proto(t: &v1::RunTimings) -> StageTimings {
    let d = |d: &Option<prost_types::Duration>| {
        d.as_ref().and_then(duration_from_proto).unwrap_or_default()
    };
    StageTimings {
        source_read: d(&t.source_read),
        diff: d(&t.diff),
        destination_write: d(&t.destination_write),
        snapshot_write: d(&t.snapshot_write),
        total: d(&t.total),
    }
}

/// A rejected row on the wire; the operation travels as the word `write` or `delete`.
pub fn rejected_to_proto(r: &RejectedRow) -> v1::RejectedRow {
    v1::RejectedRow {
        key: r.key.clone(),
        column: r.column.clone().unwrap_or_default(),
        message: r.message.clone(),
        operation: match r.operation {
            RejectedOperation::Write => "write",
            RejectedOperation::Delete => "delete",
        }
        .into(),
    }
}

/// A rejected row from the wire; an empty column means the destination named none, and any
/// operation but `delete` is a write.
pub fn rejected_from_proto(r: &v1::RejectedRow) -> RejectedRow {
    RejectedRow {
        key: r.key.clone(),
        column: (!r.column.is_empty()).then(|| r.column.clone()),
        message: r.message.clone(),
        operation: if r.operation == "delete" {
            RejectedOperation::Delete
        } else {
            RejectedOperation::Write
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_and_timings_round_trip() {
        let counts = RunCounts {
            read: 1,
            added: 2,
            changed: 3,
            unchanged: 4,
            removed: 5,
            written: 6,
            deleted: 7,
            failed: 8,
            skipped: 9,
        };
        assert_eq!(counts_from_proto(&counts_to_proto(&counts)), counts);
        let timings = StageTimings {
            source_read: Duration::from_millis(1),
            diff: Duration::from_millis(2),
            destination_write: Duration::from_millis(3),
            snapshot_write: Duration::from_millis(4),
            total: Duration::from_millis(5),
        };
        assert_eq!(timings_from_proto(&timings_to_proto(&timings)), timings);
        assert_eq!(
            timings_from_proto(&v1::RunTimings::default()),
            StageTimings::default()
        );
    }

    #[test]
    fn rejected_rows_carry_their_operation_as_a_word() {
        let row = RejectedRow {
            key: "id=1".into(),
            column: None,
            message: "value too long".into(),
            operation: RejectedOperation::Delete,
        };
        let p = rejected_to_proto(&row);
        assert_eq!(p.operation, "delete");
        assert_eq!(p.column, "");
        assert_eq!(p.key, "id=1");
        assert_eq!(rejected_from_proto(&p), row);
    }
}
