//! Isolating the rows a destination refuses.
//!
//! Destinations write a batch in as few round trips as they can, but a database refuses a
//! statement (or a transaction, or a commit) as a whole when one of its rows breaks a
//! constraint. The contract wants every other row applied and each refused one reported
//! with the database's own message, so the group is written again in halves until each
//! refused row stands alone. Writes must therefore be all-or-nothing per attempt (a
//! transaction) or idempotent (re-running a half that partly landed changes nothing).
//!
//! [`Bisection`] is that loop's bookkeeping, once. A destination supplies the attempt: it
//! writes the sub-range of its rows the bisection hands out and says whether a failure is
//! the rows' fault (split) or not (stop). What an accepted attempt returns (skipped keys,
//! per-row fates) and how a lone refusal becomes a rejected row stay the destination's.

use std::ops::Range;

use crate::destination::{RowFailure, WriteOutcome};
use crate::error::ConnectorError;

/// Why one attempt at a group of rows did not land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError<R, E> {
    /// Some row of the group is at fault and nothing of the attempt stayed behind (or what
    /// did is harmless to write again): the group is split, and a lone row refused this way
    /// is reported with `R`.
    Refused(R),
    /// Nothing the rows can fix (the connection broke, a permission is missing): bisection
    /// stops and `E` is returned as it is, so no later row is marked written.
    Fatal(E),
}

impl<E> AttemptError<E, E> {
    /// `Refused` when `rows_at_fault` says the error is the rows' doing (a constraint, a
    /// value the database cannot store), `Fatal` otherwise: the one decision a destination
    /// whose driver has a single error type makes about every failed attempt.
    pub fn refused_if(error: E, rows_at_fault: impl FnOnce(&E) -> bool) -> Self {
        if rows_at_fault(&error) {
            Self::Refused(error)
        } else {
            Self::Fatal(error)
        }
    }
}

/// Hands out the groups of rows to attempt and keeps what became of them: the caller runs
/// `while let Some(group) = bisection.next_group() { … bisection.record(result)?; }` and
/// then reads the [`Bisected`] rows from [`Bisection::finish`].
///
/// The caller drives the loop (rather than passing an async closure) because a future that
/// holds an async closure borrowing the writer is not provably `Send`, and every writer
/// runs inside a `Send` future.
#[derive(Debug)]
pub struct Bisection<A, R> {
    /// Groups still to attempt, the next one last.
    pending: Vec<Range<usize>>,
    /// The group handed out by `next_group` and not yet recorded.
    current: Option<Range<usize>>,
    done: Bisected<A, R>,
}

/// What became of every row of a [`Bisection`]. Rows not refused are exactly the rows of
/// `accepted`, each in one range only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bisected<A, R> {
    /// The ranges the destination took, in ascending order, with what each attempt returned
    /// (skipped rows, a server reply).
    pub accepted: Vec<(Range<usize>, A)>,
    /// The rows refused on their own, in ascending order, with the refusal.
    pub refused: Vec<(usize, R)>,
    /// How many attempts ran: at most `2n - 1` for `n` rows, and about `2k·log2(n) + 1`
    /// when `k` of them are refused.
    pub attempts: usize,
    /// How many refused groups were split in halves.
    pub splits: usize,
}

impl<R> Bisected<Vec<usize>, R> {
    /// Settles a batch whose positions `0..rows.len()` were bisected, for a destination
    /// whose attempts return the batch rows they skipped: adds those to `outcome.skipped`,
    /// each refused position `i` as a failure of batch row `rows[i]` with the message
    /// `error` makes of its refusal, and sorts both lists, since the engine expects
    /// ascending rows (failures found before writing may already be in `outcome`).
    pub fn settle(
        self,
        rows: &[usize],
        outcome: &mut WriteOutcome,
        error: impl Fn(R) -> ConnectorError,
    ) {
        for (_, skipped) in self.accepted {
            outcome.skipped.extend(skipped);
        }
        for (i, refusal) in self.refused {
            outcome
                .failed
                .push(RowFailure::from_error(rows[i], &error(refusal)));
        }
        outcome.failed.sort_by_key(|f| f.row);
        outcome.skipped.sort_unstable();
    }
}

impl<A, R> Bisection<A, R> {
    /// Starts with the rows `rows` as one group; an empty range makes no attempt.
    pub fn new(rows: Range<usize>) -> Self {
        Self::from_groups([rows])
    }

    /// Starts with several groups (chunks a destination sizes for its own limits), attempted
    /// in the order given.
    pub fn from_groups(groups: impl IntoIterator<Item = Range<usize>>) -> Self {
        let mut pending: Vec<Range<usize>> = groups.into_iter().collect();
        pending.reverse();
        Self {
            pending,
            current: None,
            done: Bisected {
                accepted: Vec::new(),
                refused: Vec::new(),
                attempts: 0,
                splits: 0,
            },
        }
    }

    /// The next group to attempt (never empty), or `None` once every row is settled. Groups
    /// come depth first, left half first, so results are recorded in row order. Each group
    /// handed out must be [`record`](Self::record)ed before asking for the next.
    pub fn next_group(&mut self) -> Option<Range<usize>> {
        debug_assert!(self.current.is_none(), "the last group was not recorded");
        while let Some(group) = self.pending.pop() {
            if !group.is_empty() {
                self.done.attempts += 1;
                self.current = Some(group.clone());
                return Some(group);
            }
        }
        None
    }

    /// Records how the attempt at the last group went: `Ok` accepts its rows, a refusal
    /// splits it in halves (or, for a lone row, settles that row as refused), and a fatal
    /// error is handed back so the caller stops with nothing more marked written.
    pub fn record<E>(&mut self, result: Result<A, AttemptError<R, E>>) -> Result<(), E> {
        let Some(group) = self.current.take() else {
            debug_assert!(false, "record without a group handed out");
            return Ok(());
        };
        match result {
            Ok(accepted) => self.done.accepted.push((group, accepted)),
            Err(AttemptError::Fatal(e)) => return Err(e),
            Err(AttemptError::Refused(refusal)) if group.len() == 1 => {
                self.done.refused.push((group.start, refusal));
            }
            Err(AttemptError::Refused(_)) => {
                self.done.splits += 1;
                tracing::debug!(rows = group.len(), "group refused; splitting it in halves");
                let mid = group.start + group.len() / 2;
                self.pending.push(mid..group.end);
                self.pending.push(group.start..mid);
            }
        }
        Ok(())
    }

    /// What became of the rows; call once `next_group` returned `None`.
    pub fn finish(self) -> Bisected<A, R> {
        debug_assert!(
            self.pending.is_empty() && self.current.is_none(),
            "finished with rows unsettled"
        );
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bisects `rows` as one group; see [`run_groups`].
    fn run(rows: Range<usize>, bad: &[usize]) -> (Bisected<Vec<usize>, String>, Vec<Range<usize>>) {
        run_groups(std::iter::once(rows), bad)
    }

    /// Bisects `groups` against a destination that refuses any group holding one of `bad`,
    /// with the row's message. Returns what was settled and every group attempted.
    fn run_groups(
        groups: impl IntoIterator<Item = Range<usize>>,
        bad: &[usize],
    ) -> (Bisected<Vec<usize>, String>, Vec<Range<usize>>) {
        let mut tried = Vec::new();
        let mut bisection = Bisection::from_groups(groups);
        while let Some(group) = bisection.next_group() {
            tried.push(group.clone());
            let result = match group.clone().find(|r| bad.contains(r)) {
                Some(r) => Err(AttemptError::<_, ()>::Refused(format!("row {r} refused"))),
                None => Ok(group.collect::<Vec<usize>>()),
            };
            bisection.record(result).unwrap();
        }
        (bisection.finish(), tried)
    }

    #[test]
    fn every_refused_row_stands_alone_and_every_other_row_is_accepted_once() {
        for n in [1, 2, 3, 7, 8, 100, 1000] {
            for mut bad in [
                vec![],
                vec![0],
                vec![n - 1],
                vec![0, n / 2, n - 1],
                (0..n).step_by(3).collect(),
                (0..n).collect(),
            ] {
                bad.dedup();
                let (b, tried) = run(0..n, &bad);
                let refused: Vec<usize> = b.refused.iter().map(|(r, _)| *r).collect();
                assert_eq!(refused, bad, "n={n}");
                for (row, message) in &b.refused {
                    assert_eq!(message, &format!("row {row} refused"));
                }
                let accepted: Vec<usize> = b.accepted.iter().flat_map(|(_, a)| a.clone()).collect();
                let expected: Vec<usize> = (0..n).filter(|r| !bad.contains(r)).collect();
                assert_eq!(accepted, expected, "accepted once each, in order (n={n})");
                for (range, rows) in &b.accepted {
                    assert_eq!(range.clone().collect::<Vec<_>>(), *rows);
                }
                assert_eq!(b.attempts, tried.len());
                assert!(tried.iter().all(|r| !r.is_empty()), "no empty attempt");
                assert!(
                    b.attempts < 2 * n,
                    "at most 2n-1 attempts (n={n}: {})",
                    b.attempts
                );
                assert_eq!(b.splits, b.attempts - b.accepted.len() - b.refused.len());
            }
        }
    }

    #[test]
    fn one_refused_row_costs_logarithmically_many_attempts() {
        let (b, _) = run(0..1024, &[517]);
        // One attempt per level on the refused row's side and one for each accepted sibling:
        // 2·log2(1024) + 1.
        assert_eq!((b.attempts, b.splits), (21, 10));
        let (b, _) = run(0..1024, &[]);
        assert_eq!((b.attempts, b.splits), (1, 0));
    }

    #[test]
    fn groups_keep_their_offsets_and_order_and_empty_ones_make_no_attempt() {
        let (b, tried) = run(10..14, &[12]);
        assert_eq!(b.refused, vec![(12, "row 12 refused".to_string())]);
        assert_eq!(tried, vec![10..14, 10..12, 12..14, 12..13, 13..14]);
        let (b, tried) = run(5..5, &[]);
        assert!(tried.is_empty());
        assert_eq!(b.attempts, 0);
        let (b, tried) = run_groups(vec![0..2, 2..2, 2..5], &[3]);
        assert_eq!(tried, vec![0..2, 2..5, 2..3, 3..5, 3..4, 4..5]);
        let ranges: Vec<_> = b.accepted.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..3, 4..5]);
    }

    #[test]
    fn a_fatal_error_is_handed_back_at_once() {
        let mut tried = Vec::new();
        let mut bisection = Bisection::<(), ()>::new(0..8);
        let mut fatal = None;
        while let Some(group) = bisection.next_group() {
            tried.push(group.clone());
            let result = if !group.contains(&5) {
                Ok(())
            } else if group.len() == 2 {
                Err(AttemptError::Fatal("connection lost"))
            } else {
                Err(AttemptError::Refused(()))
            };
            if let Err(e) = bisection.record(result) {
                fatal = Some(e);
                break;
            }
        }
        assert_eq!(fatal, Some("connection lost"));
        assert_eq!(tried, vec![0..8, 0..4, 4..8, 4..6]);
    }

    #[test]
    fn settling_reports_batch_rows_in_ascending_order() {
        let rows = [2, 4, 6, 8];
        let mut bisection = Bisection::new(0..rows.len());
        while let Some(group) = bisection.next_group() {
            let result = if group.contains(&1) || group.contains(&3) {
                Err(AttemptError::<_, ()>::Refused(format!(
                    "bad {}",
                    group.start
                )))
            } else {
                // The database names skipped rows in any order.
                Ok(group.rev().map(|i| rows[i] + 100).collect())
            };
            bisection.record(result).unwrap();
        }
        let mut outcome = WriteOutcome {
            failed: vec![RowFailure::from_error(
                5,
                &ConnectorError::internal("encoding"),
            )],
            skipped: vec![300],
        };
        bisection
            .finish()
            .settle(&rows, &mut outcome, ConnectorError::internal);
        let failed: Vec<(usize, &str)> = outcome
            .failed
            .iter()
            .map(|f| (f.row, f.message.as_str()))
            .collect();
        assert_eq!(failed, vec![(4, "bad 1"), (5, "encoding"), (8, "bad 3")]);
        assert_eq!(outcome.skipped, vec![102, 106, 300]);
    }

    #[test]
    fn refused_if_sorts_by_the_predicate() {
        assert_eq!(
            AttemptError::refused_if(3, |e| *e > 2),
            AttemptError::Refused(3)
        );
        assert_eq!(
            AttemptError::refused_if(1, |e| *e > 2),
            AttemptError::Fatal(1)
        );
    }
}
