//! End to end: the example server on an ephemeral port, driven over real TCP
//! connections — the seed's 40 checks, the memory endpoints, bad input and
//! auth, and a pressure run with real resident memory.
//!
//! The server's modules are compiled in (`#[path]`), so their unit tests run
//! here too, and this process is the server: its RSS is what
//! `/api/v1/stats/performance` must report.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustydb_memory::{DebugAlloc, MemoryManager, RustyAlloc};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "../../examples/rustydb_server/server.rs"]
mod server;

#[path = "../common/server.rs"]
mod harness;

use harness::Client;

const ADMIN: &str = "admin-token-e2e-0123456789";
const RW: &str = "readwrite-token-e2e-0123456789";
const RO: &str = "readonly-token-e2e-0123456789";

fn config() -> server::config::Config {
    let tokens = harness::Tokens {
        admin: ADMIN,
        readwrite: RW,
        readonly: RO,
    };
    server::config::Config {
        max_body_bytes: 64 << 10,
        ..harness::config(&harness::temp_dir("e2e", "run"), tokens)
    }
}

async fn start(cfg: server::config::Config, mm: &'static MemoryManager) -> server::Running {
    harness::start(cfg, mm, Some(&GLOBAL)).await
}

fn vm_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

fn gql_code(v: &Value) -> String {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn metric(v: &Value, name: &str) -> f64 {
    v["metrics"][name]["value"].as_f64().unwrap()
}

fn context_ids(v: &Value) -> Vec<(u64, String, Option<u64>)> {
    v["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
                c["parent_id"].as_u64(),
            )
        })
        .collect()
}

mod input;
mod limits;
mod memory;
mod seed;
