//! Components: a thread tags its allocations with a component ("query_exec",
//! "wal", …); the debugger keeps live bytes, count, peak and totals per component.
//! Names live in a fixed table (no allocation); id 0 is "untagged".

use core::cell::Cell;

use crate::sync::{AtomicU64, Ordering, RawLock, UnsafeCell};

/// Components that can be told apart (further names share the last id).
pub const MAX_COMPONENTS: usize = 256;
const NAME_LEN: usize = 47;

struct Names {
    count: usize,
    names: [[u8; NAME_LEN + 1]; MAX_COMPONENTS],
}

struct NameTable(UnsafeCell<Names>);
// SAFETY: accessed only with NAMES_LOCK held.
unsafe impl Sync for NameTable {}

static NAMES_LOCK: RawLock = RawLock::new();
static NAMES: NameTable = NameTable(UnsafeCell::new(Names {
    count: 1,
    names: [[0; NAME_LEN + 1]; MAX_COMPONENTS],
}));

thread_local! {
    static CURRENT: Cell<u16> = const { Cell::new(0) };
}

/// The id of component `name` (interned; names longer than 47 bytes are cut).
pub(crate) fn intern(name: &str) -> u16 {
    let b = &name.as_bytes()[..name.len().min(NAME_LEN)];
    let _g = NAMES_LOCK.guard();
    // SAFETY: lock held.
    NAMES.0.with_mut(|n| unsafe {
        for id in 1..(*n).count {
            let e = &(*n).names[id];
            if e[NAME_LEN] as usize == b.len() && &e[..b.len()] == b {
                return id as u16;
            }
        }
        if (*n).count == MAX_COMPONENTS {
            return (MAX_COMPONENTS - 1) as u16;
        }
        let id = (*n).count;
        (&mut (*n).names[id])[..b.len()].copy_from_slice(b);
        (*n).names[id][NAME_LEN] = b.len() as u8;
        (*n).count += 1;
        id as u16
    })
}

/// The name of component `id`.
pub(crate) fn name(id: u16) -> String {
    if id == 0 {
        return "untagged".into();
    }
    let _g = NAMES_LOCK.guard();
    // SAFETY: lock held.
    NAMES.0.with_mut(|n| unsafe {
        let e = &(*n).names[id as usize];
        String::from_utf8_lossy(&e[..e[NAME_LEN] as usize]).into_owned()
    })
}

/// Component of the calling thread's allocations (0 during TLS teardown).
#[inline]
pub(crate) fn current() -> u16 {
    CURRENT.try_with(|c| c.get()).unwrap_or(0)
}

/// Tags the calling thread's allocations with a component until dropped
/// (restoring the previous one).
#[derive(Debug)]
#[must_use = "the component applies only while the guard lives"]
pub struct ComponentGuard {
    prev: u16,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for ComponentGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.prev));
    }
}

/// Tags this thread's allocations with `name` while the guard lives.
pub fn component(name: &str) -> ComponentGuard {
    let id = intern(name);
    let prev = CURRENT.try_with(|c| c.replace(id)).unwrap_or(0);
    ComponentGuard {
        prev,
        _not_send: core::marker::PhantomData,
    }
}

/// Runs `f` with this thread's allocations tagged `name`.
pub fn with_component<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let _g = component(name);
    f()
}

/// Per-component counters (one set per `DebugAlloc`): two read-modify-writes
/// per allocation and two per free; live figures are derived (allocated − freed).
pub(crate) struct Counters {
    alloc_bytes: AtomicU64,
    alloc_count: AtomicU64,
    free_bytes: AtomicU64,
    free_count: AtomicU64,
    peak_bytes: AtomicU64,
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Self {
            alloc_bytes: AtomicU64::new(0),
            alloc_count: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
            free_count: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn on_alloc(&self, size: usize) {
        // Relaxed: independent statistics counters.
        let total = self.alloc_bytes.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
        self.alloc_count.fetch_add(1, Ordering::Relaxed);
        // The peak is kept to within concurrent frees: live = total − freed.
        let live = total.saturating_sub(self.free_bytes.load(Ordering::Relaxed));
        if live > self.peak_bytes.load(Ordering::Relaxed) {
            self.peak_bytes.fetch_max(live, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn on_free(&self, size: usize) {
        // Relaxed: as above.
        self.free_bytes.fetch_add(size as u64, Ordering::Relaxed);
        self.free_count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, id: u16) -> Option<ComponentStats> {
        // Relaxed: a statistics snapshot (frees read first, so live never underflows
        // because of an allocation racing the snapshot).
        let free_count = self.free_count.load(Ordering::Relaxed);
        let free_bytes = self.free_bytes.load(Ordering::Relaxed);
        let total_count = self.alloc_count.load(Ordering::Relaxed);
        let total_bytes = self.alloc_bytes.load(Ordering::Relaxed);
        (total_count != 0).then(|| ComponentStats {
            name: name(id),
            live_bytes: total_bytes.saturating_sub(free_bytes),
            live_count: total_count.saturating_sub(free_count),
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            total_bytes,
            total_count,
        })
    }
}

/// Figures of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ComponentStats {
    /// The component's name (`untagged` for id 0).
    pub name: String,
    /// Bytes live now.
    pub live_bytes: u64,
    /// Blocks live now.
    pub live_count: u64,
    /// Highest live bytes seen.
    pub peak_bytes: u64,
    /// Bytes ever allocated.
    pub total_bytes: u64,
    /// Blocks ever allocated.
    pub total_count: u64,
}
