//! pprof's `profile.proto`, gzipped (how `go tool pprof`, speedscope and
//! Grafana Pyroscope take it), with Go's heap-profile sample types:
//! `alloc_objects`/count, `alloc_space`/bytes, `inuse_objects`/count,
//! `inuse_space`/bytes (the default). Each site is a sample whose locations
//! run from the allocating frame outwards; a location's lines list inlined
//! functions innermost first, as the format wants. The sample carries its
//! component as a `component` label.
//!
//! The protobuf is encoded here (varints and length-delimited fields over a
//! fixed schema, as Go's own `runtime/pprof` does), so the crate needs no
//! protobuf library; gzip is flate2's.

use std::collections::HashMap;
use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{HeapProfile, Source};

/// Writes `p` as a gzipped `profile.proto`.
pub(crate) fn write(p: &HeapProfile, w: &mut dyn Write) -> io::Result<()> {
    let bytes = encode(p);
    let mut gz = GzEncoder::new(w, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}

/// The string table: index 0 is "".
struct Strings {
    list: Vec<String>,
    index: HashMap<String, u64>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u64;
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A varint field (wire type 0).
fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    varint(buf, (field as u64) << 3);
    varint(buf, v);
}

/// A length-delimited field (wire type 2): a message, string or packed list.
fn bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(buf, (field as u64) << 3 | 2);
    varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

fn packed(buf: &mut Vec<u8>, field: u32, vs: impl Iterator<Item = u64>) {
    let mut inner = Vec::new();
    for v in vs {
        varint(&mut inner, v);
    }
    bytes(buf, field, &inner);
}

fn value_type(strings: &mut Strings, ty: &str, unit: &str) -> Vec<u8> {
    let mut m = Vec::new();
    uint(&mut m, 1, strings.id(ty));
    uint(&mut m, 2, strings.id(unit));
    m
}

/// The uncompressed `Profile` message.
pub(crate) fn encode(p: &HeapProfile) -> Vec<u8> {
    let mut s = Strings {
        list: vec![String::new()],
        index: HashMap::from([(String::new(), 0)]),
    };
    let mut out = Vec::new();
    for (ty, unit) in [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ] {
        let vt = value_type(&mut s, ty, unit);
        bytes(&mut out, 1, &vt); // sample_type
    }
    let mut functions: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut function_msgs: Vec<Vec<u8>> = Vec::new();
    let mut locations: HashMap<(usize, usize, String), u64> = HashMap::new();
    let mut location_msgs: Vec<Vec<u8>> = Vec::new();
    let component_key = s.id("component");
    for site in &p.sites {
        // Consecutive frames of one address form one location.
        let mut ids = Vec::new();
        let mut i = 0;
        while i < site.frames.len() {
            let ip = site.frames[i].ip;
            let mut j = i + 1;
            while ip != 0 && j < site.frames.len() && site.frames[j].ip == ip {
                j += 1;
            }
            let group = &site.frames[i..j];
            let key = (ip, group.len(), group[0].function.clone());
            let next = location_msgs.len() as u64 + 1;
            let id = *locations.entry(key).or_insert_with(|| {
                let mut loc = Vec::new();
                uint(&mut loc, 1, next);
                uint(&mut loc, 2, 1); // the one mapping
                uint(&mut loc, 3, ip as u64);
                for f in group {
                    let fkey = (f.function.clone(), f.file.clone());
                    let fnext = function_msgs.len() as u64 + 1;
                    let fid = *functions.entry(fkey).or_insert_with(|| {
                        let mut fm = Vec::new();
                        uint(&mut fm, 1, fnext);
                        let name = s.id(&f.function);
                        uint(&mut fm, 2, name);
                        uint(&mut fm, 3, name);
                        uint(&mut fm, 4, s.id(f.file.as_deref().unwrap_or("")));
                        function_msgs.push(fm);
                        fnext
                    });
                    let mut line = Vec::new();
                    uint(&mut line, 1, fid);
                    uint(&mut line, 2, f.line as u64);
                    bytes(&mut loc, 4, &line);
                }
                location_msgs.push(loc);
                next
            });
            ids.push(id);
            i = j;
        }
        let mut sample = Vec::new();
        packed(&mut sample, 1, ids.into_iter());
        packed(
            &mut sample,
            2,
            [
                site.alloc_blocks,
                site.alloc_bytes,
                site.live_blocks,
                site.live_bytes,
            ]
            .into_iter(),
        );
        let mut label = Vec::new();
        uint(&mut label, 1, component_key);
        uint(&mut label, 2, s.id(&site.component));
        bytes(&mut sample, 3, &label);
        bytes(&mut out, 2, &sample); // sample
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut mapping = Vec::new();
    uint(&mut mapping, 1, 1);
    uint(&mut mapping, 2, 0);
    uint(&mut mapping, 3, u64::MAX);
    uint(&mut mapping, 5, s.id(&exe));
    for field in 7..=10 {
        uint(&mut mapping, field, 1); // has functions, filenames, lines, inline frames
    }
    bytes(&mut out, 3, &mapping);
    for l in &location_msgs {
        bytes(&mut out, 4, l);
    }
    for f in &function_msgs {
        bytes(&mut out, 5, f);
    }
    let period = match p.source {
        Source::Sampled(rate) => rate,
        _ => 1,
    };
    let period_type = value_type(&mut s, "space", "bytes");
    let comment = s.id(match p.source {
        Source::Tracked => "rustydb-memory: exact figures from tracked blocks",
        Source::Sampled(_) => "rustydb-memory: unbiased estimates from Poisson byte samples",
        Source::Counted => "rustydb-memory: per component from counters",
    });
    let default_type = s.id("inuse_space");
    for st in &s.list {
        bytes(&mut out, 6, st.as_bytes()); // string_table
    }
    uint(&mut out, 9, p.time_unix_ns as u64);
    bytes(&mut out, 11, &period_type);
    uint(&mut out, 12, period);
    packed(&mut out, 13, [comment].into_iter());
    uint(&mut out, 14, default_type);
    out
}
