//! Buffer pool behaviour: persistence, corruption, bad input, latches,
//! optimistic reads, tiers, shrink, flusher, pressure, and two threads of
//! random reads and writes with per-page checksums.
//!
//! `cargo test --release --test buffer_pool`

#[path = "../bp_common/mod.rs"]
mod bp_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bp_common::{Rng, TempFile, fill, valid, zipf};
use rustydb_memory::Error;
use rustydb_memory::buffer_pool::{
    BufferPool, DiskManager, FileDisk, MAX_PAGE_ID, MemDisk, PAGE_HEADER, Policy, Tier,
};
use rustydb_memory::pressure::PressureManager;

fn mem_pool(frames: usize, pages: u64) -> BufferPool {
    BufferPool::builder()
        .frames(frames)
        .disk(MemDisk::with_pages(4096, pages))
        .build()
        .unwrap()
}

mod access;
mod storage;
mod tiers;
