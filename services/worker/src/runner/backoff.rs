//! Exponential backoff with jitter, for every call that waits out a control-plane outage.
//!
//! Jitter keeps the workers of a fleet from reconnecting in lockstep when a restarted control
//! plane comes back; the cap keeps an outage from delaying recovery by more than a few seconds.

use std::time::Duration;

use rand::Rng;

/// First delay after a failure.
pub(crate) const INITIAL: Duration = Duration::from_millis(100);
/// Longest delay, however long the outage.
pub(crate) const MAX: Duration = Duration::from_secs(5);

/// Delays that double from [`INITIAL`] to [`MAX`]; each delay is drawn from the upper half of
/// the current step ("equal jitter"), so it is never shorter than half the step.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    step: Duration,
}

impl Backoff {
    /// A backoff at its first step.
    pub(crate) fn new() -> Self {
        Self { step: INITIAL }
    }

    /// The delay to wait now; the next one will be about twice as long, up to [`MAX`].
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(MAX);
        let half = step / 2;
        let jitter_nanos = rand::rng().random_range(0..=half.as_nanos() as u64);
        half + Duration::from_nanos(jitter_nanos)
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.step = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_100ms_and_stay_within_5s() {
        let mut backoff = Backoff::new();
        let mut step = INITIAL;
        for _ in 0..40 {
            let delay = backoff.next_delay();
            assert!(delay >= step / 2, "{delay:?} shorter than half of {step:?}");
            assert!(delay <= step, "{delay:?} longer than {step:?}");
            assert!(delay <= MAX);
            step = (step * 2).min(MAX);
        }
        // After many failures the delay sits in the top band, never above the cap.
        let late = backoff.next_delay();
        assert!(late >= MAX / 2 && late <= MAX, "{late:?}");
    }

    #[test]
    fn reset_starts_again_at_the_first_step() {
        let mut backoff = Backoff::new();
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL);
    }
}
