//! TinyLFU's frequency estimate (Einziger, Friedman & Manes, "TinyLFU: A
//! Highly Efficient Cache Admission Policy", ACM TOS 2017): a count-min
//! sketch of 4-bit counters behind a *doorkeeper* Bloom filter, aged by
//! halving every counter after a sample of `W` additions.
//!
//! - The doorkeeper absorbs the first occurrence of a key in a sample, so the
//!   many keys seen once never reach the counters; `estimate` adds 1 for a
//!   key the doorkeeper holds.
//! - Counters are updated conservatively: only those equal to the key's
//!   current minimum grow, which keeps the estimate of rare keys low.
//! - Aging ("reset"): after `W` additions every counter is halved and the
//!   doorkeeper cleared, so the estimate follows a shifting popularity.
//!
//! Memory: `next_pow2(capacity)` words of sixteen counters (8 bytes per
//! frame) plus a doorkeeper of 8 bits per sampled addition (`W`, 10 per
//! frame by default). Nothing is allocated after construction.

use super::lists::mix;

/// A count-min sketch with a doorkeeper; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct FrequencySketch {
    /// Sixteen 4-bit counters per word.
    table: Vec<u64>,
    /// Counter index mask (`16 × table.len() − 1`).
    mask: u64,
    door: Vec<u64>,
    door_mask: u64,
    additions: u64,
    sample: u64,
    resets: u64,
}

const DEPTH: u64 = 4;

impl FrequencySketch {
    /// A sketch for a cache of `capacity` entries, aged every `sample`
    /// additions (TinyLFU's `W`; Caffeine uses `10 × capacity`).
    pub(crate) fn new(capacity: usize, sample: u64) -> Self {
        let words = capacity.max(8).next_power_of_two();
        let door_bits = (sample.max(64) * 8).next_power_of_two();
        Self {
            table: vec![0; words],
            mask: (words as u64 * 16) - 1,
            door: vec![0; (door_bits / 64) as usize],
            door_mask: door_bits - 1,
            additions: 0,
            sample: sample.max(16),
            resets: 0,
        }
    }

    /// Times the counters were halved.
    #[cfg(test)]
    pub(crate) fn resets(&self) -> u64 {
        self.resets
    }

    /// The sample size `W`.
    #[cfg(test)]
    pub(crate) fn sample(&self) -> u64 {
        self.sample
    }

    /// Counter indices of a key: double hashing over one mixed hash.
    #[inline(always)]
    fn counters(&self, key: u64) -> [u64; DEPTH as usize] {
        let h = mix(key ^ 0x9E37_79B9_7F4A_7C15);
        let (a, b) = (h, (h >> 32) | 1);
        let m = self.mask;
        [
            a & m,
            a.wrapping_add(b) & m,
            a.wrapping_add(b.wrapping_mul(2)) & m,
            a.wrapping_add(b.wrapping_mul(3)) & m,
        ]
    }

    #[inline(always)]
    fn get(&self, i: u64) -> u64 {
        (self.table[(i >> 4) as usize] >> ((i & 15) * 4)) & 15
    }

    /// Doorkeeper bit positions of a key (three probes).
    #[inline(always)]
    fn door_bits(&self, key: u64) -> [u64; 3] {
        let h = mix(key.wrapping_add(0xD6E8_FEB8_6659_FD93));
        let (a, b) = (h, (h >> 29) | 1);
        let m = self.door_mask;
        [
            a & m,
            a.wrapping_add(b) & m,
            a.wrapping_add(b.wrapping_mul(2)) & m,
        ]
    }

    #[inline(always)]
    fn door_has(&self, bits: &[u64; 3]) -> bool {
        bits.iter()
            .all(|&i| self.door[(i >> 6) as usize] & (1 << (i & 63)) != 0)
    }

    /// The estimated number of occurrences of `key` in the recent samples
    /// (at most 16).
    #[inline]
    pub(crate) fn estimate(&self, key: u64) -> u64 {
        let c = self.counters(key);
        let min = c.iter().map(|&i| self.get(i)).min().unwrap_or(0);
        min + u64::from(self.door_has(&self.door_bits(key)))
    }

    /// Records one occurrence of `key`.
    #[inline]
    pub(crate) fn increment(&mut self, key: u64) {
        let bits = self.door_bits(key);
        if !self.door_has(&bits) {
            for i in bits {
                self.door[(i >> 6) as usize] |= 1 << (i & 63);
            }
        } else {
            let c = self.counters(key);
            let min = c.iter().map(|&i| self.get(i)).min().unwrap_or(0);
            if min < 15 {
                for i in c {
                    if self.get(i) == min {
                        self.table[(i >> 4) as usize] += 1 << ((i & 15) * 4);
                    }
                }
            }
        }
        self.additions += 1;
        if self.additions >= self.sample {
            self.reset();
        }
    }

    /// Halves every counter and clears the doorkeeper.
    #[cold]
    #[inline(never)]
    fn reset(&mut self) {
        for w in &mut self.table {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.door.fill(0);
        self.additions /= 2;
        self.resets += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keys_and_ages_them() {
        let mut s = FrequencySketch::new(1024, 1 << 20);
        for _ in 0..10 {
            s.increment(7);
        }
        s.increment(8);
        assert_eq!(
            s.estimate(7),
            10,
            "the doorkeeper holds one, the counters nine"
        );
        assert_eq!(s.estimate(8), 1);
        assert_eq!(s.estimate(9), 0);
        for _ in 0..30 {
            s.increment(7);
        }
        assert_eq!(s.estimate(7), 16, "4-bit counters saturate at 15 (+1)");
        s.reset();
        assert_eq!(s.estimate(7), 7, "halved, doorkeeper cleared");
        assert_eq!(s.estimate(8), 0);
    }

    #[test]
    fn resets_after_the_sample() {
        let mut s = FrequencySketch::new(64, 640);
        for k in 0..639u64 {
            s.increment(k % 100);
        }
        assert_eq!(s.resets(), 0);
        s.increment(1);
        assert_eq!(s.resets(), 1);
        assert_eq!(s.sample(), 640);
    }

    #[test]
    fn estimates_are_close_on_a_skewed_stream() {
        // Key k occurs 16 − k times for k < 16, plus 5000 keys once each.
        let mut s = FrequencySketch::new(512, 1 << 20);
        for k in 0..16u64 {
            for _ in 0..(16 - k) {
                s.increment(k);
            }
        }
        for k in 1000..6000u64 {
            s.increment(k);
        }
        let mut over = 0;
        for k in 0..16u64 {
            let e = s.estimate(k);
            assert!(
                e >= (16 - k).min(16),
                "count-min never underestimates: {k} {e}"
            );
            over += e - (16 - k).min(16);
        }
        assert!(over <= 8, "overestimate {over}");
        let ones = (1000..6000u64).filter(|&k| s.estimate(k) > 2).count();
        assert!(ones < 250, "{ones} of 5000 one-time keys look frequent");
    }
}
