//! Large blocks and the two Rust workloads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Rng, fail, mix, par};

/// malloc-large (mimalloc-bench's): 20 slots of 5–25 MiB buffers; `iterations`
/// times a random slot gets a new buffer of random size, filled (as
/// `make_unique<char[]>` value-initialises), the old one checked and freed.
/// With `threads` > 1, that many independent copies run in parallel.
pub fn malloc_large(threads: usize, iterations: usize) -> u64 {
    const SLOTS: usize = 20;
    par(threads, |t| {
        let mut rng = Rng::new(42 + t as u64);
        let mut bufs: Vec<Option<Vec<u8>>> = (0..SLOTS).map(|_| None).collect();
        let mut sum = 0u64;
        for i in 0..iterations {
            let slot = rng.below(SLOTS);
            let len = rng.range(5 << 20, 25 << 20);
            let fill = (i as u8) | 1;
            let fresh = vec![fill; len];
            sum += len as u64;
            if let Some(old) = bufs[slot].replace(fresh) {
                check_buf(&old);
            }
        }
        for b in bufs.iter().flatten() {
            check_buf(b);
        }
        sum
    })
    .into_iter()
    .sum()
}

fn check_buf(b: &[u8]) {
    let f = b[0];
    if f & 1 == 0 || b[b.len() / 2] != f || b[b.len() - 1] != f {
        fail("malloc-large: buffer contents changed");
    }
}

/// A `Vec<u64>` grown by `push` from empty to `bytes` (amortised doubling:
/// `realloc` at every power of two), summed and dropped. `threads` copies.
pub fn vec_doubling(threads: usize, bytes: usize) -> u64 {
    let n = (bytes / 8) as u64;
    par(threads, |_| {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..n {
            v.push(i);
        }
        let s: u64 = v.iter().sum();
        if s != n * (n - 1) / 2 {
            fail("vec-doubling: wrong sum");
        }
        s
    })
    .into_iter()
    .sum()
}

/// Build and drop a `BTreeMap<String, Vec<u8>>` of `entries` entries: keys are 19
/// distinct characters inserted in pseudo-random order, values 0–96 bytes.
/// `threads` independent maps in parallel.
pub fn btree(threads: usize, entries: usize) -> u64 {
    par(threads, |t| {
        let mut map: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut bytes = 0u64;
        for i in 0..entries as u64 {
            let k = mix(i ^ ((t as u64) << 40));
            let mut key = String::with_capacity(20);
            let _ = write!(key, "k{:015x}/{:02}", k >> 4, i % 100);
            let len = (k % 97) as usize;
            bytes += len as u64;
            map.insert(key, vec![(k as u8) | 1; len]);
        }
        crate::at_peak("btree");
        if map.len() != entries {
            fail("btree: lost entries");
        }
        let mut seen = 0u64;
        for (k, v) in &map {
            if k.len() != 19 || v.iter().any(|&b| b != v[0]) {
                fail("btree: bad entry");
            }
            seen += v.len() as u64;
        }
        if seen != bytes {
            fail("btree: wrong value bytes");
        }
        let t1 = Instant::now();
        drop(map);
        crate::phases(&[("drop", t1.elapsed())]);
        bytes
    })
    .into_iter()
    .sum()
}

/// Generates a JSON array of records of about `bytes` bytes; returns it and the
/// number of records.
pub fn gen_json(bytes: usize) -> (Vec<u8>, u64) {
    let mut s = String::with_capacity(bytes + 4096);
    let mut rng = Rng::new(0x1503);
    s.push('[');
    let mut n = 0u64;
    while s.len() < bytes {
        if n > 0 {
            s.push(',');
        }
        let h = rng.next_u64();
        let _ = write!(
            s,
            r#"{{"id":{n},"name":"user_{:x}","email":"u{n}@example.com","active":{},"score":{}.{:03},"tags":["t{}","t{}","t{}"],"address":{{"street":"{} Main Street","city":"City {}","zip":"{:05}"}},"history":[{},{},{},{},{}],"note":"{}"}}"#,
            h >> 20,
            h & 1 == 0,
            h % 100,
            h % 1000,
            h % 7,
            h % 11,
            h % 13,
            h % 997,
            h % 211,
            h % 100_000,
            h % 17,
            h % 19,
            h % 23,
            h % 29,
            h % 31,
            "x".repeat((h % 40) as usize),
        );
        n += 1;
    }
    s.push(']');
    (s.into_bytes(), n)
}

/// Parse a generated JSON document of `bytes` bytes into a `serde_json::Value`,
/// walk it (every id and record checked) and drop it. Only parse, walk and drop
/// are timed (the document is generated before). `threads` documents in
/// parallel, each parsed by its own thread.
pub fn json(threads: usize, bytes: usize) -> (Duration, u64) {
    let docs: Vec<(Vec<u8>, u64)> = (0..threads.max(1)).map(|_| gen_json(bytes)).collect();
    let t0 = Instant::now();
    let sums = par(threads, |t| {
        let (doc, n) = &docs[t];
        let t0 = Instant::now();
        let v: Value = serde_json::from_slice(doc).unwrap_or_else(|_| fail("json: parse error"));
        let t1 = Instant::now();
        crate::at_peak("json");
        let Value::Array(items) = &v else {
            fail("json: not an array")
        };
        if items.len() as u64 != *n {
            fail("json: wrong record count");
        }
        let mut sum = 0u64;
        for (i, item) in items.iter().enumerate() {
            let id = item.get("id").and_then(Value::as_u64);
            let hist = item
                .get("history")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let tags = item
                .get("tags")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if id != Some(i as u64)
                || hist != 5
                || tags != 3
                || item.as_object().map_or(0, |o| o.len()) != 9
            {
                fail("json: wrong record");
            }
            sum += i as u64;
        }
        let t2 = Instant::now();
        drop(v);
        crate::phases(&[
            ("parse", t1 - t0),
            ("walk", t2 - t1),
            ("drop", t2.elapsed()),
        ]);
        sum
    });
    let dt = t0.elapsed();
    drop(docs);
    (dt, sums.iter().sum())
}
