//! [`LargeObjectAllocator`]: the public type. Each operation takes the lock
//! for a few table updates ([`state`](super::state)) and makes its system calls —
//! mmap on a miss, munmap of evicted blocks, madvise — after releasing it. Only
//! the `mremap` of a growing block (see `realloc_block`), the decay's
//! `MADV_FREE` of cached blocks (see `State::expire`) and the rare growth of the
//! registry's own tables run under the lock.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use super::builder::{AllocOptions, Config, LargeObjectAllocatorBuilder};
use super::huge::{Backing, HugePagePolicy, THP_SIZE, Want};
use super::mapping::{self, Batch, round_up};
use super::state::State;
use super::stats::{Counters, LargeStats};
use crate::error::{Error, Result};
use crate::sync::Lock;
use crate::sys::{self, Advice};

/// The large-object allocator: page-granular blocks mapped directly from the
/// OS, with huge pages by policy, `madvise`, prefaulting, `mremap` growth and a
/// bounded, decaying cache of freed mappings that makes reuse cost no system
/// call.
///
/// [`LargeObjectAllocator::global()`] is the instance `RustyAlloc` sends every
/// request at or above the threshold to; more instances (with their own cache
/// and figures) come from [`builder`](Self::builder). Memory and tables are
/// mapped directly — nothing here allocates through the global allocator.
///
/// ```
/// use rustydb_memory::{Advice, LargeObjectAllocator};
/// use std::alloc::Layout;
///
/// let large = LargeObjectAllocator::new();
/// let layout = Layout::from_size_align(1 << 20, 4096).unwrap();
/// let p = large.try_alloc_zeroed(layout).unwrap();
/// large.advise(p.as_ptr(), 1 << 20, Advice::Sequential).unwrap();
/// // SAFETY: `p` came from `large` with `layout` and is not used afterwards.
/// unsafe { large.dealloc(p.as_ptr(), layout) };
/// let q = large.try_alloc(layout).unwrap(); // the same mapping, from the cache
/// assert_eq!(p, q);
/// assert_eq!(large.stats().mmap_calls, 1);
/// # unsafe { large.dealloc(q.as_ptr(), layout) };
/// ```
#[derive(Debug)]
pub struct LargeObjectAllocator {
    state: Lock<State>,
    counters: Counters,
    config: Config,
}

/// The instance behind `RustyAlloc`.
pub(crate) static GLOBAL: LargeObjectAllocator = LargeObjectAllocator::new();

impl Default for LargeObjectAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl LargeObjectAllocator {
    /// An allocator with every setting from the environment or the defaults
    /// (see [`LargeObjectAllocatorBuilder`]).
    pub const fn new() -> Self {
        Self::with_config(Config::DEFAULT)
    }

    /// A builder for an allocator with other settings.
    pub const fn builder() -> LargeObjectAllocatorBuilder {
        LargeObjectAllocatorBuilder::new()
    }

    pub(crate) const fn with_config(config: Config) -> Self {
        Self {
            state: Lock::new(State::new()),
            counters: Counters::new(),
            config,
        }
    }

    /// The process-wide instance that `RustyAlloc` uses for large requests, so
    /// blocks from `Vec`, `Box`… of large sizes can be advised through it.
    pub fn global() -> &'static LargeObjectAllocator {
        &GLOBAL
    }

    /// Requests of this many bytes or more belong here.
    pub fn threshold(&self) -> usize {
        self.config.threshold()
    }

    /// The default huge-page policy.
    pub fn huge_page_policy(&self) -> HugePagePolicy {
        self.locked(|s| s.limits.policy)
    }

    /// Runs `f` on the state with the lock held (resolving the limits first).
    #[inline(always)]
    fn locked<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock();
        if !s.ready {
            s.limits = self.config.resolve();
            s.ready = true;
            s.tick();
        }
        f(&mut s)
    }

    /// A block for `layout` (any size, rounded up to whole pages).
    pub fn try_alloc(&self, layout: Layout) -> Result<NonNull<u8>> {
        self.alloc_block(layout.size(), layout.align(), AllocOptions::new())
    }

    /// A zeroed block for `layout`.
    pub fn try_alloc_zeroed(&self, layout: Layout) -> Result<NonNull<u8>> {
        self.alloc_block(
            layout.size(),
            layout.align(),
            AllocOptions::new().zeroed(true),
        )
    }

    /// A block for `layout` with `opts` (zeroed, prefaulted, huge pages).
    pub fn try_alloc_with(&self, layout: Layout, opts: AllocOptions) -> Result<NonNull<u8>> {
        self.alloc_block(layout.size(), layout.align(), opts)
    }

    #[inline]
    pub(crate) fn alloc_block(
        &self,
        size: usize,
        align: usize,
        opts: AllocOptions,
    ) -> Result<NonNull<u8>> {
        let page = sys::page_size();
        let bad = Error::InvalidLayout { size, align };
        if !align.is_power_of_two() || size > isize::MAX as usize - align {
            return Err(bad);
        }
        let len = round_up(size.max(1), page).ok_or(bad)?;
        let align = align.max(page);
        let hit = self.locked(|s| {
            let policy = opts.huge_page_policy().unwrap_or(s.limits.policy);
            match s.take(size, len, align, Want::of(policy, len, align)) {
                Some(block) => Ok(block),
                None => {
                    s.misses += 1;
                    Err(policy)
                }
            }
        });
        let addr = match hit {
            Ok((addr, _)) => {
                if opts.is_zeroed() {
                    // SAFETY: the block `[addr, addr+len)` is live and ours alone.
                    unsafe { ptr::write_bytes(addr as *mut u8, 0, size) };
                }
                addr
            }
            Err(policy) => self.map_fresh(size, len, align, policy)?,
        };
        if opts.is_prefault() {
            Counters::bump(&self.counters.prefaults);
            Counters::bump(&self.counters.madvise);
            // SAFETY: `[addr, addr+len)` is a live read-write block nobody else
            // has yet; populating keeps its contents.
            unsafe { sys::populate(addr as *mut u8, len) };
        }
        // SAFETY: mappings never start at address 0.
        Ok(unsafe { NonNull::new_unchecked(addr as *mut u8) })
    }

    /// The miss path: maps (after emptying the cache if the kernel refuses),
    /// registers, and decays while it holds the lock anyway.
    #[cold]
    fn map_fresh(
        &self,
        size: usize,
        len: usize,
        align: usize,
        policy: HugePagePolicy,
    ) -> Result<usize> {
        let oom = Error::OutOfMemory { requested: size };
        let m = match mapping::map_block(len, align, policy, &self.counters) {
            Some(m) => m,
            // The kernel refused (address space, overcommit or cgroup limit):
            // give the cache back and try once more.
            None if self.purge() > 0 => {
                mapping::map_block(len, align, policy, &self.counters).ok_or(oom.clone())?
            }
            None => return Err(oom),
        };
        let mut batch = Batch::new();
        let ok = self.locked(|s| {
            s.tick();
            s.expire(&mut batch);
            s.add_live(m, size, Want::of(policy, len, align))
        });
        // SAFETY: the batch holds ranges just detached from the registry; when
        // `ok` is false the fresh mapping was never registered or handed out.
        unsafe {
            batch.unmap_all(&self.counters);
            if !ok {
                mapping::unmap(m.addr, m.len, &self.counters);
            }
        }
        if ok { Ok(m.addr) } else { Err(oom) }
    }

    /// Frees a block (into the cache when it fits).
    ///
    /// # Safety
    /// `ptr` came from this allocator with `layout` (or from a reallocation to
    /// `layout.size()`), and is not used afterwards.
    pub unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = layout;
        // SAFETY: forwarded contract.
        let _ = unsafe { self.free_block(ptr) };
    }

    /// Frees a block, checking that `ptr` is the start of a live block of this
    /// allocator: `Err(UnknownRange)` for anything else — a foreign pointer, an
    /// interior pointer or a block already freed — and nothing happens then.
    ///
    /// # Safety
    /// If `ptr` is a live block of this allocator, nothing uses it afterwards.
    pub unsafe fn try_dealloc(&self, ptr: *mut u8) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.free_block(ptr) }
    }

    /// # Safety
    /// As [`try_dealloc`](Self::try_dealloc).
    #[inline]
    pub(crate) unsafe fn free_block(&self, ptr: *mut u8) -> Result<()> {
        let mut batch = Batch::new();
        let found = self.locked(|s| match s.live_at(ptr as usize) {
            Some(idx) => {
                s.free(idx, &mut batch);
                true
            }
            None => false,
        });
        // SAFETY: the batch holds ranges detached from the registry under the
        // lock; nobody can reach them any more.
        unsafe { batch.unmap_all(&self.counters) };
        if found {
            // The block may sit in the cache now: something for the purger.
            crate::sys::purge_signal::notify();
            Ok(())
        } else {
            Err(Error::UnknownRange {
                addr: ptr as usize,
                len: 0,
            })
        }
    }

    /// Resizes a block to `new_size` bytes, keeping its contents up to the
    /// smaller size. Shrinking unmaps the freed tail pages in place; growing
    /// uses the block's spare length if it has some, else `mremap` (which moves
    /// page tables, never bytes), else a new block and a copy. On `Err` the old
    /// block is untouched.
    ///
    /// # Safety
    /// `ptr` is a live block of this allocator allocated with `layout`; on `Ok`
    /// only the returned pointer may be used.
    pub unsafe fn try_realloc(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>> {
        // SAFETY: forwarded contract.
        unsafe { self.realloc_block(ptr, layout.align(), new_size) }
    }

    /// # Safety
    /// As [`try_realloc`](Self::try_realloc).
    pub(crate) unsafe fn realloc_block(
        &self,
        ptr: *mut u8,
        align: usize,
        new_size: usize,
    ) -> Result<NonNull<u8>> {
        let page = sys::page_size();
        let addr = ptr as usize;
        let bad = Error::InvalidLayout {
            size: new_size,
            align,
        };
        if !align.is_power_of_two() || new_size > isize::MAX as usize - align {
            return Err(bad);
        }
        let new_len = round_up(new_size.max(1), page).ok_or(bad)?;
        enum Plan {
            Done(Option<(usize, usize)>),
            Moved(usize, bool),
            Copy(usize),
        }
        let plan = self.locked(|s| {
            let Some(idx) = s.live_at(addr) else {
                return Err(Error::UnknownRange { addr, len: 0 });
            };
            let e = *s.reg.get(idx);
            if new_len <= e.len {
                // Shrink (unmap whole pages past the new end) or grow into spare length.
                let tail = (!e.backing.is_hugetlb() && new_len < e.len)
                    .then(|| (addr + new_len, e.len - new_len));
                s.resize_live(idx, new_size, if tail.is_some() { new_len } else { e.len });
                return Ok(Plan::Done(tail));
            }
            if e.backing.is_hugetlb() {
                return Ok(Plan::Copy(e.size));
            }
            // Under the lock: were the old range unregistered while the kernel moves
            // it, a concurrent mapping could take its address and collide in the
            // registry.
            Counters::bump(&self.counters.mremap);
            // SAFETY: `[addr, addr+e.len)` is a live block of ours (caller), page
            // aligned; blocks needing more than page alignment may only grow in place.
            match unsafe { sys::remap(ptr, e.len, new_len, align <= page) } {
                Some(q) => {
                    let q = q.as_ptr() as usize;
                    if q != addr {
                        s.reg.rekey(idx, q);
                    }
                    s.resize_live(idx, new_size, new_len);
                    let thp = s.limits.policy == HugePagePolicy::Transparent && new_len >= THP_SIZE;
                    if thp {
                        s.set_backing(idx, Backing::Thp);
                    }
                    Ok(Plan::Moved(q, thp))
                }
                None => Ok(Plan::Copy(e.size)),
            }
        })?;
        match plan {
            Plan::Done(tail) => {
                if let Some((t, n)) = tail {
                    // SAFETY: the tail was cut off the live entry under the lock;
                    // the caller no longer uses bytes past `new_size`.
                    unsafe { mapping::unmap(t, n, &self.counters) };
                }
                // SAFETY: `ptr` is non-null (a live block).
                Ok(unsafe { NonNull::new_unchecked(ptr) })
            }
            Plan::Moved(q, thp) => {
                if thp {
                    Counters::bump(&self.counters.madvise);
                    // SAFETY: `[q, q+new_len)` is the caller's live block;
                    // `HugePage` keeps contents.
                    unsafe { sys::advise(q as *mut u8, new_len, Advice::HugePage) };
                }
                // SAFETY: mappings never start at address 0.
                Ok(unsafe { NonNull::new_unchecked(q as *mut u8) })
            }
            Plan::Copy(old_size) => {
                let q = self.alloc_block(new_size, align, AllocOptions::new())?;
                // SAFETY: both blocks are live and distinct; the copy fits both.
                unsafe {
                    ptr::copy_nonoverlapping(ptr, q.as_ptr(), old_size.min(new_size));
                    let _ = self.free_block(ptr);
                }
                Ok(q)
            }
        }
    }

    /// The usable length of the live block starting at `ptr` (its size rounded
    /// to pages, or more if it was served from a slightly bigger cached block).
    pub fn usable_size(&self, ptr: *const u8) -> Option<usize> {
        self.locked(|s| s.live_at(ptr as usize).map(|i| s.reg.get(i).len))
    }

    /// Gives the kernel `advice` about `[ptr, ptr+len)`, widened to whole pages.
    ///
    /// The range must lie inside one live block of this allocator, else
    /// `Err(UnknownRange)` — a pointer we never mapped, a freed block or a range
    /// crossing a block's end are refused before any system call. Advice that
    /// discards contents (`DontNeed`, `Free`) is refused with
    /// `Err(DestructiveAdvice)`: use [`unchecked_advise`](Self::unchecked_advise).
    pub fn advise(&self, ptr: *const u8, len: usize, advice: Advice) -> Result<()> {
        if discards(advice) {
            return Err(Error::DestructiveAdvice {
                advice: advice_name(advice),
            });
        }
        // SAFETY: the advice keeps contents, so no reference into the range can
        // observe a change.
        unsafe { self.advise_range(ptr as usize, len, advice) }
    }

    /// [`advise`](Self::advise) for any advice, including `DontNeed` and `Free`,
    /// which discard whole pages inside the range (partial pages at its ends are
    /// left alone). The range is still checked.
    ///
    /// # Safety
    /// For `DontNeed` / `Free`: nothing in the range is still needed, and no
    /// reference into it is used to read the old contents afterwards (the pages
    /// read as zeros, now or when the kernel reclaims them).
    pub unsafe fn unchecked_advise(
        &self,
        ptr: *const u8,
        len: usize,
        advice: Advice,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.advise_range(ptr as usize, len, advice) }
    }

    /// # Safety
    /// As [`unchecked_advise`](Self::unchecked_advise).
    unsafe fn advise_range(&self, addr: usize, len: usize, advice: Advice) -> Result<()> {
        let page = sys::page_size();
        let known = self.locked(|s| {
            s.reg
                .find_containing(addr, len)
                .is_some_and(|i| s.reg.get(i).state == super::registry::Use::Live)
        });
        if !known {
            return Err(Error::UnknownRange { addr, len });
        }
        let end = addr + len.max(1);
        let (start, stop) = if discards(advice) {
            ((addr + page - 1) & !(page - 1), end & !(page - 1))
        } else {
            (addr & !(page - 1), (end + page - 1) & !(page - 1))
        };
        if start >= stop {
            return Ok(());
        }
        Counters::bump(&self.counters.madvise);
        // SAFETY: `[start, stop)` lies within one live block of ours (checked
        // above; blocks are page aligned so widening stays inside); discarding
        // advice only covers whole pages of the range (caller's contract).
        if unsafe { sys::advise(start as *mut u8, stop - start, advice) } {
            Ok(())
        } else {
            Err(Error::Os {
                op: "madvise",
                errno: sys::errno(),
            })
        }
    }

    /// Unmaps every cached block now; returns the bytes returned to the OS.
    pub fn purge(&self) -> usize {
        self.drain(false)
    }

    /// Runs the cache's decay: blocks cached longer than the purge delay are
    /// given back lazily (`MADV_FREE`), blocks cached longer than the purge and
    /// muzzy delays together are unmapped; returns the bytes unmapped. Freeing
    /// blocks runs this every 64 frees, and RustyAlloc's background purger on
    /// its ticks; call it from a timer or a pressure callback to return memory
    /// while the program is idle.
    pub fn decay(&self) -> usize {
        self.drain(true)
    }

    /// Whether any freed block is cached.
    pub(crate) fn has_cached(&self) -> bool {
        self.locked(|s| s.has_cached())
    }

    fn drain(&self, expired_only: bool) -> usize {
        let mut bytes = 0;
        loop {
            let mut batch = Batch::new();
            let more = self.locked(|s| {
                if expired_only {
                    s.tick();
                    s.expire(&mut batch)
                } else {
                    s.purge(&mut batch)
                }
            });
            // SAFETY: the batch holds ranges detached from the registry.
            bytes += unsafe { batch.unmap_all(&self.counters) };
            if !more {
                return bytes;
            }
        }
    }

    /// A snapshot of the figures.
    pub fn stats(&self) -> LargeStats {
        let mut s = self.locked(|s| s.figures());
        self.counters.fill(&mut s);
        s
    }

    /// Takes the lock before `fork` (see `global::fork`).
    pub(crate) fn fork_prepare(&self) {
        self.state.raw().lock();
    }

    /// Releases it in the parent.
    pub(crate) fn fork_parent(&self) {
        self.state.raw().unlock();
    }

    /// Resets it in the child, whose other threads are gone.
    pub(crate) fn fork_child(&self) {
        self.state.raw().reset_in_child();
    }
}

impl Drop for LargeObjectAllocator {
    /// Unmaps the cache and the registry. Live blocks stay mapped (leaked), so
    /// pointers to them stay valid.
    fn drop(&mut self) {
        self.purge();
        // SAFETY: `&mut self`: no other reference to the state exists, and the
        // registry is not used after this.
        unsafe { self.state.lock().reg.release() };
    }
}

/// Whether `a` discards contents.
fn discards(a: Advice) -> bool {
    matches!(a, Advice::DontNeed | Advice::Free)
}

fn advice_name(a: Advice) -> &'static str {
    match a {
        Advice::Normal => "Normal",
        Advice::Sequential => "Sequential",
        Advice::Random => "Random",
        Advice::WillNeed => "WillNeed",
        Advice::DontNeed => "DontNeed",
        Advice::Free => "Free",
        Advice::HugePage => "HugePage",
        Advice::NoHugePage => "NoHugePage",
    }
}

// SAFETY: blocks are distinct mappings (or disjoint parts of them) of at least
// `layout.size()` bytes aligned to `layout.align()`, or null; each block is
// registered until freed, so no two live blocks overlap.
unsafe impl GlobalAlloc for LargeObjectAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.try_alloc(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.try_alloc_zeroed(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded GlobalAlloc contract.
        unsafe { LargeObjectAllocator::dealloc(self, ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded GlobalAlloc contract.
        unsafe { self.try_realloc(ptr, layout, new_size) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}
