//! `MemoryContext`: a bump allocator in a tree of contexts with limits, reset,
//! checkpoints and drop registration — PostgreSQL's MemoryContext with bumpalo's
//! fast path.

use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use std::borrow::Cow;

use super::builder::ContextBuilder;
use super::chunk::{self, CHUNK_ALIGN, ChunkHeader, HEADER};
use super::drops::DropNode;
use super::owned::ParentLink;
use super::registry;
use super::stats::ContextStats;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::{Error, Result};

/// First chunk size (the seed's 64 KiB).
pub const DEFAULT_INITIAL_CHUNK: usize = 64 << 10;
/// Largest chunk size reached by doubling (the seed's 64 MiB).
pub const DEFAULT_MAX_CHUNK: usize = 64 << 20;

/// Empty position: any request fails the fast-path bounds check.
const NO_PTR: usize = 0;
const NO_START: usize = usize::MAX;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The state of one context, boxed so its address is stable (the registry,
/// children and checkpoints refer to it).
///
/// Invariants: `ptr`/`start` describe the free space `[start, ptr)` of `current`
/// (or are `NO_PTR`/`NO_START` when there is no current chunk); chunks form a
/// chain through `prev` from `current`; `spare` is an empty chunk or null.
/// Fields in `Cell`s are touched only by the owning handle; atomic fields are
/// written by the owner (relaxed stores) and read by the registry from any thread,
/// except `charged`, which descendants also update (relaxed read-modify-writes:
/// it is a counter that publishes no other memory).
#[repr(C)] // hot fields first, on one cache line
pub(crate) struct Inner {
    // Hot: the fast path reads these two and `limited`.
    ptr: AtomicUsize,
    start: Cell<usize>,
    limited: bool,
    current: Cell<*mut ChunkHeader>,
    next_chunk: Cell<usize>,
    max_chunk: usize,
    chunk_seq: Cell<u64>,
    epoch: Cell<u64>,
    pub(super) drops: Cell<*mut DropNode>,
    pub(super) next_drop_id: Cell<u64>,
    own_charged: Cell<usize>,
    // Shared figures.
    pub(crate) id: u64,
    pub(crate) name: Cow<'static, str>,
    pub(crate) parent: *const Inner,
    /// Highest ancestor (or self) that has a limit; charges stop there.
    charge_top: *const Inner,
    pub(crate) limit: usize,
    pub(crate) charged: AtomicUsize,
    retired_used: AtomicUsize,
    cur_end: AtomicUsize,
    pub(crate) reserved: AtomicUsize,
    pub(crate) peak: AtomicUsize,
    pub(crate) chunks: AtomicUsize,
    pub(crate) children: AtomicUsize,
    spare: AtomicPtr<ChunkHeader>,
    // Registry links (guarded by the registry lock).
    pub(crate) reg_next: Cell<*const Inner>,
    pub(crate) reg_prev: Cell<*const Inner>,
}

impl Inner {
    /// Bytes handed out by this context itself (alignment padding included).
    pub(crate) fn used(&self) -> usize {
        // Relaxed: a racy statistic; clamped so a torn read cannot underflow.
        let end = self.cur_end.load(Ordering::Relaxed);
        let ptr = self.ptr.load(Ordering::Relaxed);
        let live = if ptr == NO_PTR {
            0
        } else {
            end.saturating_sub(ptr)
        };
        self.retired_used.load(Ordering::Relaxed) + live
    }

    fn note_peak(&self) {
        // Relaxed: statistics written by the owner.
        let u = self.used();
        if u > self.peak.load(Ordering::Relaxed) {
            self.peak.store(u, Ordering::Relaxed);
        }
    }

    /// Frees the spare chunk if there is one; returns its size.
    pub(crate) fn release_spare(&self) -> usize {
        // Acquire: we take ownership of a chunk the owner published with a Release swap.
        let s = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        if s.is_null() {
            return 0;
        }
        // SAFETY: the swap made us the only owner of this empty chunk.
        unsafe {
            let size = (*s).size;
            chunk::free_chunk(s);
            // Relaxed: statistics.
            self.reserved.fetch_sub(size, Ordering::Relaxed);
            self.chunks.fetch_sub(1, Ordering::Relaxed);
            size
        }
    }
}

/// A savepoint of a [`MemoryContext`], for [`MemoryContext::rewind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    ctx: u64,
    epoch: u64,
    chunk_seq: u64,
    ptr: usize,
    retired_used: usize,
    drop_watermark: u64,
    own_charged: usize,
}

/// A memory context: bump allocation in chunks, in a tree of contexts.
///
/// - Allocation bumps downward through the current chunk; a full chunk is
///   followed by one twice its size (64 KiB → 64 MiB by default); a request larger
///   than the chunk size gets a chunk of its own.
/// - `child(name, limit)` makes a context whose allocations also count towards
///   this one's limit. A child borrows its parent, so it cannot outlive it, and
///   `reset` (which takes `&mut self`) can only run once all children and all
///   allocations are gone: in Rust's terms, reset frees everything and deletes the
///   children, as in PostgreSQL. For a tree that outlives a borrow (a
///   session's context kept across requests), see
///   [`OwnedContext`](super::OwnedContext).
/// - Limits count the bytes requested by the whole subtree and are checked on
///   every allocation (not only when a chunk is taken).
/// - `MemoryContext` is `Send` but not `Sync`; see [`SharedContext`](super::SharedContext).
///
/// ```
/// use rustydb_memory::MemoryContext;
///
/// let mut session = MemoryContext::root("session");
/// {
///     let query = session.child("query", Some(1 << 20));
///     let row = query.alloc_slice_copy(&[1u32, 2, 3]);
///     row[0] = 7;
///     assert_eq!(row, &[7, 2, 3]);
///     assert!(query.try_alloc_layout(std::alloc::Layout::new::<[u8; 2 << 20]>()).is_err());
/// }
/// session.reset();
/// ```
pub struct MemoryContext<'p> {
    inner: NonNull<Inner>,
    _parent: PhantomData<&'p ()>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the handle exclusively owns its `Inner`, chunks and registered values
// (`alloc_with_drop` requires `T: Send`); what other threads reach through the
// registry, children or the parent link are atomic fields only.
unsafe impl Send for MemoryContext<'_> {}

impl core::fmt::Debug for MemoryContext<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.stats();
        f.debug_struct("MemoryContext")
            .field("name", &self.name())
            .field("used", &s.used)
            .field("reserved", &s.reserved)
            .field("limit", &s.limit)
            .finish()
    }
}

/// A child of the context `parent` points at, with a lifetime the caller
/// vouches for (see `MemoryContext::child` and `MemoryContext::child_of`).
pub(super) fn new_child<'p>(
    parent: &Inner,
    name: Cow<'static, str>,
    limit: Option<usize>,
) -> MemoryContext<'p> {
    let b = ContextBuilder {
        name,
        limit,
        initial_chunk: DEFAULT_INITIAL_CHUNK.min(parent.max_chunk),
        max_chunk: parent.max_chunk,
    };
    MemoryContext::new_inner(b, parent)
}

impl MemoryContext<'static> {
    /// A root context with the default chunk sizes and no limit.
    pub fn root(name: impl Into<Cow<'static, str>>) -> Self {
        Self::builder(name).build()
    }

    /// A builder for a root context.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> ContextBuilder {
        ContextBuilder {
            name: name.into(),
            limit: None,
            initial_chunk: DEFAULT_INITIAL_CHUNK,
            max_chunk: DEFAULT_MAX_CHUNK,
        }
    }
}

// Each allocation hands out fresh memory disjoint from every other live one, so
// `&self -> &mut T` is sound here, as in bumpalo.
#[allow(clippy::mut_from_ref)]
impl<'p> MemoryContext<'p> {
    pub(super) fn new_inner(b: ContextBuilder, parent: *const Inner) -> MemoryContext<'p> {
        let limit = b.limit.unwrap_or(usize::MAX);
        let parent_top = if parent.is_null() {
            ptr::null()
        } else {
            // SAFETY: `parent` is a live context that outlives the child.
            unsafe { (*parent).charge_top }
        };
        let charge_top = if !parent_top.is_null() {
            parent_top
        } else if limit != usize::MAX {
            ptr::null::<Inner>() // patched to self below
        } else {
            ptr::null()
        };
        let limited = limit != usize::MAX || !parent_top.is_null();
        let inner = Box::new(Inner {
            ptr: AtomicUsize::new(NO_PTR),
            start: Cell::new(NO_START),
            limited,
            current: Cell::new(ptr::null_mut()),
            next_chunk: Cell::new(b.initial_chunk.min(b.max_chunk)),
            max_chunk: b.max_chunk,
            chunk_seq: Cell::new(0),
            epoch: Cell::new(0),
            drops: Cell::new(ptr::null_mut()),
            next_drop_id: Cell::new(0),
            own_charged: Cell::new(0),
            // Relaxed: a unique id; no ordering needed.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: b.name,
            parent,
            charge_top,
            limit,
            charged: AtomicUsize::new(0),
            retired_used: AtomicUsize::new(0),
            cur_end: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
            children: AtomicUsize::new(0),
            spare: AtomicPtr::new(ptr::null_mut()),
            reg_next: Cell::new(ptr::null()),
            reg_prev: Cell::new(ptr::null()),
        });
        let raw = Box::into_raw(inner);
        // SAFETY: `raw` is our fresh box; patch `charge_top` to point at ourselves
        // when we are the top of the limited chain; then register it (stable address).
        unsafe {
            if limited && parent_top.is_null() {
                (*raw).charge_top = raw;
            }
            if !parent.is_null() {
                // Relaxed: a statistic.
                (*parent).children.fetch_add(1, Ordering::Relaxed);
            }
            registry::register(&*raw);
        }
        MemoryContext {
            inner: NonNull::new(raw).expect("Box is non-null"),
            _parent: PhantomData,
            _not_sync: PhantomData,
        }
    }

    #[inline(always)]
    pub(super) fn inner(&self) -> &Inner {
        // SAFETY: `inner` is our live box for as long as the handle exists.
        unsafe { self.inner.as_ref() }
    }

    /// A child context; `limit` (bytes, for its whole subtree) if given. The child
    /// inherits this context's chunk sizes. It borrows this context; for a child
    /// that owns a share of its parent instead, see
    /// [`OwnedContext`](super::OwnedContext).
    pub fn child(
        &self,
        name: impl Into<Cow<'static, str>>,
        limit: Option<usize>,
    ) -> MemoryContext<'_> {
        new_child(self.inner(), name.into(), limit)
    }

    /// A link to this context's shared state, from which children that do not
    /// borrow the handle can be made (see `OwnedContext::child`).
    pub(crate) fn link(&self) -> ParentLink {
        ParentLink(self.inner)
    }

    /// Live direct children (borrowed or owned).
    pub(crate) fn live_children(&self) -> usize {
        // Relaxed: a count that publishes no memory (a child touches only the
        // parent's atomic counters, never its chunks).
        self.inner().children.load(Ordering::Relaxed)
    }

    /// The context's name.
    pub fn name(&self) -> &str {
        &self.inner().name
    }

    /// The context's unique id.
    pub fn id(&self) -> u64 {
        self.inner().id
    }

    /// This context's figures.
    pub fn stats(&self) -> ContextStats {
        ContextStats::of(self.inner())
    }

    /// Bytes handed out by this context itself.
    pub fn used(&self) -> usize {
        self.inner().used()
    }

    /// Allocates room for `layout`; `Err(LimitExceeded)` if a limit in the chain
    /// would be passed, `Err(OutOfMemory)` if no chunk can be had.
    #[inline(always)]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>> {
        match self.bump(layout) {
            Some(p) => Ok(p),
            None => self.alloc_slow(layout),
        }
    }

    /// The fast path: a bump inside the current chunk of an unlimited context.
    #[inline(always)]
    fn bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        let me = self.inner();
        // Relaxed: only this thread writes `ptr` (see `Inner`).
        let ptr = me.ptr.load(Ordering::Relaxed);
        let p = ptr.checked_sub(layout.size())? & !(layout.align() - 1);
        if p >= me.start.get() && !me.limited {
            me.ptr.store(p, Ordering::Relaxed);
            // SAFETY: `p >= start > 0`.
            return Some(unsafe { NonNull::new_unchecked(p as *mut u8) });
        }
        None
    }

    /// Allocates room for `layout`.
    ///
    /// # Panics
    /// If a limit would be exceeded or memory is refused; see [`try_alloc_layout`](Self::try_alloc_layout).
    #[inline(always)]
    pub fn alloc_layout(&self, layout: Layout) -> NonNull<u8> {
        match self.bump(layout) {
            Some(p) => p,
            None => self.alloc_slow_or_panic(layout),
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow_or_panic(&self, layout: Layout) -> NonNull<u8> {
        match self.alloc_slow(layout) {
            Ok(p) => p,
            Err(e) => alloc_failed(e),
        }
    }

    /// Moves `value` into the context.
    #[inline(always)]
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T> {
        let p = self.try_alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh, aligned, exclusively ours for the context's borrow.
        unsafe {
            p.as_ptr().write(value);
            Ok(&mut *p.as_ptr())
        }
    }

    /// Moves `value` into the context.
    ///
    /// # Panics
    /// As [`alloc_layout`](Self::alloc_layout).
    #[inline(always)]
    pub fn alloc<T>(&self, value: T) -> &mut T {
        let p = self.alloc_layout(Layout::new::<T>()).cast::<T>();
        // SAFETY: fresh, aligned, exclusively ours for the context's borrow.
        unsafe {
            p.as_ptr().write(value);
            &mut *p.as_ptr()
        }
    }

    /// Copies `src` into the context.
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T]> {
        let layout = Layout::for_value(src);
        let p = self.try_alloc_layout(layout)?.cast::<T>();
        // SAFETY: room for `src.len()` values of T, aligned; the regions are distinct.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len());
            Ok(core::slice::from_raw_parts_mut(p.as_ptr(), src.len()))
        }
    }

    /// Copies `src` into the context.
    ///
    /// # Panics
    /// As [`alloc_layout`](Self::alloc_layout).
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        match self.try_alloc_slice_copy(src) {
            Ok(r) => r,
            Err(e) => alloc_failed(e),
        }
    }

    /// Copies `s` into the context.
    pub fn try_alloc_str(&self, s: &str) -> Result<&mut str> {
        let b = self.try_alloc_slice_copy(s.as_bytes())?;
        // SAFETY: a byte-for-byte copy of valid UTF-8.
        Ok(unsafe { core::str::from_utf8_unchecked_mut(b) })
    }

    /// Copies `s` into the context.
    ///
    /// # Panics
    /// As [`alloc_layout`](Self::alloc_layout).
    pub fn alloc_str(&self, s: &str) -> &mut str {
        match self.try_alloc_str(s) {
            Ok(r) => r,
            Err(e) => alloc_failed(e),
        }
    }

    /// A savepoint to [`rewind`](Self::rewind) to.
    pub fn checkpoint(&self) -> Checkpoint {
        let me = self.inner();
        let cur = me.current.get();
        Checkpoint {
            ctx: me.id,
            epoch: me.epoch.get(),
            chunk_seq: if cur.is_null() {
                0
            } else {
                // SAFETY: `cur` is our live current chunk.
                unsafe { (*cur).seq }
            },
            // Relaxed: own field.
            ptr: me.ptr.load(Ordering::Relaxed),
            retired_used: me.retired_used.load(Ordering::Relaxed),
            drop_watermark: me.next_drop_id.get(),
            own_charged: me.own_charged.get(),
        }
    }

    /// Rolls the context back to `cp`: everything allocated since is freed (its
    /// registered drops run, newest first), and later chunks are released.
    /// `Err(InvalidCheckpoint)` if `cp` belongs to another context or to a state
    /// that no longer exists (before a reset, or past an earlier rewind).
    pub fn rewind(&mut self, cp: &Checkpoint) -> Result<()> {
        let me = self.inner();
        if cp.ctx != me.id || cp.epoch != me.epoch.get() {
            return Err(Error::InvalidCheckpoint { context: me.id });
        }
        // Find the checkpoint's chunk in the chain.
        let mut target = me.current.get();
        // SAFETY: the chain holds our live chunks.
        unsafe {
            while !target.is_null() && (*target).seq > cp.chunk_seq {
                target = (*target).prev;
            }
            let found = if cp.chunk_seq == 0 {
                target.is_null()
            } else {
                !target.is_null() && (*target).seq == cp.chunk_seq
            };
            // Relaxed: own field.
            let same_chunk_behind =
                ptr::eq(target, me.current.get()) && cp.ptr < me.ptr.load(Ordering::Relaxed);
            if !found || same_chunk_behind {
                return Err(Error::InvalidCheckpoint { context: me.id });
            }
        }
        me.note_peak();
        self.run_drops(cp.drop_watermark);
        let me = self.inner();
        // SAFETY: chunks newer than `target` hold only allocations made after the
        // checkpoint, which `&mut self` proves are no longer borrowed.
        let freed = unsafe { chunk::free_chain(me.current.get(), target) };
        self.count_freed(freed);
        me.current.set(target);
        if target.is_null() {
            me.ptr.store(NO_PTR, Ordering::Relaxed);
            me.start.set(NO_START);
            me.cur_end.store(0, Ordering::Relaxed);
        } else {
            // Relaxed: own fields.
            me.ptr.store(cp.ptr, Ordering::Relaxed);
            me.start.set(ChunkHeader::data_start(target));
            // SAFETY: `target` is live.
            me.cur_end
                .store(unsafe { ChunkHeader::data_end(target) }, Ordering::Relaxed);
        }
        me.retired_used.store(cp.retired_used, Ordering::Relaxed);
        let now = me.own_charged.get();
        if now > cp.own_charged {
            self.uncharge(now - cp.own_charged);
        }
        Ok(())
    }

    /// Frees everything allocated in the context, runs registered drops (newest
    /// first), and keeps one chunk as a spare for reuse. Children and allocations
    /// are already gone: `&mut self` proves it.
    pub fn reset(&mut self) {
        let me = self.inner();
        me.note_peak();
        self.run_drops(0);
        let me = self.inner();
        let cur = me.current.get();
        if !cur.is_null() {
            // SAFETY: `&mut self`: nothing in the chunks is borrowed. Keep the
            // current (largest) chunk as the spare, free the rest.
            unsafe {
                let older = (*cur).prev;
                let freed = chunk::free_chain(older, ptr::null_mut());
                self.count_freed(freed);
                (*cur).prev = ptr::null_mut();
                // The previous spare, if any, is freed: keep at most one.
                // Relaxed: a hint; `release_spare` takes it with an atomic swap.
                if !me.spare.load(Ordering::Relaxed).is_null() {
                    me.release_spare();
                }
                // Release: publishes the chunk header to a thread that takes the spare.
                me.spare.store(cur, Ordering::Release);
            }
        }
        me.current.set(ptr::null_mut());
        // Relaxed: own fields.
        me.ptr.store(NO_PTR, Ordering::Relaxed);
        me.start.set(NO_START);
        me.cur_end.store(0, Ordering::Relaxed);
        me.retired_used.store(0, Ordering::Relaxed);
        me.epoch.set(me.epoch.get() + 1);
        let charged = me.own_charged.get();
        if charged != 0 {
            self.uncharge(charged);
        }
    }

    /// Frees the spare chunk kept by `reset`; returns the bytes released.
    pub fn release_spare(&self) -> usize {
        self.inner().release_spare()
    }

    fn count_freed(&self, (bytes, n): (usize, usize)) {
        let me = self.inner();
        // Relaxed: statistics written by the owner.
        me.reserved.fetch_sub(bytes, Ordering::Relaxed);
        me.chunks.fetch_sub(n, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<NonNull<u8>> {
        let me = self.inner();
        if me.limited {
            self.charge(layout.size())?;
        }
        // Relaxed: own field.
        let ptr = me.ptr.load(Ordering::Relaxed);
        if let Some(p) = ptr.checked_sub(layout.size()) {
            let p = p & !(layout.align() - 1);
            if p >= me.start.get() {
                me.ptr.store(p, Ordering::Relaxed);
                // SAFETY: `p >= start > 0`.
                return Ok(unsafe { NonNull::new_unchecked(p as *mut u8) });
            }
        }
        match self.refill(layout) {
            Some(p) => Ok(p),
            None => {
                if me.limited {
                    self.uncharge(layout.size());
                }
                Err(Error::OutOfMemory {
                    requested: layout.size(),
                })
            }
        }
    }

    /// Takes a new current chunk big enough for `layout` and allocates from it.
    fn refill(&self, layout: Layout) -> Option<NonNull<u8>> {
        let me = self.inner();
        let need = layout
            .size()
            .checked_add(layout.align().max(CHUNK_ALIGN))?
            .checked_add(HEADER)?;
        // Reuse the spare if it is big enough.
        // Acquire: pairs with the Release store in `reset`.
        let spare = me.spare.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: the swap made the spare ours; it is an empty live chunk.
        let chunk = if !spare.is_null() && unsafe { (*spare).size } >= need {
            let seq = me.chunk_seq.get() + 1;
            me.chunk_seq.set(seq);
            // SAFETY: as above.
            unsafe {
                (*spare).prev = me.current.get();
                (*spare).seq = seq;
            }
            spare
        } else {
            if !spare.is_null() {
                me.spare.store(spare, Ordering::Release);
            }
            let size = if need > me.next_chunk.get() {
                (need + CHUNK_ALIGN - 1) & !(CHUNK_ALIGN - 1)
            } else {
                let s = me.next_chunk.get();
                me.next_chunk.set((s * 2).min(me.max_chunk));
                s
            };
            let seq = me.chunk_seq.get() + 1;
            let c = chunk::alloc_chunk(size, me.current.get(), seq)?.as_ptr();
            me.chunk_seq.set(seq);
            // Relaxed: statistics.
            me.reserved.fetch_add(size, Ordering::Relaxed);
            me.chunks.fetch_add(1, Ordering::Relaxed);
            c
        };
        // Retire the old current chunk.
        me.note_peak();
        // Relaxed: own fields.
        let old_ptr = me.ptr.load(Ordering::Relaxed);
        if old_ptr != NO_PTR {
            let used = me.cur_end.load(Ordering::Relaxed) - old_ptr;
            me.retired_used.fetch_add(used, Ordering::Relaxed);
        }
        me.current.set(chunk);
        let start = ChunkHeader::data_start(chunk);
        // SAFETY: `chunk` is live.
        let end = unsafe { ChunkHeader::data_end(chunk) };
        me.start.set(start);
        me.cur_end.store(end, Ordering::Relaxed);
        let p = (end - layout.size()) & !(layout.align() - 1);
        debug_assert!(p >= start);
        me.ptr.store(p, Ordering::Relaxed);
        NonNull::new(p as *mut u8)
    }

    /// Counts `n` requested bytes against every limit from here to the top of
    /// the limited chain; rolls back and fails at the first limit passed.
    fn charge(&self, n: usize) -> Result<()> {
        let me = self.inner();
        let mut a: *const Inner = me;
        loop {
            // SAFETY: `a` walks live ancestors (they outlive us).
            let node = unsafe { &*a };
            // Relaxed: a counter that publishes no memory.
            let prev = node.charged.fetch_add(n, Ordering::Relaxed);
            if prev.saturating_add(n) > node.limit {
                // Undo from `me` up to and including `node`.
                let mut b: *const Inner = me;
                loop {
                    // SAFETY: as above.
                    let u = unsafe { &*b };
                    u.charged.fetch_sub(n, Ordering::Relaxed);
                    if ptr::eq(b, a) {
                        break;
                    }
                    b = u.parent;
                }
                return Err(Error::LimitExceeded {
                    context: node.name.to_string(),
                    limit: node.limit,
                    requested: n,
                });
            }
            if ptr::eq(a, me.charge_top) || node.parent.is_null() {
                break;
            }
            a = node.parent;
        }
        me.own_charged.set(me.own_charged.get() + n);
        Ok(())
    }

    fn uncharge(&self, n: usize) {
        let me = self.inner();
        if !me.limited {
            return;
        }
        let mut a: *const Inner = me;
        loop {
            // SAFETY: `a` walks live ancestors.
            let node = unsafe { &*a };
            // Relaxed: as in `charge`.
            node.charged.fetch_sub(n, Ordering::Relaxed);
            if ptr::eq(a, me.charge_top) || node.parent.is_null() {
                break;
            }
            a = node.parent;
        }
        me.own_charged.set(me.own_charged.get() - n);
    }

    /// Gives back the most recent allocation if `p` is it (for `Allocator::deallocate`).
    pub(crate) fn dealloc_last(&self, p: NonNull<u8>, layout: Layout) {
        let me = self.inner();
        // Relaxed: own field.
        if p.as_ptr() as usize == me.ptr.load(Ordering::Relaxed) {
            me.ptr
                .store(p.as_ptr() as usize + layout.size(), Ordering::Relaxed);
            if me.limited {
                self.uncharge(layout.size().min(me.own_charged.get()));
            }
        }
    }
}

impl Drop for MemoryContext<'_> {
    fn drop(&mut self) {
        self.inner().note_peak();
        self.run_drops(0);
        let me = self.inner();
        // SAFETY: unregister first so no registry walker sees a dying context; then
        // nothing else refers to our chunks (`&mut self`), and the box is ours.
        unsafe {
            registry::unregister(me);
            let freed = chunk::free_chain(me.current.get(), ptr::null_mut());
            self.count_freed(freed);
            me.release_spare();
            let charged = me.own_charged.get();
            if charged != 0 {
                self.uncharge(charged);
            }
            if !me.parent.is_null() {
                // Relaxed: a statistic.
                (*me.parent).children.fetch_sub(1, Ordering::Relaxed);
            }
            drop(Box::from_raw(self.inner.as_ptr()));
        }
    }
}

#[cold]
#[inline(never)]
pub(super) fn alloc_failed(e: Error) -> ! {
    panic!("memory context allocation failed: {e}")
}
