//! Heap profiles: dhat JSON that parses and agrees with `stats()`, pprof
//! that decodes (with a protobuf reader written here, independent of the
//! writer) into the expected sample types and stacks naming this file's
//! functions, and Poisson-sampled estimates within 10 % of the truth.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::Read;

use rustydb_memory::debug::{DebugAlloc, DebugLevel, ProfileFormat, ProfileScope};

fn l(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

// Two sites with different bodies (identical ones may be merged into one
// function by the compiler, and then share a name).
#[inline(never)]
fn profiled_site_alpha(d: &DebugAlloc<System>, n: usize, size: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        // SAFETY: non-zero size; freed by the caller with the same layout.
        let p = unsafe { d.alloc(l(size)) };
        // SAFETY: the first byte is inside the block.
        unsafe { p.write(0xA1) };
        v.push(p as usize);
    }
    std::hint::black_box(v)
}

#[inline(never)]
fn profiled_site_beta(d: &DebugAlloc<System>, n: usize, size: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: as above.
        let p = unsafe { d.alloc(l(size)) };
        // SAFETY: the last byte is inside the block.
        unsafe { p.add(size - 1).write(i as u8) };
        v.push(p as usize);
    }
    std::hint::black_box(v)
}

fn free_all(d: &DebugAlloc<System>, ptrs: Vec<usize>, size: usize) {
    for p in ptrs {
        // SAFETY: allocated from `d` with this layout, freed once.
        unsafe { d.dealloc(p as *mut u8, l(size)) };
    }
}

fn dhat_json(d: &DebugAlloc<System>, scope: ProfileScope) -> serde_json::Value {
    let mut out = Vec::new();
    d.write_profile(&mut out, ProfileFormat::Dhat, scope)
        .unwrap();
    serde_json::from_slice(&out).expect("dhat JSON parses")
}

/// (bytes, blocks) at end of the program points whose frames mention `name`.
fn dhat_site(j: &serde_json::Value, name: &str) -> (u64, u64) {
    let ftbl: Vec<&str> = j["ftbl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut t = (0, 0);
    for pp in j["pps"].as_array().unwrap() {
        let fs = pp["fs"].as_array().unwrap();
        if fs
            .iter()
            .any(|i| ftbl[i.as_u64().unwrap() as usize].contains(name))
        {
            t.0 += pp["eb"].as_u64().unwrap();
            t.1 += pp["ebk"].as_u64().unwrap();
        }
    }
    t
}

#[test]
fn dhat_json_parses_and_its_totals_match_stats() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
    D.set_sample_every(0);
    let a = profiled_site_alpha(&D, 30, 100);
    let b = profiled_site_beta(&D, 7, 4000);
    let j = dhat_json(&D, ProfileScope::Live);
    assert_eq!(j["dhatFileVersion"], 2);
    assert_eq!(j["mode"], "rust-heap");
    assert_eq!(j["ftbl"][0], "[root]");
    for field in ["bklt", "bkacc", "tu", "Mtu", "cmd", "pid", "te", "tg"] {
        assert!(!j[field].is_null(), "{field} missing");
    }
    let pps = j["pps"].as_array().unwrap();
    let sum = |k: &str| pps.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    let s = D.stats();
    assert_eq!(
        (sum("eb"), sum("ebk")),
        (s.tracked_bytes, s.tracked_blocks),
        "{s:?}"
    );
    for pp in pps {
        for k in ["tb", "tbk", "tl", "mb", "mbk", "gb", "gbk", "eb", "ebk"] {
            assert!(pp[k].is_u64(), "{k} in {pp}");
        }
        assert!(pp["tb"].as_u64() >= pp["eb"].as_u64());
    }
    assert_eq!(dhat_site(&j, "profiled_site_alpha"), (3000, 30));
    assert_eq!(dhat_site(&j, "profiled_site_beta"), (28000, 7));

    // Since a mark: only what was allocated after it.
    let mark = D.mark();
    let c = profiled_site_alpha(&D, 5, 64);
    let since = dhat_json(&D, ProfileScope::Since(mark));
    let pps = since["pps"].as_array().unwrap();
    let total: u64 = pps.iter().map(|p| p["eb"].as_u64().unwrap()).sum();
    assert_eq!(total, 320, "{since}");
    assert_eq!(dhat_site(&since, "profiled_site_beta"), (0, 0));
    free_all(&D, a, 100);
    free_all(&D, b, 4000);
    free_all(&D, c, 64);
    D.drain_quarantine();
    let after = dhat_json(&D, ProfileScope::Live);
    assert_eq!(dhat_site(&after, "profiled_site_alpha").0, 0);
    assert!(D.reports().is_empty(), "{:?}", D.reports());
}

// ---- a protobuf reader, enough for profile.proto ----

#[derive(Debug, Clone)]
enum Field {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn fields(b: &[u8]) -> Vec<(u64, Field)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i);
        let f = match key & 7 {
            0 => Field::Varint(varint(b, &mut i)),
            2 => {
                let n = varint(b, &mut i) as usize;
                let v = b[i..i + n].to_vec();
                i += n;
                Field::Bytes(v)
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((key >> 3, f));
    }
    out
}

fn uints(fs: &[(u64, Field)], n: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (k, f) in fs {
        if *k == n {
            match f {
                Field::Varint(v) => out.push(*v),
                Field::Bytes(b) => {
                    let mut i = 0;
                    while i < b.len() {
                        out.push(varint(b, &mut i));
                    }
                }
            }
        }
    }
    out
}

fn messages(fs: &[(u64, Field)], n: u64) -> Vec<Vec<(u64, Field)>> {
    fs.iter()
        .filter(|(k, _)| *k == n)
        .map(|(_, f)| match f {
            Field::Bytes(b) => fields(b),
            Field::Varint(_) => panic!("field {n} is not a message"),
        })
        .collect()
}

struct Decoded {
    sample_types: Vec<(String, String)>,
    /// Per sample: function names from leaf to root, and the values.
    samples: Vec<(Vec<String>, Vec<u64>)>,
}

fn decode_pprof(gz: &[u8]) -> Decoded {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("gzip");
    let p = fields(&raw);
    let strings: Vec<String> = p
        .iter()
        .filter(|(k, _)| *k == 6)
        .map(|(_, f)| match f {
            Field::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
            Field::Varint(_) => panic!(),
        })
        .collect();
    assert_eq!(strings[0], "", "string_table[0] must be empty");
    let s = |i: u64| strings[i as usize].clone();
    let sample_types = messages(&p, 1)
        .iter()
        .map(|vt| (s(uints(vt, 1)[0]), s(uints(vt, 2)[0])))
        .collect();
    let functions: HashMap<u64, String> = messages(&p, 5)
        .iter()
        .map(|f| (uints(f, 1)[0], s(uints(f, 2)[0])))
        .collect();
    let locations: HashMap<u64, Vec<String>> = messages(&p, 4)
        .iter()
        .map(|loc| {
            let names = messages(loc, 4)
                .iter()
                .map(|line| functions[&uints(line, 1)[0]].clone())
                .collect();
            (uints(loc, 1)[0], names)
        })
        .collect();
    let samples = messages(&p, 2)
        .iter()
        .map(|smp| {
            let names = uints(smp, 1)
                .iter()
                .flat_map(|id| locations[id].clone())
                .collect();
            (names, uints(smp, 2))
        })
        .collect();
    Decoded {
        sample_types,
        samples,
    }
}

#[test]
fn pprof_decodes_with_heap_sample_types_and_our_function_names() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
    D.set_sample_every(0);
    let a = profiled_site_alpha(&D, 12, 256);
    let b = profiled_site_beta(&D, 3, 10_000);
    let mut gz = Vec::new();
    D.write_profile(&mut gz, ProfileFormat::Pprof, ProfileScope::Live)
        .unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let p = decode_pprof(&gz);
    let types: Vec<(&str, &str)> = p
        .sample_types
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ]
    );
    let site = |name: &str| {
        p.samples
            .iter()
            .filter(|(fs, _)| fs.iter().any(|f| f.contains(name)))
            .fold([0u64; 4], |mut t, (_, v)| {
                for i in 0..4 {
                    t[i] += v[i];
                }
                t
            })
    };
    let alpha = site("profiled_site_alpha");
    assert_eq!((alpha[2], alpha[3]), (12, 12 * 256), "{alpha:?}");
    assert!(alpha[0] >= 12 && alpha[1] >= 12 * 256);
    let beta = site("profiled_site_beta");
    assert_eq!((beta[2], beta[3]), (3, 30_000));
    // Stacks run from the allocating function outwards: the test's own
    // function is below (after) the site.
    let (frames, _) = p
        .samples
        .iter()
        .find(|(fs, _)| fs.iter().any(|f| f.contains("profiled_site_alpha")))
        .unwrap();
    let at = frames
        .iter()
        .position(|f| f.contains("profiled_site_alpha"))
        .unwrap();
    assert!(
        frames[at..]
            .iter()
            .any(|f| f.contains("pprof_decodes_with_heap_sample_types")),
        "{frames:?}"
    );
    free_all(&D, a, 256);
    free_all(&D, b, 10_000);
    D.drain_quarantine();
}

#[inline(never)]
fn sampled_site_small(d: &DebugAlloc<System>, n: usize) -> Vec<usize> {
    let v = profiled_site_alpha(d, n, 32);
    std::hint::black_box(&v); // not a tail call: this frame stays on the stack
    v
}

#[inline(never)]
fn sampled_site_medium(d: &DebugAlloc<System>, n: usize) -> Vec<usize> {
    let v = profiled_site_beta(d, n, 1000);
    std::hint::black_box(&v); // not a tail call: this frame stays on the stack
    v
}

#[inline(never)]
fn sampled_site_large(d: &DebugAlloc<System>, n: usize) -> Vec<usize> {
    let v = profiled_site_beta(d, n, 50_000);
    std::hint::black_box(&v); // not a tail call: this frame stays on the stack
    v
}

#[test]
fn poisson_samples_estimate_live_bytes_per_site_within_ten_percent() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Sampled);
    D.set_sample_interval(4096);
    // Churn that is freed again (must not show as live).
    for _ in 0..20 {
        let t = profiled_site_alpha(&D, 2000, 256);
        free_all(&D, t, 256);
    }
    let small = sampled_site_small(&D, 200_000); // 6.4 MB in 32-byte blocks
    let medium = sampled_site_medium(&D, 10_000); // 10 MB in 1000-byte blocks
    let large = sampled_site_large(&D, 200); // 10 MB in 50 KB blocks
    let j = dhat_json(&D, ProfileScope::Live);
    for (name, truth) in [
        ("sampled_site_small", 200_000 * 32),
        ("sampled_site_medium", 10_000 * 1000),
        ("sampled_site_large", 200 * 50_000),
    ] {
        let (est, _) = dhat_site(&j, name);
        let err = (est as f64 - truth as f64).abs() / truth as f64;
        eprintln!("{name}: estimated {est} bytes, true {truth}");
        assert!(
            err < 0.10,
            "{name}: estimated {est} bytes, true {truth} ({:.1} % off)",
            err * 100.0
        );
    }
    // The whole profile estimates the whole live heap.
    let total: u64 = j["pps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["eb"].as_u64().unwrap())
        .sum();
    let truth = 200_000 * 32 + 10_000 * 1000 + 200 * 50_000;
    assert!(
        (total as f64 - truth as f64).abs() / (truth as f64) < 0.10,
        "total {total} vs {truth}"
    );
    // The counters stay exact at this level.
    let c = D.components();
    let live: u64 = c.iter().map(|c| c.live_bytes).sum();
    assert_eq!(live, truth as u64, "{c:?}");
    free_all(&D, small, 32);
    free_all(&D, medium, 1000);
    free_all(&D, large, 50_000);
    let after = dhat_json(&D, ProfileScope::Live);
    assert_eq!(dhat_site(&after, "sampled_site_medium").0, 0);
}
