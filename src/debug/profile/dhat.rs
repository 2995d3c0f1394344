//! dhat's JSON format (`dhatFileVersion` 2, mode `rust-heap`, as written by
//! the `dhat` crate and read by Valgrind's `dh_view.html`): a header, one
//! *program point* (`pps`) per allocation site with its totals, and a frame
//! table (`ftbl`, entry 0 is `[root]`) the points' `fs` index into.
//!
//! A profile here is a snapshot, so the "global peak" is the snapshot itself:
//! `tg` = `te`, and each point's `mb`/`gb` (max, at peak) equal its `eb`
//! (at end). `tl` sums the lifetimes of the live blocks only (freed blocks'
//! lifetimes are not kept).
//!
//! The JSON is written directly (the schema is fixed and small; the only
//! escaping needed is that of strings), so the crate needs no JSON library.

use std::collections::HashMap;
use std::io::{self, Write};

use super::{HeapProfile, Source};

/// Writes `p` as dhat JSON.
pub(crate) fn write(p: &HeapProfile, w: &mut dyn Write) -> io::Result<()> {
    let mut ftbl: Vec<String> = vec!["[root]".to_string()];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out = String::with_capacity(4096 + p.sites.len() * 128);
    let cmd: Vec<String> = std::env::args().collect();
    out.push_str("{\"dhatFileVersion\":2,\"mode\":\"rust-heap\",\"verb\":\"Allocated\",");
    out.push_str("\"bklt\":true,\"bkacc\":false,\"tu\":\"µs\",\"Mtu\":\"s\",\"tuth\":10,");
    out.push_str("\"cmd\":");
    string(&mut out, &command_line(&cmd, p.source));
    out.push_str(&format!(
        ",\"pid\":{},\"tg\":{},\"te\":{},\"pps\":[",
        std::process::id(),
        p.age_us,
        p.age_us
    ));
    for (i, s) in p.sites.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"tb\":{},\"tbk\":{},\"tl\":{},\"mb\":{},\"mbk\":{},\"gb\":{},\"gbk\":{},\"eb\":{},\"ebk\":{},\"fs\":[",
            s.alloc_bytes,
            s.alloc_blocks,
            s.lifetimes_us,
            s.live_bytes,
            s.live_blocks,
            s.live_bytes,
            s.live_blocks,
            s.live_bytes,
            s.live_blocks
        ));
        for (j, f) in s.frames.iter().enumerate() {
            let text = if f.ip == 0 {
                f.function.clone()
            } else {
                format!("{:#x}: {}", f.ip, f.line_text())
            };
            let next = ftbl.len();
            let k = *index.entry(text.clone()).or_insert_with(|| {
                ftbl.push(text);
                next
            });
            if j > 0 {
                out.push(',');
            }
            out.push_str(&k.to_string());
        }
        out.push_str("]}");
        if out.len() > 1 << 16 {
            w.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    out.push_str("],\"ftbl\":[");
    for (i, f) in ftbl.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, f);
        if out.len() > 1 << 16 {
            w.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    out.push_str("]}\n");
    w.write_all(out.as_bytes())
}

/// The command line, with what the figures are (dh_view shows it as the
/// profile's title).
fn command_line(args: &[String], source: Source) -> String {
    let what = match source {
        Source::Tracked => "exact (tracked blocks)".to_string(),
        Source::Sampled(rate) => format!("estimated from samples every {rate} bytes"),
        Source::Counted => "per component (counters)".to_string(),
    };
    format!("{} [rustydb-memory heap profile, {what}]", args.join(" "))
}

/// Appends `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
