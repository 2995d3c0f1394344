//! Caffeine's hill climber for the W-TinyLFU window (Einziger, Eytan,
//! Friedman & Manes, "Adaptive Software Cache Management", Middleware 2018;
//! Caffeine's `BoundedLocalCache.climb`).
//!
//! The hit ratio is sampled over periods of `sample` requests. After each
//! period the window moves one step: in the same direction as the last step
//! if the hit ratio did not fall, the other way if it did. The step starts
//! at 6.25 % of the cache and decays by 2 % per period, so the climber
//! settles; a change of the hit ratio by 5 points or more restarts it with a
//! full step (the workload changed).

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct HillClimber {
    sample: u64,
    hits: u64,
    misses: u64,
    prev_rate: f64,
    /// Signed step in entries for the next adjustment.
    step: f64,
    full_step: f64,
}

const STEP_PERCENT: f64 = 0.0625;
const STEP_DECAY: f64 = 0.98;
const RESTART_THRESHOLD: f64 = 0.05;

impl HillClimber {
    /// A climber for a cache of `capacity` entries, deciding every `sample`
    /// requests (Caffeine: the sketch's sample, `10 × capacity`).
    pub(crate) fn new(capacity: usize, sample: u64) -> Self {
        let full = (capacity as f64 * STEP_PERCENT).max(1.0);
        Self {
            sample: sample.max(1),
            hits: 0,
            misses: 0,
            prev_rate: 0.0,
            // First move: grow the window (a recency-biased start).
            step: full,
            full_step: full,
        }
    }

    #[inline]
    pub(crate) fn hit(&mut self) {
        self.hits += 1;
    }

    #[inline]
    pub(crate) fn miss(&mut self) {
        self.misses += 1;
    }

    /// At the end of a sample, the signed number of entries the window
    /// should grow by (negative: shrink); `None` within a sample.
    #[inline]
    pub(crate) fn adjustment(&mut self) -> Option<i64> {
        let n = self.hits + self.misses;
        if n < self.sample {
            return None;
        }
        Some(self.decide(n))
    }

    #[cold]
    fn decide(&mut self, n: u64) -> i64 {
        let rate = self.hits as f64 / n as f64;
        let change = rate - self.prev_rate;
        // Keep going while the hit ratio does not fall.
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART_THRESHOLD {
            self.full_step.copysign(amount)
        } else {
            STEP_DECAY * amount
        };
        self.prev_rate = rate;
        self.hits = 0;
        self.misses = 0;
        amount as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climbs_while_better_turns_when_worse_and_decays() {
        let mut c = HillClimber::new(1600, 100);
        let feed = |c: &mut HillClimber, hits: u64| {
            for _ in 0..hits {
                c.hit();
            }
            for _ in hits..100 {
                c.miss();
            }
            c.adjustment().unwrap()
        };
        // 0 → 50 %: a restart-sized change, full step (100 entries) up.
        assert_eq!(feed(&mut c, 50), 100);
        // Better by 1 point: same direction, decayed.
        assert_eq!(feed(&mut c, 51), 100);
        assert_eq!(feed(&mut c, 52), 98);
        // Worse: turn around.
        assert!(feed(&mut c, 51) < 0);
        assert_eq!(c.adjustment(), None);
    }
}
