//! `ir_paths <path> [n]`: runs one hot path of the library `n` times (200 000 by
//! default, or `IR_N`) so that callgrind can count its instructions.
//!
//! Everything the path needs (the pool and its resident page, the context, the
//! allocator's warm thread cache) is set up before the counted function runs;
//! the counted functions are `#[inline(never)]` and all named `ir_count_<path>`,
//! so
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='ir_paths::ir_count_*' ir_paths pin_unpin
//! ```
//!
//! counts only them (and what they call). Ir per op = the total Ir / `n`.
//! `run.sh` does this for every path and several checkouts of the library.
//!
//! Only public API that exists both before (5c0f010) and after the soundness
//! changes of issue 17 is used, so the same program builds against both.
//!
//! Paths:
//! - `optimistic_u64`: `BufferPool::read_optimistic` of one `u64` of a resident page;
//! - `optimistic_128`: the same, 128 bytes (`PageView::read`);
//! - `pin_unpin`: `BufferPool::fetch_read` of a resident page and drop of the guard;
//! - `alloc_pair`: `RustyAlloc` through `GlobalAlloc`, one 32-byte alloc (first
//!   byte written) and its dealloc, each through an `#[inline(never)]` shim as
//!   `__rust_alloc`/`__rust_dealloc` are for a `#[global_allocator]`;
//! - `arena_u64`: `MemoryContext::alloc` of a `u64` (batches of 10 000, the
//!   context reset between batches outside the counted function).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

use rustydb_memory::buffer_pool::{BufferPool, MemDisk, PageId, Policy};
use rustydb_memory::{MemoryContext, RustyAlloc};

const PATHS: [&str; 6] = [
    "optimistic_u64",
    "optimistic_128",
    "write_128",
    "pin_unpin",
    "alloc_pair",
    "arena_u64",
];

/// Allocations per arena batch (the context is reset between batches).
const ARENA_BATCH: usize = 10_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_default();
    let n: usize = args
        .next()
        .or_else(|| std::env::var("IR_N").ok())
        .map_or(200_000, |s| s.parse().expect("n: a number"));
    match path.as_str() {
        "optimistic_u64" => {
            let (pool, id) = pool_with_page();
            black_box(ir_count_optimistic_u64(&pool, id, n));
        }
        "optimistic_128" => {
            let (pool, id) = pool_with_page();
            black_box(ir_count_optimistic_128(&pool, id, n));
        }
        "write_128" => {
            let (pool, id) = pool_with_page();
            black_box(ir_count_write_128(&pool, id, n));
        }
        "pin_unpin" => {
            let (pool, id) = pool_with_page();
            black_box(ir_count_pin_unpin(&pool, id, n));
        }
        "alloc_pair" => {
            static A: RustyAlloc = RustyAlloc::new();
            let layout = Layout::from_size_align(32, 8).expect("layout");
            // Warm the thread cache and the size class outside the count.
            ir_warm_alloc_pair(&A, layout, 1_000);
            ir_count_alloc_pair(&A, layout, n);
        }
        "arena_u64" => {
            let mut ctx = MemoryContext::root("ir_paths");
            // A first batch outside the count gets the chunk.
            ir_warm_arena_u64(&ctx, ARENA_BATCH);
            ctx.reset();
            let mut left = n;
            while left > 0 {
                let k = left.min(ARENA_BATCH);
                black_box(ir_count_arena_u64(&ctx, k));
                ctx.reset();
                left -= k;
            }
        }
        _ => {
            eprintln!("usage: ir_paths <{}> [n]", PATHS.join("|"));
            std::process::exit(2);
        }
    }
}

/// A pool of 64 frames of 4 KiB (ARC, the one policy both checkouts have as
/// their fixed choice) with one resident page, a known `u64` at offset 0.
fn pool_with_page() -> (BufferPool, PageId) {
    let pool = BufferPool::builder()
        .frames(64)
        .page_size(4096)
        .policy(Policy::Arc)
        .disk(MemDisk::new(4096))
        .build()
        .expect("pool");
    let id = {
        let mut page = pool.new_page().expect("new page");
        page[..8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
        for (i, b) in page[8..256].iter_mut().enumerate() {
            *b = i as u8;
        }
        page.page_id()
    };
    // Warm every path outside the count (page table, access log, policy).
    for _ in 0..1_000 {
        drop(pool.fetch_read(id).expect("resident"));
        black_box(pool.read_optimistic(id, |v| v.u64_at(0)).expect("resident"));
    }
    (pool, id)
}

#[inline(never)]
fn ir_count_optimistic_u64(pool: &BufferPool, id: PageId, n: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        let v = pool.read_optimistic(black_box(id), |v| v.u64_at(0));
        sum = sum.wrapping_add(v.expect("resident").expect("in the payload"));
    }
    sum
}

#[inline(never)]
fn ir_count_optimistic_128(pool: &BufferPool, id: PageId, n: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        let v = pool.read_optimistic(black_box(id), |v| {
            let mut out = [0u8; 128];
            assert!(v.read(8, &mut out));
            out
        });
        let out = black_box(v.expect("resident"));
        sum = sum.wrapping_add(u64::from(out[0]) + u64::from(out[127]));
    }
    sum
}

/// `WriteGuard::write` of 125 bytes at offset 3 (a partial head word, whole
/// words, a partial tail) on a page that was read optimistically, so the write
/// goes through atomic word stores; the latch and unpin are counted too.
#[inline(never)]
fn ir_count_write_128(pool: &BufferPool, id: PageId, n: usize) -> u64 {
    let src = [0x5au8; 125];
    for i in 0..n {
        let mut g = pool.fetch_write(black_box(id)).expect("resident");
        assert!(g.write(3, black_box(&src[..125 - (i & 1)])));
        drop(g);
    }
    n as u64
}

#[inline(never)]
fn ir_count_pin_unpin(pool: &BufferPool, id: PageId, n: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        let g = pool.fetch_read(black_box(id)).expect("resident");
        sum = sum.wrapping_add(u64::from(g[0]));
        drop(g);
    }
    sum
}

/// # Safety
/// As `GlobalAlloc::alloc`.
#[inline(never)]
unsafe fn shim_alloc(a: &RustyAlloc, layout: Layout) -> *mut u8 {
    // SAFETY: forwarded contract.
    unsafe { a.alloc(layout) }
}

/// # Safety
/// `p` came from `shim_alloc(a, layout)` and is not used again.
#[inline(never)]
unsafe fn shim_dealloc(a: &RustyAlloc, p: *mut u8, layout: Layout) {
    // SAFETY: forwarded contract.
    unsafe { a.dealloc(p, layout) }
}

#[inline(always)]
fn alloc_pair(a: &RustyAlloc, layout: Layout, n: usize) {
    for _ in 0..n {
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { shim_alloc(a, layout) };
        assert!(!p.is_null(), "out of memory");
        // SAFETY: `p` is a fresh block of `layout.size() ≥ 1` bytes.
        unsafe { p.write_volatile(1) };
        // SAFETY: `p` came from `shim_alloc(a, layout)` and is freed once.
        unsafe { shim_dealloc(a, black_box(p), layout) };
    }
}

#[inline(never)]
fn ir_warm_alloc_pair(a: &RustyAlloc, layout: Layout, n: usize) {
    alloc_pair(a, layout, n);
}

#[inline(never)]
fn ir_count_alloc_pair(a: &RustyAlloc, layout: Layout, n: usize) {
    alloc_pair(a, layout, n);
}

#[inline(always)]
fn arena_u64(ctx: &MemoryContext<'_>, n: usize) -> usize {
    let mut last = 0;
    for i in 0..n {
        last = black_box(ctx.alloc(i as u64)) as *mut u64 as usize;
    }
    last
}

#[inline(never)]
fn ir_warm_arena_u64(ctx: &MemoryContext<'_>, n: usize) -> usize {
    arena_u64(ctx, n)
}

#[inline(never)]
fn ir_count_arena_u64(ctx: &MemoryContext<'_>, n: usize) -> usize {
    arena_u64(ctx, n)
}
