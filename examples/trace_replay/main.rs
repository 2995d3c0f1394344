//! Replays block or key traces through a real `BufferPool`, once per eviction
//! policy and pool size, and prints the hit ratios with Belady's OPT beside
//! them.
//!
//! ```text
//! cargo run --release --example trace_replay -- [OPTIONS] TRACE...
//!
//!   --sizes LIST      pool sizes: percent of the trace's distinct pages (5%)
//!                     or frame counts (1000); default 5%,10%,25%
//!   --policies LIST   policy names (`lru,arc,lirs,...`) or `all` (default)
//!   --format F        auto (default: by file name), lines, csv, oracle
//!   --column C        CSV key column: 1-based number or header name (default 1)
//!   --header          the CSV file has a header line (implied by a name)
//!   --limit N         replay only the first N requests
//!   --cooling F       the pool's cooling-stage fraction (default: the
//!                     builder's, 0.02; 0 replays the pure policy)
//!   --no-opt          skip Belady's OPT
//!   --json            one JSON document on stdout instead of tables
//! ```
//!
//! Trace formats (each may be gzip-compressed, detected by content):
//! one unsigned integer key per line (decimal or `0x` hex; blank lines, `#`
//! comments and the LIRS traces' `*` markers are skipped), a CSV column, or
//! libCacheSim's oracleGeneral binary records. Keys are mapped to dense page
//! ids; each request is one `fetch_read` (a miss reads the page from a
//! `MemDisk`). Bad input is an error naming the file and line, exit status 2.

mod input;
mod opt;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use input::{Column, Format, Trace};
use rustydb_memory::buffer_pool::{BufferPool, MemDisk, Policy};

#[derive(Debug, Clone, Copy)]
enum Size {
    Percent(f64),
    Frames(usize),
}

impl Size {
    fn frames(self, distinct: usize) -> usize {
        match self {
            // Truncated, as libCacheSim's scripts size their caches.
            Size::Percent(p) => ((distinct as f64 * p / 100.0) as usize).max(1),
            Size::Frames(n) => n,
        }
    }
    fn label(self) -> String {
        match self {
            Size::Percent(p) => format!("{p}%"),
            Size::Frames(n) => n.to_string(),
        }
    }
}

struct Args {
    traces: Vec<PathBuf>,
    sizes: Vec<Size>,
    policies: Vec<Policy>,
    format: Option<Format>,
    column: Column,
    header: bool,
    limit: usize,
    cooling: Option<f64>,
    opt: bool,
    json: bool,
}

const USAGE: &str = "usage: trace_replay [--sizes 5%,10%,25%] [--policies all|NAME,...] \
[--format auto|lines|csv|oracle] [--column C] [--header] [--limit N] [--cooling F] \
[--no-opt] [--json] TRACE...";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        traces: Vec::new(),
        sizes: vec![Size::Percent(5.0), Size::Percent(10.0), Size::Percent(25.0)],
        policies: Policy::ALL.to_vec(),
        format: None,
        column: Column::Number(1),
        header: false,
        limit: usize::MAX,
        cooling: None,
        opt: true,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--sizes" => {
                a.sizes = value("--sizes")?
                    .split(',')
                    .map(|s| {
                        let s = s.trim();
                        match s.strip_suffix('%') {
                            Some(p) => p
                                .parse::<f64>()
                                .ok()
                                .filter(|p| *p > 0.0 && *p <= 100.0)
                                .map(Size::Percent),
                            None => s.parse::<usize>().ok().filter(|&n| n > 0).map(Size::Frames),
                        }
                        .ok_or(format!(
                            "bad size {s:?} (a percent like 5% or a frame count)"
                        ))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--policies" => {
                let v = value("--policies")?;
                if v != "all" {
                    a.policies = v
                        .split(',')
                        .map(|s| {
                            s.trim()
                                .parse::<Policy>()
                                .map_err(|_| format!("unknown policy {s:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
            }
            "--format" => {
                a.format = match value("--format")?.as_str() {
                    "auto" => None,
                    "lines" => Some(Format::Lines),
                    "csv" => Some(Format::Csv {
                        column: Column::Number(1),
                        header: false,
                    }),
                    "oracle" | "oracleGeneral" => Some(Format::Oracle),
                    f => return Err(format!("unknown format {f:?}")),
                }
            }
            "--column" => {
                let v = value("--column")?;
                a.column = match v.parse::<usize>() {
                    Ok(0) => return Err("--column numbers start at 1".into()),
                    Ok(n) => Column::Number(n),
                    Err(_) => Column::Name(v),
                };
            }
            "--header" => a.header = true,
            "--limit" => {
                a.limit = value("--limit")?
                    .parse()
                    .map_err(|_| "--limit needs a number".to_string())?
            }
            "--cooling" => {
                let v = value("--cooling")?;
                a.cooling = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|c| (0.0..=0.5).contains(c))
                        .ok_or(format!("bad --cooling {v:?} (0 to 0.5)"))?,
                );
            }
            "--no-opt" => a.opt = false,
            "--json" => a.json = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            _ => a.traces.push(PathBuf::from(arg)),
        }
    }
    if a.traces.is_empty() {
        return Err("no trace given".into());
    }
    // A CSV column or header implies CSV for an explicit `--format csv`.
    if let Some(Format::Csv { .. }) = a.format {
        a.format = Some(Format::Csv {
            column: a.column.clone(),
            header: a.header,
        });
    }
    Ok(a)
}

/// Hit ratio (%) of `policy` with `frames` frames on `trace`.
fn replay(
    policy: Policy,
    trace: &Trace,
    frames: usize,
    cooling: Option<f64>,
) -> Result<f64, rustydb_memory::Error> {
    let mut b = BufferPool::builder()
        .frames(frames)
        .policy(policy)
        .disk(MemDisk::with_pages(4096, trace.distinct as u64));
    if let Some(c) = cooling {
        b = b.cooling(c);
    }
    let pool = b.build()?;
    for &id in &trace.ids {
        drop(pool.fetch_read(u64::from(id))?);
    }
    let s = pool.stats();
    Ok(s.hits as f64 * 100.0 / trace.ids.len() as f64)
}

struct Row {
    size: String,
    frames: usize,
    hits: Vec<(String, f64)>,
}

fn run(a: &Args) -> Result<serde_json::Value, String> {
    let mut names: Vec<String> = a.policies.iter().map(|p| p.to_string()).collect();
    if a.opt {
        names.push("opt".into());
    }
    let mut sums = vec![0.0; names.len()];
    let mut cells = 0usize;
    let mut out = Vec::new();
    for path in &a.traces {
        let format = a
            .format
            .clone()
            .unwrap_or_else(|| Format::guess(path, &a.column, a.header));
        let t0 = Instant::now();
        let trace = input::read(path, &format, a.limit).map_err(|e| e.to_string())?;
        let next = a.opt.then(|| opt::next_use(&trace.ids, trace.distinct));
        let mut rows = Vec::new();
        for &size in &a.sizes {
            let frames = size.frames(trace.distinct);
            let mut hits = Vec::new();
            for &p in &a.policies {
                let h = replay(p, &trace, frames, a.cooling)
                    .map_err(|e| format!("{}: {p} with {frames} frames: {e}", path.display()))?;
                hits.push((p.to_string(), h));
            }
            if let Some(next) = &next {
                let h = opt::hits(&trace.ids, next, trace.distinct, frames);
                hits.push(("opt".into(), h as f64 * 100.0 / trace.ids.len() as f64));
            }
            for (s, (_, h)) in sums.iter_mut().zip(&hits) {
                *s += h;
            }
            cells += 1;
            rows.push(Row {
                size: size.label(),
                frames,
                hits,
            });
        }
        let secs = t0.elapsed().as_secs_f64();
        if !a.json {
            print_table(path, &trace, &rows, &names, secs);
        }
        out.push(serde_json::json!({
            "trace": path.display().to_string(),
            "requests": trace.ids.len(),
            "distinct": trace.distinct,
            "seconds": secs,
            "results": rows.iter().map(|r| serde_json::json!({
                "size": r.size,
                "frames": r.frames,
                "hit_ratio": r.hits.iter().map(|(n, h)| (n.clone(), serde_json::json!(round2(*h))))
                    .collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    let mean: serde_json::Map<_, _> = names
        .iter()
        .zip(&sums)
        .map(|(n, s)| (n.clone(), serde_json::json!(round2(s / cells as f64))))
        .collect();
    if !a.json && a.traces.len() > 1 {
        println!("mean over {cells} trace × size cells");
        println!("  {}", fmt_header(&names));
        println!(
            "  {:>8} {:>8} {}",
            "",
            "",
            names
                .iter()
                .zip(&sums)
                .map(|(n, s)| format!("{:>w$.2}", s / cells as f64, w = n.len().max(7)))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(serde_json::json!({
        "cooling": a.cooling,
        "traces": out,
        "mean": mean,
        "cells": cells,
    }))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn fmt_header(names: &[String]) -> String {
    format!(
        "{:>8} {:>8} {}",
        "size",
        "frames",
        names
            .iter()
            .map(|n| format!("{:>w$}", n, w = n.len().max(7)))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn print_table(path: &std::path::Path, t: &Trace, rows: &[Row], names: &[String], secs: f64) {
    println!(
        "{}: {} requests, {} distinct pages ({secs:.1} s)",
        path.display(),
        t.ids.len(),
        t.distinct
    );
    println!("  {}", fmt_header(names));
    for r in rows {
        println!(
            "  {:>8} {:>8} {}",
            r.size,
            r.frames,
            r.hits
                .iter()
                .map(|(n, h)| format!("{:>w$.2}", h, w = n.len().max(7)))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

fn main() -> ExitCode {
    // End quietly when the reader of stdout goes away (`trace_replay … | head`),
    // as C tools do, instead of panicking in `println!` on EPIPE.
    // SAFETY: `signal` with `SIG_DFL` installs no handler code; this runs first
    // in `main`, before the program starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("trace_replay: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
    match run(&args) {
        Ok(v) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trace_replay: {e}");
            ExitCode::from(2)
        }
    }
}
