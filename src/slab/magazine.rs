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

/// Source of magazines: 256 KiB chunks of its own (aligned to their size, so a
/// magazine finds its chunk by masking), a lock-protected free list, and a
/// per-chunk count of live magazines so that [`release_unused`](Self::release_unused)
/// can give wholly free chunks' pages back to the OS. Chunks are never unmapped:
/// statistics read other threads' magazines racily and rely on that.
#[cfg(not(rustydb_loom))]
pub(crate) struct MagazinePool {
    lock: crate::sync::RawLock,
    inner: crate::sync::UnsafeCell<PoolInner>,
    /// Magazines carved so far and not released (live or on the free list).
    pub(crate) carved: AtomicUsize,
}

#[cfg(not(rustydb_loom))]
struct PoolInner {
    free: *mut Magazine,
    bump: usize,
    end: usize,
    /// Chunks whose pages were released, ready to be carved again.
    empty: *mut ChunkHead,
}

/// The first bytes of every pool chunk.
#[cfg(not(rustydb_loom))]
#[repr(C)]
struct ChunkHead {
    /// Magazines of this chunk handed out and not returned.
    live: usize,
    /// Magazines carved from this chunk so far.
    carved: usize,
    next_empty: *mut ChunkHead,
    /// Set while a `release_unused` pass has picked this chunk.
    picked: bool,
}

// SAFETY: `inner` and every chunk head are only accessed with `lock` held.
#[cfg(not(rustydb_loom))]
unsafe impl Sync for MagazinePool {}

#[cfg(not(rustydb_loom))]
const POOL_CHUNK: usize = 256 << 10;
#[cfg(not(rustydb_loom))]
const CHUNK_HEAD: usize = 64;

#[cfg(not(rustydb_loom))]
fn chunk_of(m: *mut Magazine) -> *mut ChunkHead {
    (m as usize & !(POOL_CHUNK - 1)) as *mut ChunkHead
}

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
                empty: ptr::null_mut(),
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
            // nobody else references; chunks and the bump range are our mappings.
            unsafe {
                let m = if !(*inner).free.is_null() {
                    let m = (*inner).free;
                    (*inner).free = (*m).next;
                    m
                } else {
                    if (*inner).bump + size > (*inner).end {
                        let chunk = if !(*inner).empty.is_null() {
                            let c = (*inner).empty;
                            (*inner).empty = (*c).next_empty;
                            c
                        } else {
                            match crate::sys::map_aligned(POOL_CHUNK, POOL_CHUNK) {
                                Some(p) => p.as_ptr().cast::<ChunkHead>(),
                                None => return ptr::null_mut(),
                            }
                        };
                        chunk.write(ChunkHead {
                            live: 0,
                            carved: 0,
                            next_empty: ptr::null_mut(),
                            picked: false,
                        });
                        (*inner).bump = chunk as usize + CHUNK_HEAD;
                        (*inner).end = chunk as usize + POOL_CHUNK;
                    }
                    let m = (*inner).bump as *mut Magazine;
                    (*inner).bump += size;
                    (*chunk_of(m)).carved += 1;
                    // Relaxed: a statistic.
                    self.carved.fetch_add(1, Ordering::Relaxed);
                    m
                };
                (*chunk_of(m)).live += 1;
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
            // SAFETY: lock held; `m` is ours alone (caller); its chunk head is live.
            unsafe {
                (*chunk_of(m)).live -= 1;
                (*m).next = (*inner).free;
                (*inner).free = m;
            }
        });
    }

    /// Gives the pages of chunks with no live magazine back to the OS
    /// (`MADV_DONTNEED`; the chunks stay mapped and are carved again later).
    /// Returns the bytes released.
    pub(crate) fn release_unused(&self) -> usize {
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: lock held; every magazine on the free list and every chunk
            // head is ours; a picked chunk has no live magazine, so no cache or
            // depot refers to any of its magazines.
            unsafe {
                let current = if (*inner).end != 0 {
                    ((*inner).end - POOL_CHUNK) as *mut ChunkHead
                } else {
                    ptr::null_mut()
                };
                // Unlink free magazines of wholly free chunks, picking those chunks.
                let mut picked: *mut ChunkHead = ptr::null_mut();
                let mut link: *mut *mut Magazine = &mut (*inner).free;
                while !(*link).is_null() {
                    let m = *link;
                    let c = chunk_of(m);
                    if (*c).live == 0 && c != current {
                        *link = (*m).next;
                        if !(*c).picked {
                            (*c).picked = true;
                            (*c).next_empty = picked;
                            picked = c;
                        }
                    } else {
                        link = &mut (*m).next;
                    }
                }
                let mut released = 0;
                while !picked.is_null() {
                    let c = picked;
                    picked = (*c).next_empty;
                    let carved = (*c).carved;
                    let page = crate::sys::page_size();
                    crate::sys::advise(
                        (c as *mut u8).add(page),
                        POOL_CHUNK - page,
                        crate::sys::Advice::DontNeed,
                    );
                    released += POOL_CHUNK - page;
                    // Relaxed: a statistic.
                    self.carved.fetch_sub(carved, Ordering::Relaxed);
                    (*c).carved = 0;
                    (*c).picked = false;
                    (*c).next_empty = (*inner).empty;
                    (*inner).empty = c;
                }
                released
            }
        })
    }
}
