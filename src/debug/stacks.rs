//! The stack depot: call stacks captured as raw instruction pointers (no symbol
//! resolution, no allocation), deduplicated by hash into a fixed table in memory
//! of our own, identified by a `u32` id. Symbols are resolved only when a report
//! is made.

use core::ptr;

use crate::sync::{AtomicPtr, Ordering, RawLock, UnsafeCell};
use crate::sys;

/// Frames kept per stack.
pub(crate) const MAX_FRAMES: usize = 24;
const CAPACITY: usize = 1 << 16; // distinct stacks
const TABLE: usize = CAPACITY * 2; // hash slots (u32 ids, 0 = empty)

#[repr(C)]
struct Depot {
    /// `TABLE` slots of stack ids.
    slots: [u32; TABLE],
    /// Stack `id` is `frames[id]`, `lens[id]` frames long; id 0 is "none".
    lens: [u8; CAPACITY],
    frames: [[usize; MAX_FRAMES]; CAPACITY],
}

struct DepotState {
    next: u32,
}

static LOCK: RawLock = RawLock::new();
static STATE: StateCell = StateCell(UnsafeCell::new(DepotState { next: 1 }));
static DEPOT: AtomicPtr<Depot> = AtomicPtr::new(ptr::null_mut());

struct StateCell(UnsafeCell<DepotState>);
// SAFETY: accessed only with LOCK held.
unsafe impl Sync for StateCell {}

fn depot() -> *mut Depot {
    // Acquire: pairs with the Release below, so the mapping is visible.
    let d = DEPOT.load(Ordering::Acquire);
    if !d.is_null() {
        return d;
    }
    let bytes = core::mem::size_of::<Depot>().next_multiple_of(sys::page_size());
    let Some(m) = sys::map(bytes) else {
        return ptr::null_mut();
    };
    let new = m.as_ptr().cast::<Depot>();
    // AcqRel: publish our zeroed mapping, or see the winner's.
    match DEPOT.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => new,
        Err(winner) => {
            // SAFETY: our own mapping, never published.
            unsafe { sys::unmap(new.cast(), bytes) };
            winner
        }
    }
}

fn hash(ips: &[usize]) -> usize {
    ips.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &ip| {
        (h ^ ip as u64).wrapping_mul(0x100_0000_01b3)
    }) as usize
}

/// Captures the calling thread's stack, skipping `skip` innermost frames, and
/// returns its id (0 if it could not be stored). The caller must hold the
/// debugger's reentrancy guard: unwinding may allocate.
pub(crate) fn capture(skip: usize, max: usize) -> u32 {
    let max = max.min(MAX_FRAMES);
    let mut ips = [0usize; MAX_FRAMES];
    let mut n = 0;
    let mut skip = skip;
    // SAFETY: `trace_unsynchronized` is unsafe only because it skips backtrace's
    // global lock (which is what makes dhat deadlock, dhat-rs #25/#38): concurrent
    // unwinds here only read the unwind tables, which the unwinder supports.
    unsafe {
        backtrace::trace_unsynchronized(|f| {
            if skip > 0 {
                skip -= 1;
                return true;
            }
            ips[n] = f.ip() as usize;
            n += 1;
            n < max
        });
    }
    intern(&ips[..n])
}

fn intern(ips: &[usize]) -> u32 {
    if ips.is_empty() {
        return 0;
    }
    let d = depot();
    if d.is_null() {
        return 0;
    }
    let h = hash(ips);
    let _g = LOCK.guard();
    // SAFETY: LOCK held; `d` is our live depot mapping; ids index within CAPACITY.
    unsafe {
        let mut i = h % TABLE;
        loop {
            let id = (*d).slots[i];
            if id == 0 {
                let next = STATE.0.with_mut(|s| (*s).next);
                if next as usize >= CAPACITY {
                    return 0; // full: stacks beyond 65 535 distinct are not kept
                }
                (&mut (*d).frames[next as usize])[..ips.len()].copy_from_slice(ips);
                (*d).lens[next as usize] = ips.len() as u8;
                (*d).slots[i] = next;
                STATE.0.with_mut(|s| (*s).next = next + 1);
                return next;
            }
            let len = (*d).lens[id as usize] as usize;
            if len == ips.len() && (&(*d).frames[id as usize])[..len] == *ips {
                return id;
            }
            i = (i + 1) % TABLE;
        }
    }
}

/// The raw instruction pointers of stack `id`.
pub(crate) fn frames(id: u32) -> Vec<usize> {
    let d = DEPOT.load(Ordering::Acquire);
    if id == 0 || d.is_null() || id as usize >= CAPACITY {
        return Vec::new();
    }
    let _g = LOCK.guard();
    // SAFETY: LOCK held; `id` was issued (entries are immutable once written).
    unsafe {
        let len = (*d).lens[id as usize] as usize;
        (&(*d).frames[id as usize])[..len].to_vec()
    }
}

/// Resolves stack `id` to `function (file:line)` lines, skipping the
/// debugger's and the allocator's own frames.
pub(crate) fn resolve(id: u32) -> Vec<String> {
    // One instruction pointer stands for several frames where functions were
    // inlined: every symbol is listed, innermost first, and the debugger's and
    // allocator's own frames are dropped from the top.
    let mut all = Vec::new();
    for ip in frames(id) {
        let before = all.len();
        backtrace::resolve(ip as *mut core::ffi::c_void, |sym| {
            let name = sym
                .name()
                .map(|n| format!("{n:#}"))
                .unwrap_or_else(|| format!("{ip:#x}"));
            let loc = match (sym.filename(), sym.lineno()) {
                (Some(f), Some(l)) => format!(" ({}:{l})", f.display()),
                _ => String::new(),
            };
            all.push(format!("{name}{loc}"));
        });
        if all.len() == before {
            all.push(format!("{ip:#x}"));
        }
    }
    let internal = [
        "rustydb_memory::debug::",
        "<rustydb_memory::debug::",
        "backtrace::",
        "__rustc::",
        "alloc::alloc::",
        "std::thread::local::",
        "std::sys::thread_local::",
        "core::ops::function::",
    ];
    let first = all
        .iter()
        .position(|l| !internal.iter().any(|p| l.starts_with(p)))
        .unwrap_or(all.len());
    all.split_off(first)
}
