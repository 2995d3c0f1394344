//! Magazines (Bonwick & Adams, USENIX 2001): fixed-capacity stacks of free
//! objects of one class that move between a thread's cache and the depot whole.
//!
//! Magazines are metadata: they never come from the allocator they serve. The
//! [`MagazinePool`] carves them from its own mappings and recycles them.

use core::ptr;

use crate::sync::{AtomicU32, AtomicUsize, Ordering};

/// Largest magazine capacity (the default; big classes use fewer rounds).
pub(crate) const MAG_MAX: usize = 64;

/// A stack of up to `cap` free objects of one class.
///
/// Invariant: `rounds[..count]` are free objects (starts of objects of the
/// magazine's class, not in use and in no other magazine); `count <= cap`. Only
/// the owner (one thread's cache, or the depot under its lock) touches `rounds` and
/// `next`; `count` is atomic only so statistics can read it from other threads
/// (relaxed loads and stores: plain moves, no read-modify-write on the hot path).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Magazine {
    pub(crate) count: AtomicU32,
    pub(crate) cap: u32,
    pub(crate) next: *mut Magazine,
    pub(crate) rounds: [*mut u8; MAG_MAX],
}

impl Magazine {
    /// An empty magazine of capacity `cap` (`<= MAG_MAX`).
    #[cfg(not(rustydb_loom))]
    pub(crate) const fn new(cap: u32) -> Self {
        Self {
            count: AtomicU32::new(0),
            cap,
            next: ptr::null_mut(),
            rounds: [ptr::null_mut(); MAG_MAX],
        }
    }

    /// An empty magazine of capacity `cap` (`<= MAG_MAX`).
    #[cfg(rustydb_loom)]
    pub(crate) fn new(cap: u32) -> Self {
        Self {
            count: AtomicU32::new(0),
            cap,
            next: ptr::null_mut(),
            rounds: [ptr::null_mut(); MAG_MAX],
        }
    }

    /// Number of objects held.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: only the owner writes `count`; other threads read it for stats.
        self.count.load(Ordering::Relaxed) as usize
    }

    /// Whether the magazine holds `cap` objects.
    #[inline(always)]
    pub(crate) fn is_full(&self) -> bool {
        self.len() == self.cap as usize
    }

    /// Sets the number of objects held (owner only).
    #[inline(always)]
    pub(crate) fn set_len(&self, n: usize) {
        // Relaxed: see `len`.
        self.count.store(n as u32, Ordering::Relaxed);
    }
}

/// Source of magazines: its own mappings, a lock-protected free list.
#[cfg(not(rustydb_loom))]
pub(crate) struct MagazinePool {
    lock: crate::sync::RawLock,
    inner: crate::sync::UnsafeCell<PoolInner>,
    /// Magazines carved so far (live or on the free list).
    pub(crate) carved: AtomicUsize,
}

#[cfg(not(rustydb_loom))]
struct PoolInner {
    free: *mut Magazine,
    bump: usize,
    end: usize,
}

// SAFETY: `inner` is only accessed with `lock` held.
#[cfg(not(rustydb_loom))]
unsafe impl Sync for MagazinePool {}

#[cfg(not(rustydb_loom))]
const POOL_CHUNK: usize = 256 << 10;

#[cfg(not(rustydb_loom))]
impl MagazinePool {
    /// An empty pool.
    pub(crate) const fn new() -> Self {
        Self {
            lock: crate::sync::RawLock::new(),
            inner: crate::sync::UnsafeCell::new(PoolInner {
                free: ptr::null_mut(),
                bump: 0,
                end: 0,
            }),
            carved: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> &crate::sync::RawLock {
        &self.lock
    }

    /// A new empty magazine of capacity `cap`, or null if the OS refuses memory.
    pub(crate) fn get(&self, cap: u32) -> *mut Magazine {
        let size = core::mem::size_of::<Magazine>();
        let _g = self.lock.guard();
        let m = self.inner.with_mut(|inner| {
            // SAFETY: lock held; free-list entries are magazines we carved and
            // nobody else references; the bump range is our own mapping.
            unsafe {
                if !(*inner).free.is_null() {
                    let m = (*inner).free;
                    (*inner).free = (*m).next;
                    return m;
                }
                if (*inner).bump + size > (*inner).end {
                    let Some(chunk) = crate::sys::map(POOL_CHUNK) else {
                        return ptr::null_mut();
                    };
                    (*inner).bump = chunk.as_ptr() as usize;
                    (*inner).end = (*inner).bump + POOL_CHUNK;
                }
                let m = (*inner).bump as *mut Magazine;
                (*inner).bump += size;
                // Relaxed: a statistic.
                self.carved.fetch_add(1, Ordering::Relaxed);
                m
            }
        });
        if !m.is_null() {
            // SAFETY: `m` is a magazine-sized, aligned block owned by nobody else.
            unsafe { m.write(Magazine::new(cap)) };
        }
        m
    }

    /// Returns an empty magazine to the pool.
    ///
    /// # Safety
    /// `m` came from `get`, holds no objects that are still needed, and is not
    /// referenced elsewhere.
    pub(crate) unsafe fn put(&self, m: *mut Magazine) {
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: lock held; `m` is ours alone (caller).
            unsafe {
                (*m).next = (*inner).free;
                (*inner).free = m;
            }
        });
    }
}
