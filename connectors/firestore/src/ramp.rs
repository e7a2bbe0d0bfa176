//! Firestore's "500/50/5" ramp-up guidance for Google's service: start at 500 writes per
//! second and grow by 50% every 5 minutes, so a large first sync into a new collection does
//! not outrun the service's splitting of hot key ranges. Emulators get no limit.

use std::time::{Duration, Instant};

/// The starting write rate, per second.
const BASE_RATE: f64 = 500.0;
/// How often the rate may grow by half.
const STEP: Duration = Duration::from_secs(300);

/// The write rate Firestore's guidance allows `elapsed` after the first write.
pub(crate) fn allowed_rate(elapsed: Duration) -> f64 {
    let steps = (elapsed.as_secs() / STEP.as_secs()).min(40) as i32;
    BASE_RATE * 1.5f64.powi(steps)
}

/// Paces one writer's commits to the ramp-up rate.
#[derive(Debug)]
pub(crate) struct RampUp {
    start: Option<Instant>,
    window: Instant,
    in_window: f64,
}

impl RampUp {
    /// A pacer whose clock starts at the first write.
    pub(crate) fn new() -> Self {
        Self {
            start: None,
            window: Instant::now(),
            in_window: 0.0,
        }
    }

    /// Waits until `writes` more fit in the current one-second window.
    pub(crate) async fn admit(&mut self, writes: usize) {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.in_window = 0.0;
        }
        let rate = allowed_rate(now.duration_since(start));
        if self.in_window > 0.0 && self.in_window + writes as f64 > rate {
            let next = self.window + Duration::from_secs(1);
            tracing::debug!(rate, "write rate at the ramp-up limit, pacing");
            tokio::time::sleep_until(next.into()).await;
            self.window = next;
            self.in_window = 0.0;
        }
        self.in_window += writes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_every_five_minutes() {
        assert_eq!(allowed_rate(Duration::ZERO), 500.0);
        assert_eq!(allowed_rate(Duration::from_secs(299)), 500.0);
        assert_eq!(allowed_rate(Duration::from_secs(300)), 750.0);
        assert_eq!(
            allowed_rate(Duration::from_secs(900)),
            500.0 * 1.5 * 1.5 * 1.5
        );
    }
}
