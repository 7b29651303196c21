//! Capped exponential backoff, for backends that reconnect by themselves.

use std::time::Duration;

/// Delays between reconnection attempts: `initial`, then doubling, never above `max`.
///
/// ```
/// use std::time::Duration;
/// use pubsub_core::backoff::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
/// let delays: Vec<_> = (0..5).map(|_| backoff.next_delay()).collect();
/// assert_eq!(delays, [10, 20, 40, 50, 50].map(Duration::from_millis));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), Duration::from_millis(10));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max` (`max` wins if it is smaller).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over from the initial delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 50 ms doubling up to 2 s: quick after a blip, gentle on a broker that is down.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(2))
    }
}
