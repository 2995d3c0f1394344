//! Helpers shared by the buffer-pool tests: a seeded RNG, Zipf traces,
//! temporary files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `len` page ids in `0..n` drawn from Zipf(`alpha`); rank r is page r.
pub fn zipf(n: usize, alpha: f64, len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n);
    let mut s = 0.0;
    for i in 1..=n {
        s += (i as f64).powf(-alpha);
        cdf.push(s);
    }
    let mut r = Rng(seed);
    (0..len)
        .map(|_| {
            let u = r.unit() * s;
            cdf.partition_point(|&c| c < u).min(n - 1) as u64
        })
        .collect()
}

/// A fresh path in the temp directory (removed by `TempFile`'s drop).
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("rustydb-bp-{tag}-{}-{n}.db", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Fills `buf` with bytes derived from `(page, version)` and a checksum in
/// the last 8 bytes.
pub fn fill(buf: &mut [u8], page: u64, version: u64) {
    let n = buf.len() - 8;
    let mut r = Rng(page.wrapping_mul(31).wrapping_add(version));
    for chunk in buf[..n].chunks_mut(8) {
        let w = r.next().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    let sum = sum(&buf[..n]);
    buf[n..].copy_from_slice(&sum.to_le_bytes());
}

/// Whether `buf` carries a valid checksum written by `fill`.
pub fn valid(buf: &[u8]) -> bool {
    let n = buf.len() - 8;
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[n..]);
    sum(&buf[..n]) == u64::from_le_bytes(w)
}

fn sum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}
