//! The allocation path of `DebugAlloc`: one small inlined function per level
//! below Tracking (a header and per-thread counters; the Sampled level adds a
//! subtraction), the rest `#[cold]`.
//!
//! Frees are driven by the block's header, not by the current level, so a
//! block is always freed the way it was allocated. A header that is not a
//! live block of ours is diagnosed before anything else is touched.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use super::alloc::{DebugAlloc, DebugLevel};
use super::guard_pages;
use super::header::{
    ALIVE, F_COUNTED, F_GUARDED, F_PROFILED, F_RZ, F_TRACKED, FREED, HEADER, Header, RZ_BYTE,
    TAIL_RZ, prefix, tail,
};
use super::quarantine::{self, Entry, POISON};
use super::report::{RawReport, ReportKind};
use super::sampling;
use super::stacks::{self, Regs};
use super::state::State;
use super::table::Record;
use super::threads::{self, guarded};
use super::tracking::Delayed;
use crate::sync::{AtomicU64, Ordering};
use crate::sys;

/// Frames kept for allocation sites at Full (the sites leak reports group by).
const ALLOC_FRAMES: usize = 12;
/// Frames kept for free sites (shown in double-free and use-after-free reports).
const FREE_FRAMES: usize = 6;
/// Frames kept for Poisson-sampled allocations (profiles).
const SAMPLE_FRAMES: usize = stacks::MAX_FRAMES;
/// Header flag: the allocation's stack was captured (Full), so the free's is too.
const F_STACK: u8 = 32;

/// The allocation epoch: `mark()` advances it, allocations record it. Read
/// (not written) on the allocation path.
pub(crate) static EPOCH: AtomicU64 = AtomicU64::new(1);

/// What a free needs to know about a block.
#[derive(Clone, Copy)]
struct Block {
    user: usize,
    size: usize,
    flags: u8,
    component: u16,
    owner: usize,
}

impl<A: GlobalAlloc> DebugAlloc<A> {
    /// # Safety
    /// `layout` has a non-zero size (the `GlobalAlloc::alloc` contract).
    #[inline(always)]
    pub(crate) unsafe fn alloc_impl(
        &self,
        layout: Layout,
        zeroed: bool,
        force_sample: bool,
    ) -> *mut u8 {
        let level = self.level();
        if level == DebugLevel::Off {
            // SAFETY: forwarded contract.
            return unsafe { self.block(layout, zeroed, 0, 0, 0) };
        }
        let (internal, component, slot) =
            threads::with(|t| (t.in_debug.get(), t.component.get(), t.slot()));
        let state = if internal { None } else { self.state() };
        let Some(s) = state else {
            // SAFETY: forwarded contract.
            return unsafe { self.block(layout, zeroed, 0, 0, 0) };
        };
        match level {
            DebugLevel::Counting => {
                // SAFETY: forwarded contract.
                let u = unsafe { self.block(layout, zeroed, F_COUNTED, component, slot) };
                if !u.is_null() {
                    s.counters.on_alloc(slot, component, layout.size());
                }
                u
            }
            DebugLevel::Sampled => {
                // Relaxed: a mode value.
                let rate = self.sample_bytes.load(Ordering::Relaxed);
                let sampled =
                    force_sample || threads::with(|t| sampling::take(t, layout.size(), rate));
                let flags = if sampled {
                    F_COUNTED | F_PROFILED
                } else {
                    F_COUNTED
                };
                // SAFETY: forwarded contract.
                let u = unsafe { self.block(layout, zeroed, flags, component, slot) };
                if !u.is_null() {
                    s.counters.on_alloc(slot, component, layout.size());
                    if sampled {
                        self.record_sample(s, u as usize, layout, component, rate);
                    }
                }
                u
            }
            // SAFETY: forwarded contract.
            _ => unsafe { self.alloc_tracked(s, layout, zeroed, level, component, slot) },
        }
    }

    /// Allocates the block from `inner` with room for the header (and the
    /// redzones if `flags` has them) and writes the header.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn block(
        &self,
        layout: Layout,
        zeroed: bool,
        flags: u8,
        component: u16,
        slot: usize,
    ) -> *mut u8 {
        let size = layout.size();
        let pre = prefix(flags, layout.align());
        let align = layout.align().max(16);
        // `Layout::from_size_align`'s condition: the size rounded up to the
        // alignment does not pass isize::MAX.
        let total = pre + tail(flags) + size;
        if size > isize::MAX as usize - (pre + tail(flags) + align) {
            return ptr::null_mut();
        }
        // SAFETY: `align` is a power of two (a Layout's, or 16) and `total`
        // rounded up to it stays below isize::MAX (checked above).
        let bl = unsafe { Layout::from_size_align_unchecked(total, align) };
        // SAFETY: `bl` has a non-zero size (it includes the header).
        let block = unsafe {
            if zeroed {
                self.inner.alloc_zeroed(bl)
            } else {
                self.inner.alloc(bl)
            }
        };
        if block.is_null() {
            return block;
        }
        let user = block as usize + pre;
        // SAFETY: the header slot [user-16, user) is inside the block (pre ≥ 16).
        unsafe { Header::new(user, size, slot, ALIVE, flags, component).write(user) };
        user as *mut u8
    }

    #[cold]
    #[inline(never)]
    fn record_sample(&self, s: &State, user: usize, layout: Layout, component: u16, rate: u64) {
        let regs = Regs::here();
        let stack = guarded(|| stacks::capture(&regs, SAMPLE_FRAMES));
        s.samples.insert(Record {
            addr: user,
            size: layout.size(),
            // Relaxed: a number for marks.
            seq: EPOCH.load(Ordering::Relaxed),
            time_ns: sys::coarse_now_ns(),
            alloc_stack: stack,
            thread: threads::thread_id(),
            component,
            align_log: layout.align().trailing_zeros() as u8,
            flags: F_COUNTED | F_PROFILED,
            rate: rate as u32,
            ..Record::default()
        });
    }

    /// Tracking and Full.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[cold]
    #[inline(never)]
    unsafe fn alloc_tracked(
        &self,
        s: &State,
        layout: Layout,
        zeroed: bool,
        level: DebugLevel,
        component: u16,
        slot: usize,
    ) -> *mut u8 {
        let size = layout.size();
        let mut flags = F_COUNTED | F_TRACKED;
        let mut stack = 0;
        if level == DebugLevel::Full {
            flags |= F_RZ;
            if self.stack_now() {
                let regs = Regs::here();
                stack = guarded(|| stacks::capture(&regs, ALLOC_FRAMES));
                if stack != 0 {
                    flags |= F_STACK;
                    s.samples.add_site(stack, size as f64, 1.0);
                }
            }
        }
        let guarded_user = if flags & F_RZ != 0 && self.guard_now() {
            guard_pages::alloc(size, layout.align(), HEADER, stack)
        } else {
            None
        };
        let user = match guarded_user {
            Some(u) => {
                flags |= F_GUARDED;
                if zeroed {
                    // SAFETY: the pooled block has `size` writable bytes at `u`.
                    unsafe { (u as *mut u8).write_bytes(0, size) };
                }
                // SAFETY: the pooled block has a HEADER-byte slot in front of `u`.
                unsafe { Header::new(u, size, slot, ALIVE, flags, component).write(u) };
                u
            }
            None => {
                // SAFETY: forwarded contract.
                let u = unsafe { self.block(layout, zeroed, flags, component, slot) };
                if u.is_null() {
                    return u;
                }
                let u = u as usize;
                if flags & F_RZ != 0 {
                    let pre = prefix(flags, layout.align());
                    // SAFETY: the lead redzone [u-pre, u-16) and the tail redzone
                    // [u+size, u+size+TAIL_RZ) are inside the block we own.
                    unsafe {
                        ((u - pre) as *mut u8).write_bytes(RZ_BYTE, pre - HEADER);
                        (u as *mut u8).add(size).write_bytes(RZ_BYTE, TAIL_RZ);
                    }
                }
                u
            }
        };
        s.counters.on_alloc(slot, component, size);
        s.tracker.insert(
            slot,
            Record {
                addr: user,
                size,
                // Relaxed: a number for marks.
                seq: EPOCH.load(Ordering::Relaxed),
                time_ns: sys::coarse_now_ns(),
                alloc_stack: stack,
                thread: threads::thread_id(),
                component,
                align_log: layout.align().trailing_zeros() as u8,
                flags,
                ..Record::default()
            },
        );
        user as *mut u8
    }

    /// # Safety
    /// The `GlobalAlloc::dealloc` contract: `p` was returned by this allocator
    /// with `layout` and is freed once (violations are what this function
    /// diagnoses, as far as reading the header allows).
    #[inline(always)]
    pub(crate) unsafe fn dealloc_impl(&self, p: *mut u8, layout: Layout) {
        let user = p as usize;
        if guard_pages::contains(user) {
            return self.free_guarded(user);
        }
        // SAFETY: a block of ours has its header in front; for a foreign
        // pointer that is the caller's bug we try to diagnose.
        let h = unsafe { Header::read(user) };
        if h.state() != ALIVE || !h.valid(user) {
            return self.bad_free(user, h, layout);
        }
        let b = Block {
            user,
            size: h.size(),
            flags: h.flags(),
            component: h.component(),
            owner: h.slot(),
        };
        if b.flags & !(F_COUNTED | F_PROFILED) == 0 {
            if b.flags != 0 {
                self.uncount(b);
            }
            // SAFETY: a live block of ours without redzones: its header is ours
            // to write, then it goes back to `inner` as allocated.
            unsafe {
                h.with_state(FREED).write(user);
                self.inner
                    .dealloc(block_of(b, layout.align()), block_layout(b, layout.align()));
            }
            return;
        }
        self.free_tracked(b, layout.align());
    }

    #[inline(always)]
    fn uncount(&self, b: Block) {
        if let Some(s) = self.state() {
            s.counters.on_free(threads::slot(), b.component, b.size);
            if b.flags & F_PROFILED != 0 {
                s.samples.remove(b.user);
            }
        }
    }

    /// Frees a tracked block (Tracking: delayed; Full: redzones checked,
    /// poisoned, quarantined).
    #[cold]
    #[inline(never)]
    fn free_tracked(&self, b: Block, align: usize) {
        let Some(s) = self.state() else { return };
        let me = threads::slot();
        self.uncount(b);
        if b.flags & F_RZ != 0 {
            self.check_redzones(s, b, align);
        }
        let free_stack = if b.flags & F_STACK != 0 {
            let regs = Regs::here();
            guarded(|| stacks::capture(&regs, FREE_FRAMES))
        } else {
            0
        };
        let poisoned = b.flags & F_RZ != 0;
        // SAFETY: a live block of ours: header and user bytes are ours to write.
        unsafe {
            Header::new(b.user, b.size, b.owner, FREED, b.flags, b.component).write(b.user);
            if poisoned {
                (b.user as *mut u8).write_bytes(POISON, b.size);
            }
        }
        if !poisoned {
            // Tracking: forget the record now; hold the memory back a little.
            s.tracker.remove(me, b.owner, b.user);
            let d = Delayed {
                block: block_of(b, align) as usize,
                size: block_layout(b, align).size(),
                align: align.max(16),
            };
            if let Some(d) = s.tracker.delay(me, d) {
                // SAFETY: the block came from `inner` with this layout and has
                // left the delay FIFO: nothing refers to it any more.
                unsafe { self.release_delayed(d) };
            }
            return;
        }
        // Full: keep the record (marked freed, with the free site) while the
        // block sits poisoned in quarantine.
        s.tracker.mark_freed(me, b.owner, b.user, free_stack);
        let e = Entry {
            user: b.user,
            size: b.size,
            block: block_of(b, align) as usize,
            block_size: block_layout(b, align).size(),
            block_align: align.max(16),
            poisoned,
            owner: b.owner as u8,
        };
        let mut out = [Entry::default(); 8];
        // Relaxed: a bound read racily.
        let max = self.quarantine_bytes.load(Ordering::Relaxed);
        match s.quarantine.push(e, max, &mut out) {
            Some(n) => {
                s.quarantined.fetch_add(b.size, Ordering::Relaxed);
                for e in &out[..n] {
                    self.leave_quarantine(s, e);
                }
            }
            None => self.leave_quarantine(s, &e),
        }
    }

    /// # Safety
    /// `d` is a block of `inner` (with that size and alignment) nothing refers to.
    unsafe fn release_delayed(&self, d: Delayed) {
        // SAFETY: the contract.
        unsafe {
            self.inner.dealloc(
                d.block as *mut u8,
                Layout::from_size_align_unchecked(d.size, d.align),
            )
        }
    }

    fn check_redzones(&self, s: &State, b: Block, align: usize) {
        let pre = prefix(b.flags, align);
        let block = b.user - pre;
        let alloc_stack = || s.tracker.get(b.owner, b.user).map_or(0, |r| r.alloc_stack);
        // SAFETY: both redzones lie inside the block (see `alloc_tracked`).
        let (lead, trail) = unsafe {
            (
                first_not(block as *const u8, pre - HEADER, RZ_BYTE),
                first_not((b.user + b.size) as *const u8, TAIL_RZ, RZ_BYTE),
            )
        };
        if let Some(i) = lead {
            let mut rep = RawReport::new(ReportKind::Underflow, b.user);
            rep.size = b.size;
            rep.offset = (block + i) as isize - b.user as isize;
            rep.component = b.component;
            rep.alloc_stack = alloc_stack();
            self.report(rep);
        }
        if let Some(i) = trail {
            let mut rep = RawReport::new(ReportKind::Overflow, b.user);
            rep.size = b.size;
            rep.offset = (b.size + i) as isize;
            rep.component = b.component;
            rep.alloc_stack = alloc_stack();
            self.report(rep);
        }
    }

    /// Verifies a block's poison, reports a write after free, and frees it.
    fn leave_quarantine(&self, s: &State, e: &Entry) {
        let damaged = if e.poisoned {
            // SAFETY: quarantined blocks stay allocated until here.
            unsafe { quarantine::first_unpoisoned(e.user as *const u8, e.size) }
        } else {
            None
        };
        if let Some(i) = damaged {
            let r = s.tracker.get(e.owner as usize, e.user);
            let mut rep = RawReport::new(ReportKind::WriteAfterFree, e.user);
            rep.size = e.size;
            rep.offset = i as isize;
            if let Some(r) = r {
                rep.alloc_stack = r.alloc_stack;
                rep.free_stack = r.free_stack;
                rep.component = r.component;
            }
            self.report(rep);
        }
        s.tracker.remove(threads::slot(), e.owner as usize, e.user);
        // Relaxed: a statistic.
        s.quarantined.fetch_sub(
            e.size.min(s.quarantined.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        // SAFETY: the block came from `inner` with this layout and nothing uses it.
        unsafe {
            self.inner.dealloc(
                e.block as *mut u8,
                Layout::from_size_align_unchecked(e.block_size, e.block_align),
            )
        };
    }

    /// A free whose header is not a live block of ours: a double free (header
    /// freed), our block with a damaged header (it is in a side table), or a
    /// pointer we never handed out. Reported; only a block known to be ours
    /// is freed, with what the side table knows.
    #[cold]
    #[inline(never)]
    fn bad_free(&self, user: usize, h: Header, layout: Layout) {
        let s = self.state();
        let free_stack = || {
            let regs = Regs::here();
            guarded(|| stacks::capture(&regs, FREE_FRAMES))
        };
        if h.state() == FREED && h.valid(user) {
            let mut rep = RawReport::new(ReportKind::DoubleFree, user);
            rep.size = h.size();
            rep.component = h.component();
            if let Some(r) = s.and_then(|s| s.tracker.get(h.slot(), user)) {
                rep.alloc_stack = r.alloc_stack;
                rep.free_stack = r.free_stack;
            }
            if h.flags() & (F_STACK | F_RZ) != 0 {
                rep.site_stack = free_stack();
            }
            return self.report(rep);
        }
        let found = s.and_then(|s| guarded(|| s.tracker.find(user)));
        let Some((owner, r)) = found.filter(|(_, r)| r.freed == 0) else {
            let mut rep = RawReport::new(ReportKind::InvalidFree, user);
            rep.size = layout.size();
            return self.report(rep);
        };
        let mut rep = RawReport::new(ReportKind::Underflow, user);
        rep.size = r.size;
        rep.component = r.component;
        rep.alloc_stack = r.alloc_stack;
        self.report(rep);
        // Our block: free it with what the table knows (the header is rewritten).
        let b = Block {
            user,
            size: r.size,
            flags: r.flags,
            component: r.component,
            owner,
        };
        if r.flags & F_GUARDED != 0 {
            return self.free_guarded(user);
        }
        self.free_tracked(b, layout.align());
    }

    #[cold]
    #[inline(never)]
    fn free_guarded(&self, user: usize) {
        let stack = {
            let regs = Regs::here();
            guarded(|| stacks::capture(&regs, FREE_FRAMES))
        };
        if guard_pages::is_live(user) {
            // SAFETY: a live pooled block's page is accessible, and its header
            // slot in front of `user` lies inside it (see `guard_pages::alloc`).
            let h = unsafe { Header::read(user) };
            if h.state() == ALIVE && h.valid(user) {
                let b = Block {
                    user,
                    size: h.size(),
                    flags: h.flags(),
                    component: h.component(),
                    owner: h.slot(),
                };
                self.uncount(b);
                if let Some(s) = self.state() {
                    s.tracker.remove(threads::slot(), b.owner, user);
                }
            }
            if guard_pages::free(user, stack) {
                return;
            }
        }
        let mut rep = RawReport::new(ReportKind::DoubleFree, user);
        rep.free_stack = stack;
        self.report(rep);
    }

    /// Empties the quarantine, verifying every block (writes after free are
    /// reported now), and the calling thread's delay FIFO.
    pub fn drain_quarantine(&self) {
        let Some(s) = self.state() else { return };
        let mut out = [Entry::default(); 8];
        loop {
            let n = s.quarantine.drain(&mut out);
            if n == 0 {
                break;
            }
            for e in &out[..n] {
                self.leave_quarantine(s, e);
            }
        }
        let me = threads::slot();
        while let Some(d) = s.tracker.undelay(me) {
            // SAFETY: the block came from `inner` with this layout and left the
            // delay FIFO: nothing refers to it.
            unsafe { self.release_delayed(d) };
        }
    }

    /// `realloc` without a copy where the block has no side-table entry:
    /// `inner` resizes the block (header included) and the header is
    /// rewritten. `None` when the block needs the general path.
    ///
    /// # Safety
    /// The `GlobalAlloc::realloc` contract for `user`, `layout`, `new_size`.
    #[inline(always)]
    unsafe fn realloc_plain(
        &self,
        user: usize,
        layout: Layout,
        new_size: usize,
    ) -> Option<*mut u8> {
        if guard_pages::contains(user) {
            return None;
        }
        // SAFETY: the contract: `user` is a live block of ours.
        let h = unsafe { Header::read(user) };
        let level = self.level();
        if h.state() != ALIVE
            || !h.valid(user)
            || h.flags() & !F_COUNTED != 0
            || level > DebugLevel::Sampled
        {
            return None;
        }
        let (internal, component, slot) =
            threads::with(|t| (t.in_debug.get(), t.component.get(), t.slot()));
        let state = if internal || level == DebugLevel::Off {
            None
        } else {
            self.state()
        };
        let flags = if state.is_some() { F_COUNTED } else { 0 };
        if flags != h.flags() {
            return None;
        }
        if level == DebugLevel::Sampled && state.is_some() {
            // Relaxed: a mode value.
            let rate = self.sample_bytes.load(Ordering::Relaxed);
            if threads::with(|t| sampling::take(t, new_size, rate)) {
                // The new block is sampled: allocate it as such.
                let nl = Layout::from_size_align(new_size, layout.align()).ok()?;
                // SAFETY: `nl` has the non-zero `new_size` (the contract).
                let n = unsafe { self.alloc_impl(nl, false, true) };
                if !n.is_null() {
                    // SAFETY: both blocks are live and at least this long.
                    unsafe {
                        ptr::copy_nonoverlapping(user as *const u8, n, layout.size().min(new_size));
                        self.dealloc_impl(user as *mut u8, layout);
                    }
                }
                return Some(n);
            }
        }
        let b = Block {
            user,
            size: h.size(),
            flags,
            component: h.component(),
            owner: h.slot(),
        };
        let pre = prefix(flags, layout.align());
        // SAFETY: the block came from `inner` with `block_layout`; the new size
        // is non-zero and, being `pre + new_size`, did not overflow `isize`
        // rounding for `new_size` itself (the contract) plus a small prefix.
        let block = unsafe {
            self.inner.realloc(
                block_of(b, layout.align()),
                block_layout(b, layout.align()),
                pre + new_size,
            )
        };
        if block.is_null() {
            return Some(block);
        }
        let new_user = block as usize + pre;
        // SAFETY: the header slot is inside the resized block.
        unsafe { Header::new(new_user, new_size, slot, ALIVE, flags, component).write(new_user) };
        if let Some(s) = state {
            s.counters.on_free(slot, b.component, b.size);
            s.counters.on_alloc(slot, component, new_size);
        }
        Some(new_user as *mut u8)
    }
}

// SAFETY: every block handed out is a region of at least `layout.size()` bytes
// aligned to `layout.align()` inside a distinct block of `inner` (or of the
// guard pool); `dealloc` finds the block again from the header and the same
// layout, `realloc` resizes it in `inner` or moves it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for DebugAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.alloc_impl(layout, false, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.alloc_impl(layout, true, false) }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.dealloc_impl(p, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        if let Some(n) = unsafe { self.realloc_plain(p as usize, layout, new_size) } {
            return n;
        }
        let Ok(nl) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: forwarded contract (`new_size` is non-zero).
        let n = unsafe { self.alloc_impl(nl, false, false) };
        if !n.is_null() {
            // SAFETY: both blocks are live and at least `min` bytes long; then the
            // old block is freed once, with its layout.
            unsafe {
                ptr::copy_nonoverlapping(p, n, layout.size().min(new_size));
                self.dealloc_impl(p, layout);
            }
        }
        n
    }
}

/// The start of block `b` in `inner`.
fn block_of(b: Block, align: usize) -> *mut u8 {
    (b.user - prefix(b.flags, align)) as *mut u8
}

/// The layout block `b` was allocated from `inner` with.
fn block_layout(b: Block, align: usize) -> Layout {
    let size = prefix(b.flags, align) + b.size + tail(b.flags);
    // SAFETY: the same size and alignment were accepted by
    // `Layout::from_size_align` when the block was allocated.
    unsafe { Layout::from_size_align_unchecked(size, align.max(16)) }
}

/// Offset of the first byte in `[p, p+len)` that differs from `byte`.
///
/// # Safety
/// The range is readable.
unsafe fn first_not(p: *const u8, len: usize, byte: u8) -> Option<usize> {
    // SAFETY: readable (caller).
    let s = unsafe { core::slice::from_raw_parts(p, len) };
    s.iter().position(|&b| b != byte)
}
