//! Exponential backoff with full jitter, for every retry loop (REST, MQTT reconnect).

use std::time::Duration;

/// Retry delays `base × 2^attempt`, capped, each scaled by a random factor in [0.5, 1.0] so a
/// fleet that lost the same backend does not come back in lock-step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The un-jittered delay for `attempt` (pure, for tests and status).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u64.checked_shl(attempt.min(30)).unwrap_or(u64::MAX);
        let ms = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.cap)
    }

    /// The next delay, with jitter `unit` in [0, 1] supplied by the caller.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// The next delay with OS-random jitter.
    pub fn next_delay(&mut self) -> Duration {
        let mut b = [0u8; 2];
        crate::random_bytes(&mut b);
        self.next_with(f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(b.next_with(1.0), Duration::from_secs(1));
        assert_eq!(b.next_with(1.0), Duration::from_secs(2));
        assert_eq!(b.next_with(0.0), Duration::from_secs(2)); // 4 s × 0.5
        for _ in 0..10 {
            b.next_with(1.0);
        }
        assert_eq!(b.next_with(1.0), Duration::from_secs(30));
        assert_eq!(b.ceiling(100), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.attempts(), 0);
        let d = b.next_delay();
        assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
    }
}
