//! `cargo run --release --example rustydb_server [-- --help]`: the RustyDB REST
//! and GraphQL server on 127.0.0.1:8080, with `RustyAlloc` as the global
//! allocator under the memory debugger (`RUSTYDB_MEM_DEBUG=off|counting|tracking|full`;
//! off is a pass-through).

use rustydb_memory::{DebugAlloc, RustyAlloc};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "server.rs"]
mod server;

fn main() -> std::process::ExitCode {
    server::run_main(std::env::args().skip(1).collect(), Some(&GLOBAL))
}
