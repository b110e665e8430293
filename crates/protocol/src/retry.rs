//! One retry policy for every call to another system (registries, GitHub, smoke checks): what
//! we promise is written once here. A caller says only what differs (its deadline, its first
//! delay) and what its errors mean (transient or not, a server's `Retry-After`).
//!
//! The rules: wait `first`, then twice as long each time, never more than `cap`, with jitter
//! (a random half of each wait, so many workers retrying one registry do not stampede it);
//! a server's `Retry-After` replaces the backoff; no wait ends past the deadline: the caller
//! gives up instead, saying so. Each retry is logged with its reason. Time is tokio's, so tests
//! run under a paused clock (`#[tokio::test(start_paused = true)]`) and take no real time.
//! Hand-written (about forty lines): `backon` would bring its own sleeper and builder types for
//! the same arithmetic, and our callers need the Retry-After override and the log line anyway.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;
use tokio::time::Instant;

/// What a caller retries under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long the whole operation may take, retries included.
    pub deadline: Duration,
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Policy {
    pub const fn new(deadline: Duration, first: Duration) -> Self {
        Policy {
            deadline,
            first,
            cap: Duration::from_secs(30),
        }
    }

    /// Starts counting: the deadline runs from now.
    pub fn start(&self) -> Retries {
        self.start_until(Instant::now() + self.deadline)
    }

    /// Starts counting towards a deadline shared with other operations (the backoff starts
    /// afresh; `deadline` in the policy is not used).
    pub fn start_until(&self, deadline: Instant) -> Retries {
        Retries {
            policy: *self,
            deadline,
            attempt: 0,
        }
    }

    /// With another longest wait.
    pub const fn capped(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }
}

/// The next wait would end past the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    /// Retries made before giving up.
    pub retries: u32,
}

/// One operation's retries.
#[derive(Debug)]
pub struct Retries {
    policy: Policy,
    deadline: Instant,
    attempt: u32,
}

impl Retries {
    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.attempt
    }

    /// Time left before the deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The wait before retry `n` (1-based), before jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        self.policy
            .first
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
            .min(self.policy.cap)
    }

    /// Waits before the next attempt and logs why (`{what}: {reason}; retry 2 in 1.3s`): the
    /// server's `retry_after` if it gave one, else the backoff with jitter. `Err` (without
    /// waiting) when that wait would end past the deadline.
    pub async fn wait(
        &mut self,
        what: &str,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Result<(), GaveUp> {
        let n = self.attempt + 1;
        let delay = retry_after.unwrap_or_else(|| jitter(self.backoff(n)));
        if delay > self.left() {
            return Err(GaveUp {
                retries: self.attempt,
            });
        }
        self.attempt = n;
        tracing::warn!("{what}: {reason}; retry {n} in {:.1}s", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

impl Retries {
    /// For waits that poll until the deadline (a merge waiting for checks, a smoke check that
    /// must pass): sleeps the backoff, or only what is left when the backoff would pass the
    /// deadline, so the last look is taken at the deadline itself. `false`, without sleeping,
    /// once the deadline has passed. No log line: the caller says what it waits for.
    pub async fn poll(&mut self) -> bool {
        let left = self.left();
        if left.is_zero() {
            return false;
        }
        self.attempt += 1;
        let delay = jitter(self.backoff(self.attempt)).min(left);
        tokio::time::sleep(delay).await;
        true
    }
}

/// Half the wait, plus a random part of the other half. The randomness is std's per-process
/// hash seed: enough to spread workers apart, with no random-number crate.
fn jitter(d: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let fraction = (h.finish() % 1000) as u32;
    d / 2 + (d / 2) * fraction / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_with_jitter_and_stop_before_the_deadline() {
        let policy = Policy::new(Duration::from_secs(10), Duration::from_secs(1));
        let mut retries = policy.start();
        let start = Instant::now();
        let mut waits = Vec::new();
        loop {
            let before = Instant::now();
            if retries.wait("op", "HTTP 503", None).await.is_err() {
                break;
            }
            waits.push(before.elapsed());
        }
        // 1 s, 2 s, 4 s backoffs, each with up to half taken off by jitter; the next (8 s) would
        // pass the deadline.
        assert!(waits.len() >= 3, "{waits:?}");
        for (i, w) in waits.iter().enumerate() {
            let full = Duration::from_secs(1 << i);
            assert!(*w >= full / 2 && *w <= full, "wait {i}: {w:?}");
        }
        assert!(start.elapsed() <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_servers_retry_after_replaces_the_backoff_but_not_the_deadline() {
        let policy = Policy::new(Duration::from_secs(60), Duration::from_millis(100));
        let mut retries = policy.start();
        let before = Instant::now();
        retries
            .wait("op", "HTTP 429", Some(Duration::from_secs(7)))
            .await
            .unwrap();
        assert_eq!(before.elapsed(), Duration::from_secs(7));
        assert_eq!(
            retries
                .wait("op", "HTTP 429", Some(Duration::from_secs(120)))
                .await,
            Err(GaveUp { retries: 1 })
        );
        // Giving up does not wait.
        assert_eq!(before.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn polling_takes_its_last_look_at_the_deadline_itself() {
        let policy = Policy::new(Duration::from_secs(5), Duration::from_secs(1))
            .capped(Duration::from_secs(2));
        let mut retries = policy.start();
        let start = Instant::now();
        let mut looks = 0;
        while retries.poll().await {
            looks += 1;
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "the last sleep ends at the deadline"
        );
        assert!((3..=10).contains(&looks), "{looks}");
    }

    #[test]
    fn backoff_is_capped() {
        let retries = Policy::new(Duration::from_secs(600), Duration::from_millis(500)).start();
        assert_eq!(retries.backoff(1), Duration::from_millis(500));
        assert_eq!(retries.backoff(3), Duration::from_secs(2));
        assert_eq!(retries.backoff(20), Duration::from_secs(30));
    }
}
