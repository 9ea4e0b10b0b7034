//! Restart-loop detection and the retry breaker (reference §5.10, done better), for any managed
//! container: one that
//! dies more than `threshold` times within `window` is stopped; it is retried after
//! 10 s × 2^n (capped at 300 s), and the breaker re-arms once the driver has run quietly
//! for a while — Azure IoT Edge's never re-arms.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Events in a sliding time window: an event counts while it is younger than the window.
/// The one counter behind the restart-loop detector (deaths per container) and the worker's
/// restart breaker (restarts in five minutes).
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    window: Duration,
    times: VecDeque<Instant>,
}

/// Most events a window keeps: a container dying in a tight loop must not grow it without
/// bound (every threshold we use is far below).
const WINDOW_CAP: usize = 4096;

impl SlidingWindow {
    pub fn new(window: Duration) -> Self {
        SlidingWindow {
            window,
            times: VecDeque::new(),
        }
    }

    fn counts(&self, t: Instant, now: Instant) -> bool {
        now.saturating_duration_since(t) < self.window
    }

    /// Records an event at `at`; returns how many are in the window ending then.
    pub fn record(&mut self, at: Instant) -> usize {
        if self.times.len() >= WINDOW_CAP {
            self.times.pop_front();
        }
        self.times.push_back(at);
        while self.times.front().is_some_and(|t| !self.counts(*t, at)) {
            self.times.pop_front();
        }
        self.times.len()
    }

    /// Events in the window ending at `now`.
    pub fn count(&self, now: Instant) -> usize {
        self.times.iter().filter(|t| self.counts(**t, now)).count()
    }

    /// Forgets the events before `t` (a re-arm at `t`).
    pub fn forget_before(&mut self, t: Instant) {
        self.times.retain(|at| *at >= t);
    }

    /// When the count drops below `n`, if it is at least `n` at `now`: the moment the
    /// (count − n + 1)-th oldest event in the window leaves it.
    pub fn drops_below(&self, n: usize, now: Instant) -> Option<Instant> {
        let recent: Vec<Instant> = self
            .times
            .iter()
            .copied()
            .filter(|t| self.counts(*t, now))
            .collect();
        if n == 0 || recent.len() < n {
            return None;
        }
        recent.get(recent.len() - n).map(|t| *t + self.window)
    }
}

#[derive(Debug)]
pub struct FlapDetector {
    threshold: usize,
    window: Duration,
    deaths: HashMap<String, SlidingWindow>,
}

impl FlapDetector {
    pub fn new(threshold: usize, window: Duration) -> Self {
        FlapDetector {
            threshold,
            window,
            deaths: HashMap::new(),
        }
    }

    /// Records a container death; returns the deaths in the window when it is a restart loop.
    pub fn record_death(&mut self, name: &str, at: Instant) -> Option<usize> {
        let window = self.window;
        let n = self
            .deaths
            .entry(name.to_string())
            .or_insert_with(|| SlidingWindow::new(window))
            .record(at);
        (n > self.threshold).then_some(n)
    }

    pub fn clear(&mut self, name: &str) {
        self.deaths.remove(name);
    }
}

/// Per-driver breaker state.
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    /// Consecutive trips without a quiet period in between.
    pub trips: u32,
    /// When the stopped driver may be tried again.
    pub retry_at: Option<Instant>,
    /// When it was last (re)started by a retry.
    pub retried_at: Option<Instant>,
}

impl Breaker {
    pub fn new() -> Self {
        Breaker {
            trips: 0,
            retry_at: None,
            retried_at: None,
        }
    }

    /// Delay before retry number `trips` (1-based): base × 2^(trips-1), capped.
    pub fn delay(base: Duration, cap: Duration, trips: u32) -> Duration {
        let factor = 1u32
            .checked_shl(trips.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(cap)
    }

    pub fn trip(&mut self, now: Instant, base: Duration, cap: Duration) -> Duration {
        self.trips += 1;
        let d = Self::delay(base, cap, self.trips);
        self.retry_at = Some(now + d);
        d
    }

    /// Tripped and still waiting.
    pub fn is_open(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// Tripped and the wait is over: the caller restarts the driver.
    pub fn due(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now >= t)
    }

    pub fn retried(&mut self, now: Instant) {
        self.retry_at = None;
        self.retried_at = Some(now);
    }

    /// Re-arms (forgets past trips) after `quiet` of running since the last retry.
    pub fn maybe_rearm(&mut self, now: Instant, quiet: Duration) -> bool {
        if self.trips > 0
            && self.retry_at.is_none()
            && self
                .retried_at
                .is_some_and(|t| now.duration_since(t) >= quiet)
        {
            self.trips = 0;
            self.retried_at = None;
            return true;
        }
        false
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_threshold_within_window_is_a_loop() {
        let t0 = Instant::now();
        let mut f = FlapDetector::new(4, Duration::from_secs(60));
        for i in 0..4 {
            assert_eq!(f.record_death("d", t0 + Duration::from_secs(i * 10)), None);
        }
        assert_eq!(f.record_death("d", t0 + Duration::from_secs(45)), Some(5));
        f.clear("d");
        // spread out: never a loop
        let mut f = FlapDetector::new(4, Duration::from_secs(60));
        for i in 0..20 {
            assert_eq!(f.record_death("d", t0 + Duration::from_secs(i * 20)), None);
        }
    }

    #[test]
    fn a_sliding_window_counts_what_is_younger_than_it() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = SlidingWindow::new(Duration::from_secs(60));
        // (event at, count after recording it)
        let rows = [
            (0, 1),
            (10, 2),
            (30, 3),
            (59, 4),
            (60, 4),
            (75, 4),
            (200, 1),
        ];
        for (at, want) in rows {
            assert_eq!(w.record(s(at)), want, "event at {at}");
        }
        let mut w = SlidingWindow::new(Duration::from_secs(300));
        for at in [0, 10, 20, 30, 40, 50] {
            w.record(s(at));
        }
        // (now, count, when it drops below 5)
        let rows = [
            (50, 6, Some(310)),
            (305, 5, Some(310)),
            (310, 4, None),
            (400, 0, None),
        ];
        for (now, count, drops) in rows {
            assert_eq!(w.count(s(now)), count, "at {now}");
            assert_eq!(w.drops_below(5, s(now)), drops.map(s), "at {now}");
        }
        w.forget_before(s(50));
        assert_eq!(w.count(s(50)), 1);
        w.forget_before(s(51));
        assert_eq!((w.count(s(50)), w.drops_below(1, s(50))), (0, None));
        // A flood is capped, never grown without bound.
        let mut w = SlidingWindow::new(Duration::from_secs(3600));
        for _ in 0..10_000 {
            w.record(t0);
        }
        assert_eq!(w.count(t0), WINDOW_CAP);
    }

    #[test]
    fn backoff_doubles_to_cap_and_rearms_after_quiet() {
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(300);
        let delays: Vec<u64> = (1..=7)
            .map(|n| Breaker::delay(base, cap, n).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        let t0 = Instant::now();
        let mut b = Breaker::new();
        assert_eq!(b.trip(t0, base, cap), Duration::from_secs(10));
        assert!(b.is_open(t0 + Duration::from_secs(5)));
        assert!(b.due(t0 + Duration::from_secs(10)));
        b.retried(t0 + Duration::from_secs(10));
        assert_eq!(
            b.trip(t0 + Duration::from_secs(20), base, cap),
            Duration::from_secs(20)
        );
        b.retried(t0 + Duration::from_secs(40));
        assert!(!b.maybe_rearm(t0 + Duration::from_secs(100), Duration::from_secs(600)));
        assert!(b.maybe_rearm(t0 + Duration::from_secs(640), Duration::from_secs(600)));
        assert_eq!(b.trips, 0);
        assert_eq!(
            b.trip(t0 + Duration::from_secs(700), base, cap),
            Duration::from_secs(10)
        );
    }
}
