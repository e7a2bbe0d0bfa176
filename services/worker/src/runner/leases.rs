//! The leases this worker holds, and the one task that keeps them alive.
//!
//! A lease expires unless the worker heartbeats, so heartbeats run on their own task and are
//! never delayed by the work they protect: one `Heartbeat` call carries every held lease, at
//! the shortest interval any of them asks for. The answers are turned into stop signals that
//! each run watches: a lease that is no longer ours stops its run silently, a cancelled run
//! stops and reports itself cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use backflow_proto::v1 as pb;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::runner::backoff::Backoff;
use crate::runner::client::{with_timeout, WorkerClient};
use crate::runner::convert::time_from_proto;

/// Why a run must stop, in increasing precedence: a later, stronger reason replaces a weaker
/// one, never the reverse (a lost lease is never reported, even if it was also cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stop {
    /// Keep going.
    Continue,
    /// The worker is shutting down and the grace period is over: hand the run back.
    Shutdown,
    /// A user cancelled the run: stop and report it cancelled.
    Cancelled,
    /// The lease expired or was granted again: stop and report nothing.
    Lost,
}

/// One lease this worker holds.
#[derive(Debug)]
pub(crate) struct HeldLease {
    lease: pb::LeaseRef,
    interval: Duration,
    deadline: Mutex<SystemTime>,
    stop: watch::Sender<Stop>,
}

impl HeldLease {
    /// The lease, as every report must carry it.
    pub(crate) fn lease(&self) -> &pb::LeaseRef {
        &self.lease
    }

    /// The current stop signal.
    pub(crate) fn stop(&self) -> Stop {
        *self.stop.borrow()
    }

    /// Follows the stop signal.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Stop> {
        self.stop.subscribe()
    }

    /// Raises the stop signal to `stop` unless a stronger one is already set.
    pub(crate) fn signal(&self, stop: Stop) {
        self.stop.send_if_modified(|current| {
            let raise = stop > *current;
            if raise {
                *current = stop;
            }
            raise
        });
    }

    /// When the lease expires unless extended, by the control plane's clock.
    pub(crate) fn deadline(&self) -> SystemTime {
        *lock(&self.deadline)
    }

    fn extend(&self, deadline: SystemTime) {
        *lock(&self.deadline) = deadline;
    }
}

/// The leases this worker holds, shared by the runs and the heartbeat task.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<pb::LeaseRef, Arc<HeldLease>>>,
    changed: Notify,
}

/// A held lease; dropping it stops its heartbeats, however the run ended.
#[derive(Debug)]
pub(crate) struct LeaseGuard {
    leases: Arc<Leases>,
    held: Arc<HeldLease>,
}

impl std::ops::Deref for LeaseGuard {
    type Target = HeldLease;

    fn deref(&self) -> &HeldLease {
        &self.held
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        lock(&self.leases.held).remove(&self.held.lease);
        self.leases.changed.notify_one();
    }
}

impl Leases {
    /// Starts heartbeating `lease` every `interval` until the guard is dropped.
    pub(crate) fn hold(
        self: &Arc<Self>,
        lease: pb::LeaseRef,
        interval: Duration,
        deadline: SystemTime,
    ) -> LeaseGuard {
        let (stop, _) = watch::channel(Stop::Continue);
        let held = Arc::new(HeldLease {
            lease: lease.clone(),
            interval,
            deadline: Mutex::new(deadline),
            stop,
        });
        lock(&self.held).insert(lease, held.clone());
        self.changed.notify_one();
        LeaseGuard {
            leases: self.clone(),
            held,
        }
    }

    /// How many leases are held.
    pub(crate) fn len(&self) -> usize {
        lock(&self.held).len()
    }

    /// Raises `stop` on every held lease; returns how many there were.
    pub(crate) fn signal_all(&self, stop: Stop) -> usize {
        let held = lock(&self.held);
        for lease in held.values() {
            lease.signal(stop);
        }
        held.len()
    }

    /// The leases to heartbeat and the shortest interval among them.
    fn due(&self) -> (Vec<pb::LeaseRef>, Option<Duration>) {
        let held = lock(&self.held);
        let interval = held.values().map(|h| h.interval).min();
        (held.keys().cloned().collect(), interval)
    }

    /// Applies a heartbeat's answers: new deadlines, and stop signals for lost or cancelled
    /// runs. Answers are matched by their `ref`, or by position when the control plane left
    /// it out ("one status per requested lease, in request order").
    pub(crate) fn apply(&self, sent: &[pb::LeaseRef], statuses: &[pb::LeaseStatus]) {
        let held = lock(&self.held);
        for (i, status) in statuses.iter().enumerate() {
            let Some(lease) = status.r#ref.as_ref().or_else(|| sent.get(i)) else {
                continue;
            };
            let Some(h) = held.get(lease) else {
                // Released while the heartbeat was in flight.
                continue;
            };
            if !status.valid {
                h.signal(Stop::Lost);
                continue;
            }
            if status.cancel_requested {
                h.signal(Stop::Cancelled);
            }
            if let Some(deadline) = time_from_proto(status.deadline.as_ref()) {
                h.extend(deadline);
            }
        }
    }

    /// Stops every run whose lease is about to expire by this machine's clock without a
    /// renewal: one heartbeat interval before the deadline, the control plane may soon grant
    /// the run again, and two attempts must not write the same rows at once. The run's write
    /// journal makes the next attempt exact about what this one wrote.
    pub(crate) fn fence_expiring(&self, now: SystemTime) {
        for h in lock(&self.held).values() {
            if h.stop() != Stop::Lost && now + h.interval >= h.deadline() {
                warn!(
                    run_id = %h.lease.run,
                    "no heartbeat reached the control plane before the lease deadline; stopping the run"
                );
                h.signal(Stop::Lost);
            }
        }
    }
}

/// Sends one `Heartbeat` for all held leases at the shortest interval they ask for, and
/// sooner (with backoff) after a failed one, so a control plane that comes back finds the
/// leases renewed before they expire; a lease that could not be renewed in time stops its
/// run ([`Leases::fence_expiring`]). Runs until aborted.
pub(crate) async fn heartbeat_loop(client: WorkerClient, worker_id: String, leases: Arc<Leases>) {
    let mut backoff = Backoff::new();
    let mut retry_after: Option<Duration> = None;
    let mut last_beat = Instant::now();
    loop {
        let (_, interval) = leases.due();
        let Some(interval) = interval else {
            // Nothing held: sleep until a lease arrives; it was just granted, so it is fresh.
            leases.changed.notified().await;
            last_beat = Instant::now();
            continue;
        };
        let wait = retry_after.map_or(interval, |r| r.min(interval));
        tokio::select! {
            () = tokio::time::sleep_until(last_beat + wait) => {}
            // The set changed: recompute the interval from the same last beat.
            () = leases.changed.notified() => continue,
        }
        let (sent, _) = leases.due();
        if sent.is_empty() {
            continue;
        }
        last_beat = Instant::now();
        let request = pb::HeartbeatRequest {
            worker_id: worker_id.clone(),
            leases: sent.clone(),
        };
        let limit = interval.clamp(Duration::from_secs(1), Duration::from_secs(10));
        match with_timeout(limit, client.clone().heartbeat(request)).await {
            Ok(response) => {
                if retry_after.take().is_some() {
                    info!(
                        leases = sent.len(),
                        "heartbeats reach the control plane again"
                    );
                }
                backoff.reset();
                debug!(leases = sent.len(), "heartbeat sent");
                leases.apply(&sent, &response.leases);
            }
            Err(status) => {
                warn!(
                    code = ?status.code(),
                    message = status.message(),
                    leases = sent.len(),
                    "heartbeat failed; retrying"
                );
                retry_after = Some(backoff.next_delay());
            }
        }
        leases.fence_expiring(SystemTime::now());
    }
}

/// A poisoned lock only means another task panicked mid-update of plain data; keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(run: &str) -> pb::LeaseRef {
        pb::LeaseRef {
            run: format!("runs/{run}"),
            lease_id: format!("l-{run}"),
            attempt: 1,
        }
    }

    #[test]
    fn heartbeat_answers_become_stop_signals_and_deadlines() {
        let leases = Arc::new(Leases::default());
        let now = SystemTime::now();
        let a = leases.hold(lease("a"), Duration::from_secs(5), now);
        let b = leases.hold(lease("b"), Duration::from_secs(2), now);
        let c = leases.hold(lease("c"), Duration::from_secs(9), now);
        let (sent, interval) = leases.due();
        assert_eq!(sent.len(), 3);
        assert_eq!(interval, Some(Duration::from_secs(2)));

        let later = now + Duration::from_secs(30);
        let statuses = vec![
            pb::LeaseStatus {
                r#ref: Some(lease("a")),
                valid: true,
                cancel_requested: false,
                deadline: Some(later.into()),
            },
            pb::LeaseStatus {
                r#ref: Some(lease("b")),
                valid: false,
                cancel_requested: true,
                deadline: None,
            },
            pb::LeaseStatus {
                r#ref: Some(lease("c")),
                valid: true,
                cancel_requested: true,
                deadline: None,
            },
        ];
        leases.apply(&sent, &statuses);
        assert_eq!(a.stop(), Stop::Continue);
        assert_eq!(a.deadline(), later);
        assert_eq!(b.stop(), Stop::Lost);
        assert_eq!(c.stop(), Stop::Cancelled);

        // A weaker reason never replaces a stronger one.
        leases.signal_all(Stop::Shutdown);
        assert_eq!(a.stop(), Stop::Shutdown);
        assert_eq!(b.stop(), Stop::Lost);
        assert_eq!(c.stop(), Stop::Cancelled);

        drop(b);
        assert_eq!(leases.len(), 2);
        assert_eq!(leases.due().1, Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_lease_not_renewed_in_time_stops_its_run_one_interval_early() {
        let leases = Arc::new(Leases::default());
        let now = SystemTime::now();
        let deadline = now + Duration::from_secs(17);
        let held = leases.hold(lease("a"), Duration::from_secs(5), deadline);
        leases.fence_expiring(now + Duration::from_secs(11));
        assert_eq!(
            held.stop(),
            Stop::Continue,
            "still more than an interval left"
        );
        leases.fence_expiring(now + Duration::from_secs(12));
        assert_eq!(held.stop(), Stop::Lost);
    }
}
