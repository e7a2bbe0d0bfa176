//! Retries with exponential backoff and jitter on `UNAVAILABLE`, for the calls that are safe
//! to repeat: reads, and `TriggerSync` because the client always sends a `request_id` (the
//! server returns the run of a request id it has seen instead of queueing another).

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;
use tonic::Status;

use crate::Error;

/// How often and how patiently a safe call is repeated while the server is unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `1` turns retries off.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per retry.
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts over about three seconds: enough to ride out a control-plane restart
    /// behind a load balancer without hiding a real outage for long.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries: every failure is returned at once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (1-based): the exponential step, with "equal
    /// jitter" (half fixed, half random) so many clients do not retry in lockstep.
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let step = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(20)))
            .min(self.max_backoff);
        let half = step / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Whether a call may be repeated without doing twice what it did once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, and writes the server deduplicates.
    Safe,
    /// Creates: a retry after a lost answer would fail with `ALREADY_EXISTS`, hiding success.
    Unsafe,
}

/// Runs `call` until it succeeds, fails with something other than `UNAVAILABLE`, is not safe
/// to repeat, or has used up the policy's attempts.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    method: &'static str,
    idempotency: Idempotency,
    mut call: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && idempotency == Idempotency::Safe
                    && attempt < policy.max_attempts =>
            {
                let delay = policy.delay(attempt);
                tracing::debug!(
                    method,
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason = status.message(),
                    "control plane unavailable, retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    /// A call that is unavailable `failures` times, then answers.
    fn flaky(
        calls: &AtomicU32,
        failures: u32,
    ) -> impl Future<Output = Result<tonic::Response<u32>, Status>> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures {
                Err(Status::unavailable("restarting"))
            } else {
                Ok(tonic::Response::new(n))
            }
        }
    }

    #[tokio::test]
    async fn safe_calls_are_retried_until_they_answer() {
        let calls = AtomicU32::new(0);
        let answer = with_retries(&quick(5), "GetRun", Idempotency::Safe, || flaky(&calls, 3))
            .await
            .unwrap();
        assert_eq!(answer, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn retries_stop_at_the_policys_limit() {
        let calls = AtomicU32::new(0);
        let error = with_retries(&quick(3), "GetRun", Idempotency::Safe, || flaky(&calls, 10))
            .await
            .unwrap_err();
        assert!(error.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unsafe_calls_and_other_codes_are_not_retried() {
        let calls = AtomicU32::new(0);
        let error = with_retries(&quick(5), "CreateSync", Idempotency::Unsafe, || {
            flaky(&calls, 10)
        })
        .await
        .unwrap_err();
        assert_eq!(error.code(), Some(tonic::Code::Unavailable));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let error = with_retries(&quick(5), "GetRun", Idempotency::Safe, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<tonic::Response<()>, _>(Status::not_found("run `x` not found")) }
        })
        .await
        .unwrap_err();
        assert_eq!(error.code(), Some(tonic::Code::NotFound));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let policy = RetryPolicy::default();
        for retry in 1..=30 {
            let delay = policy.delay(retry);
            let step =
                (policy.initial_backoff * 2u32.pow((retry - 1).min(20))).min(policy.max_backoff);
            assert!(
                delay >= step / 2 && delay <= step,
                "retry {retry}: {delay:?}"
            );
        }
    }
}
