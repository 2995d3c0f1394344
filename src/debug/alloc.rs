//! `DebugAlloc<A>`: the allocation path. Every block carries a 16-byte header
//! just before the user pointer (whatever the level, so levels can change at run
//! time and every block is still freed the way it was allocated):
//!
//! ```text
//! [lead redzone (Full)] [header: size | state flags component check] [user data] [tail redzone (Full)]
//! ```
//!
//! From Tracking up, blocks are also in the side table, which is consulted
//! *before* the header is read, so a double or invalid free of a tracked block is
//! found without touching the pointer's memory — and never reaches the inner
//! allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr;

use super::components::{self, Counters, MAX_COMPONENTS};
use super::guard_pages;
use super::quarantine::{self, Entry, POISON, Quarantine};
use super::report::{RawReport, ReportKind, Reports};
use super::stacks;
use super::table::{Record, Table};
use crate::sync::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sys;

/// How much the debugger does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DebugLevel {
    /// Pass-through (the header is still written).
    Off = 0,
    /// Per-component counters.
    Counting = 1,
    /// Counters and a record per live block: leaks, double and invalid frees.
    Tracking = 2,
    /// Tracking plus backtraces, redzones, quarantine and sampled guard pages.
    Full = 3,
}

impl DebugLevel {
    fn from_u8(v: u8) -> DebugLevel {
        match v {
            1 => DebugLevel::Counting,
            2 => DebugLevel::Tracking,
            3 => DebugLevel::Full,
            _ => DebugLevel::Off,
        }
    }

    /// Parses `off`, `counting`, `tracking`, `full` (or 0–3).
    pub fn parse(s: &[u8]) -> Option<DebugLevel> {
        Some(match s {
            b"off" | b"0" => DebugLevel::Off,
            b"counting" | b"1" => DebugLevel::Counting,
            b"tracking" | b"2" => DebugLevel::Tracking,
            b"full" | b"3" => DebugLevel::Full,
            _ => return None,
        })
    }
}

/// What to do after a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Print the report, record it, and go on (the faulty free is not performed).
    Continue,
    /// Print the report and abort the process.
    Abort,
}

const HEADER: usize = 16;
const LEAD_RZ: usize = 16;
const TAIL_RZ: usize = 16;
const RZ_BYTE: u8 = 0xFA;
const ALIVE: u8 = 0xA1;
const FREED: u8 = 0xF7;
const F_COUNTED: u8 = 1;
const F_TRACKED: u8 = 2;
const F_RZ: u8 = 4;
const F_SAMPLED: u8 = 8;
const LEVEL_UNSET: u8 = 255;
/// Frames kept for allocation sites (the sites leak reports group by).
const ALLOC_FRAMES: usize = 12;
/// Frames kept for free sites (shown in double-free and use-after-free reports).
const FREE_FRAMES: usize = 6;
/// Default quarantine bound.
pub const DEFAULT_QUARANTINE_BYTES: usize = 16 << 20;
/// Default sampling: one in this many small allocations gets guard pages (at Full).
pub const DEFAULT_SAMPLE_EVERY: u32 = 1000;

thread_local! {
    static IN_DEBUG: Cell<bool> = const { Cell::new(false) };
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
    static SAMPLE_LEFT: Cell<u32> = const { Cell::new(0) };
    static STACK_LEFT: Cell<u32> = const { Cell::new(0) };
}
static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);
pub(crate) static SEQ: AtomicU64 = AtomicU64::new(1);

/// A small id for the calling thread (0 during TLS teardown).
pub(crate) fn thread_id() -> u32 {
    THREAD_ID
        .try_with(|t| {
            if t.get() == 0 {
                // Relaxed: a unique number.
                t.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
        .unwrap_or(0)
}

/// Runs `f` with the reentrancy guard set: allocations made meanwhile by this
/// thread (backtrace capture, report formatting) are passed through untracked.
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> R {
    let prev = IN_DEBUG.try_with(|g| g.replace(true)).unwrap_or(true);
    let r = f();
    let _ = IN_DEBUG.try_with(|g| g.set(prev));
    r
}

fn reentrant() -> bool {
    IN_DEBUG.try_with(|g| g.get()).unwrap_or(true)
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    size: u64,
    /// state | flags << 8 | component << 16 | check << 32
    meta: u64,
}

fn check(user: usize, size: usize, flags: u8, component: u16) -> u32 {
    let h = (user as u64 ^ size as u64 ^ ((flags as u64) << 40) ^ ((component as u64) << 48))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 32) as u32
}

impl Header {
    fn new(user: usize, size: usize, state: u8, flags: u8, component: u16) -> Header {
        let c = check(user, size, flags, component);
        Header {
            size: size as u64,
            meta: state as u64 | (flags as u64) << 8 | (component as u64) << 16 | (c as u64) << 32,
        }
    }
    fn state(&self) -> u8 {
        self.meta as u8
    }
    fn flags(&self) -> u8 {
        (self.meta >> 8) as u8
    }
    fn component(&self) -> u16 {
        (self.meta >> 16) as u16
    }
    fn valid(&self, user: usize) -> bool {
        (self.meta >> 32) as u32 == check(user, self.size as usize, self.flags(), self.component())
    }
}

/// Bytes in front of the user pointer.
fn prefix(flags: u8, align: usize) -> usize {
    let a = align.max(16);
    let lead = if flags & F_RZ != 0 { LEAD_RZ } else { 0 };
    (HEADER + lead).next_multiple_of(a)
}

fn tail(flags: u8) -> usize {
    if flags & F_RZ != 0 { TAIL_RZ } else { 0 }
}

/// Per-instance state, in memory mapped by the debugger on first use.
pub(crate) struct State {
    pub(crate) table: Table,
    pub(crate) counters: [Counters; MAX_COMPONENTS],
    pub(crate) quarantine: Quarantine,
    pub(crate) reports: Reports,
    pub(crate) quarantined: AtomicUsize,
}

/// A debugging allocator around any `GlobalAlloc`: counts per component, tracks
/// live blocks (leaks), catches double and invalid frees, overflows, writes after
/// free and — on sampled blocks — any access after free, with backtraces.
///
/// ```
/// use rustydb_memory::debug::{DebugAlloc, DebugLevel, LeakScope};
/// use std::alloc::{GlobalAlloc, Layout, System};
///
/// static DBG: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Tracking);
/// let mark = DBG.mark();
/// let l = Layout::from_size_align(40, 8).unwrap();
/// // SAFETY: non-zero size; freed below with the same layout.
/// let p = unsafe { DBG.alloc(l) };
/// let leaks = DBG.leaks_since(mark, LeakScope::CurrentThread);
/// assert_eq!((leaks.count, leaks.bytes), (1, 40));
/// // SAFETY: `p` is live, from DBG with `l`.
/// unsafe { DBG.dealloc(p, l) };
/// assert_eq!(DBG.leaks_since(mark, LeakScope::CurrentThread).count, 0);
/// ```
pub struct DebugAlloc<A: GlobalAlloc> {
    pub(crate) inner: A,
    level: AtomicU8,
    policy: AtomicU8,
    quarantine_bytes: AtomicUsize,
    sample_every: AtomicU32,
    stack_every: AtomicU32,
    state: AtomicPtr<State>,
}

impl<A: GlobalAlloc> core::fmt::Debug for DebugAlloc<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DebugAlloc")
            .field("level", &self.level())
            .finish()
    }
}

impl<A: GlobalAlloc> DebugAlloc<A> {
    /// Wraps `inner`; the level comes from `RUSTYDB_MEM_DEBUG` (`off`, `counting`,
    /// `tracking`, `full`) on first use, `off` if unset.
    pub const fn new(inner: A) -> Self {
        Self::make(inner, LEVEL_UNSET)
    }

    /// Wraps `inner` at `level` (the environment is not read).
    pub const fn with_level(inner: A, level: DebugLevel) -> Self {
        Self::make(inner, level as u8)
    }

    const fn make(inner: A, level: u8) -> Self {
        Self {
            inner,
            level: AtomicU8::new(level),
            policy: AtomicU8::new(0),
            quarantine_bytes: AtomicUsize::new(DEFAULT_QUARANTINE_BYTES),
            sample_every: AtomicU32::new(DEFAULT_SAMPLE_EVERY),
            stack_every: AtomicU32::new(1),
            state: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The current level.
    #[inline]
    pub fn level(&self) -> DebugLevel {
        // Relaxed: a mode flag; blocks carry their own flags.
        let l = self.level.load(Ordering::Relaxed);
        if l != LEVEL_UNSET {
            return DebugLevel::from_u8(l);
        }
        self.level_from_env()
    }

    #[cold]
    fn level_from_env(&self) -> DebugLevel {
        // SAFETY: getenv with a NUL-terminated name; the value is copied at once.
        let p = unsafe { libc::getenv(c"RUSTYDB_MEM_DEBUG".as_ptr()) };
        let level = if p.is_null() {
            DebugLevel::Off
        } else {
            // SAFETY: a non-null getenv result is a valid C string.
            DebugLevel::parse(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
                .unwrap_or(DebugLevel::Off)
        };
        // Relaxed: racing first users compute the same value.
        let _ = self.level.compare_exchange(
            LEVEL_UNSET,
            level as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        DebugLevel::from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Changes the level for blocks allocated from now on.
    pub fn set_level(&self, level: DebugLevel) {
        self.level.store(level as u8, Ordering::Relaxed);
    }

    /// Report-and-continue (default) or abort.
    pub fn set_policy(&self, p: Policy) {
        self.policy
            .store(matches!(p, Policy::Abort) as u8, Ordering::Relaxed);
    }

    /// Bounds the quarantine (Full level) in bytes.
    pub fn set_quarantine_bytes(&self, bytes: usize) {
        self.quarantine_bytes.store(bytes, Ordering::Relaxed);
    }

    /// At Full, captures the allocation backtrace of one in `n` allocations
    /// (default 1: every one). Unwinding is most of Full's cost; with `n > 1`
    /// leak groups of unsampled blocks carry their component but no site.
    pub fn set_backtrace_every(&self, n: u32) {
        self.stack_every.store(n.max(1), Ordering::Relaxed);
    }

    /// Samples one in `n` small allocations onto guard pages at Full (0 = never).
    pub fn set_sample_every(&self, n: u32) {
        self.sample_every.store(n, Ordering::Relaxed);
    }

    pub(crate) fn state(&self) -> Option<&State> {
        // Acquire: pairs with the publishing CAS, so the mapping's contents are visible.
        let s = self.state.load(Ordering::Acquire);
        if !s.is_null() {
            // SAFETY: published states are never unmapped.
            return Some(unsafe { &*s });
        }
        self.init_state()
    }

    #[cold]
    fn init_state(&self) -> Option<&State> {
        let bytes = core::mem::size_of::<State>().next_multiple_of(sys::page_size());
        let m = sys::map(bytes)?.as_ptr().cast::<State>();
        // SAFETY: a fresh zeroed mapping large enough for State; every field of
        // State is valid when all-zero except that we write a proper value anyway.
        unsafe {
            m.write(State {
                table: Table::new(),
                counters: [const { Counters::new() }; MAX_COMPONENTS],
                quarantine: Quarantine::new(),
                reports: Reports::new(),
                quarantined: AtomicUsize::new(0),
            })
        };
        // AcqRel: publish our state or take the winner's.
        match self
            .state
            .compare_exchange(ptr::null_mut(), m, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: just published; never unmapped.
            Ok(_) => Some(unsafe { &*m }),
            Err(winner) => {
                // SAFETY: our mapping was never published.
                unsafe { sys::unmap(m.cast(), bytes) };
                // SAFETY: the winner's state is published and never unmapped.
                Some(unsafe { &*winner })
            }
        }
    }

    pub(crate) fn report(&self, r: RawReport) {
        r.print();
        if let Some(s) = self.state() {
            s.reports.push(r);
        }
        // Relaxed: a mode flag.
        if self.policy.load(Ordering::Relaxed) == 1 {
            // SAFETY: abort has no preconditions.
            unsafe { libc::abort() };
        }
    }

    fn sample_now(&self) -> bool {
        // Relaxed: a mode value.
        countdown(&SAMPLE_LEFT, self.sample_every.load(Ordering::Relaxed))
    }

    fn stack_now(&self) -> bool {
        // Relaxed: a mode value.
        let every = self.stack_every.load(Ordering::Relaxed);
        every <= 1 || countdown(&STACK_LEFT, every)
    }
}

/// True once every `every` calls on this thread (never for 0).
fn countdown(key: &'static std::thread::LocalKey<Cell<u32>>, every: u32) -> bool {
    if every == 0 {
        return false;
    }
    key.try_with(|c| {
        let left = if c.get() == 0 || c.get() > every {
            every
        } else {
            c.get()
        } - 1;
        c.set(if left == 0 { every } else { left });
        left == 0
    })
    .unwrap_or(false)
}

impl<A: GlobalAlloc> DebugAlloc<A> {
    #[inline]
    unsafe fn alloc_impl(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let level = self.level();
        let internal = reentrant();
        let mut flags = 0;
        if !internal && level >= DebugLevel::Counting {
            flags |= F_COUNTED;
        }
        if !internal && level >= DebugLevel::Tracking {
            flags |= F_TRACKED;
        }
        if !internal && level == DebugLevel::Full {
            flags |= F_RZ;
        }
        let size = layout.size();
        let component = if flags != 0 { components::current() } else { 0 };
        let state = if flags & F_COUNTED != 0 {
            self.state()
        } else {
            None
        };
        if state.is_none() {
            flags = 0; // no side memory: plain header only
        }
        let stack = if flags & F_RZ != 0 && self.stack_now() {
            guarded(|| stacks::capture(2, ALLOC_FRAMES))
        } else {
            0
        };

        let user = if flags & F_RZ != 0 && self.sample_now() {
            match guard_pages::alloc(size, layout.align(), HEADER, stack) {
                Some(u) => {
                    flags |= F_SAMPLED;
                    if zeroed {
                        // SAFETY: the pooled block has `size` writable bytes at `u`.
                        unsafe { (u as *mut u8).write_bytes(0, size) };
                    }
                    u
                }
                None => 0,
            }
        } else {
            0
        };
        let user = if user != 0 {
            user
        } else {
            let pre = prefix(flags, layout.align());
            let total = pre + size + tail(flags);
            let Ok(bl) = Layout::from_size_align(total, layout.align().max(16)) else {
                return ptr::null_mut();
            };
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
            if flags & F_RZ != 0 {
                // SAFETY: the lead redzone [block, user-16) and the tail redzone
                // [user+size, user+size+TAIL_RZ) are inside the block we own.
                unsafe {
                    block.write_bytes(RZ_BYTE, pre - HEADER);
                    (user as *mut u8).add(size).write_bytes(RZ_BYTE, TAIL_RZ);
                }
            }
            user
        };
        // SAFETY: the header slot [user-16, user) is inside our block (prefix ≥ 16)
        // and 8-aligned (user is ≥ 16-aligned).
        unsafe {
            ((user - HEADER) as *mut Header).write(Header::new(user, size, ALIVE, flags, component))
        };
        if let Some(s) = state {
            if flags & F_COUNTED != 0 {
                s.counters[component as usize].on_alloc(size);
            }
            if flags & F_TRACKED != 0 {
                let rec = Record {
                    addr: user,
                    size,
                    // Relaxed: a unique, increasing number for marks.
                    seq: SEQ.fetch_add(1, Ordering::Relaxed),
                    time_ns: sys::coarse_now_ns(),
                    alloc_stack: stack,
                    free_stack: 0,
                    thread: thread_id(),
                    component,
                    align_log: layout.align().trailing_zeros() as u8,
                    flags,
                    freed: 0,
                };
                s.table.insert(rec);
            }
        }
        user as *mut u8
    }

    #[inline]
    unsafe fn dealloc_impl(&self, p: *mut u8, layout: Layout) {
        let user = p as usize;
        let level = self.level();
        // 1. Tracked blocks are checked in the side table before their memory is
        //    touched — and, in the same locked step, removed (or, for blocks that go
        //    to quarantine, marked freed with the free site).
        let mut record = None;
        if level >= DebugLevel::Tracking
            && let Some(s) = self.state()
        {
            let looked = s.table.update(user, |r| {
                if r.freed != 0 {
                    Some(r)
                } else if r.flags & F_TRACKED != 0 && r.flags & F_SAMPLED == 0 {
                    Some(Record { freed: 1, ..r })
                } else {
                    None
                }
            });
            // The free site is captured only for blocks whose allocation site was
            // (unwinding is most of the Full level's cost), and recorded for the
            // quarantined ones, where a later report can use it.
            let free_stack = match looked {
                Some(r) if r.freed == 0 && r.alloc_stack != 0 => {
                    guarded(|| stacks::capture(2, FREE_FRAMES))
                }
                Some(r) if r.freed != 0 && level == DebugLevel::Full => {
                    guarded(|| stacks::capture(2, FREE_FRAMES))
                }
                _ => 0,
            };
            if let Some(r) = looked
                && r.freed == 0
                && free_stack != 0
                && r.flags & F_RZ != 0
                && r.flags & F_SAMPLED == 0
            {
                s.table.update(user, |q| Some(Record { free_stack, ..q }));
            }
            match looked {
                Some(r) if r.freed == 0 => record = Some(Record { free_stack, ..r }),
                Some(r) => {
                    let mut rep = RawReport::new(ReportKind::DoubleFree, user);
                    rep.size = r.size;
                    rep.component = r.component;
                    rep.alloc_stack = r.alloc_stack;
                    rep.free_stack = r.free_stack;
                    rep.site_stack = free_stack;
                    self.report(rep);
                    return;
                }
                None => {}
            }
        }
        if guard_pages::contains(user) {
            self.free_sampled(user, record);
            return;
        }
        // 2. The header.
        // SAFETY: a tracked block has its header; an untracked one must (the caller's
        // GlobalAlloc contract), and a garbage pointer is the caller's bug we can
        // only try to diagnose.
        let h = unsafe { ((user - HEADER) as *const Header).read() };
        if h.state() != ALIVE
            || !h.valid(user)
            || (record.is_none() && h.flags() & F_TRACKED != 0 && level >= DebugLevel::Tracking)
        {
            let kind = if h.state() == FREED && h.valid(user) {
                ReportKind::DoubleFree
            } else if record.is_some() {
                ReportKind::Underflow // our block, but its header was overwritten
            } else {
                ReportKind::InvalidFree
            };
            let mut rep = RawReport::new(kind, user);
            rep.size = layout.size();
            if let Some(r) = record {
                rep.alloc_stack = r.alloc_stack;
                rep.component = r.component;
            }
            self.report(rep);
            if let (ReportKind::Underflow, Some(r)) = (kind, record) {
                // The block is ours: free it with what the table knows.
                self.release(user, layout, r.flags, r.component, record);
            }
            return;
        }
        let flags = h.flags();
        let size = h.size as usize;
        // 3. Redzones.
        if flags & F_RZ != 0 {
            let pre = prefix(flags, layout.align());
            let block = user - pre;
            // SAFETY: both redzones lie inside the block (see alloc_impl).
            unsafe {
                if let Some(i) = quarantine_check(block as *const u8, pre - HEADER, RZ_BYTE) {
                    let mut rep = RawReport::new(ReportKind::Underflow, user);
                    rep.size = size;
                    rep.offset = (block + i) as isize - user as isize;
                    rep.component = h.component();
                    rep.alloc_stack = record.map_or(0, |r| r.alloc_stack);
                    self.report(rep);
                }
                if let Some(i) = quarantine_check((user + size) as *const u8, TAIL_RZ, RZ_BYTE) {
                    let mut rep = RawReport::new(ReportKind::Overflow, user);
                    rep.size = size;
                    rep.offset = (size + i) as isize;
                    rep.component = h.component();
                    rep.alloc_stack = record.map_or(0, |r| r.alloc_stack);
                    self.report(rep);
                }
            }
        }
        self.release(user, layout, flags, h.component(), record);
    }

    /// Counts, untracks or quarantines, and frees a block whose header was verified.
    /// `record` is the side-table record already taken out (or marked freed) by
    /// `dealloc_impl`; without one, a tracked block is looked up here.
    fn release(
        &self,
        user: usize,
        layout: Layout,
        flags: u8,
        component: u16,
        record: Option<Record>,
    ) {
        let size = record.map_or(layout.size(), |r| r.size);
        let state = self.state();
        if let Some(s) = state
            && flags & F_COUNTED != 0
        {
            s.counters[component as usize].on_free(size);
        }
        let pre = prefix(flags, layout.align());
        let block = user - pre;
        let bl_size = pre + size + tail(flags);
        let bl_align = layout.align().max(16);
        // Quarantine (tracked blocks): mark freed, poison (Full), hold back. Below
        // Full the quarantine is a delay only: it keeps a recently freed block in the
        // side table, so a double free of it is found without touching its memory.
        if let (Some(s), true) = (state, flags & F_TRACKED != 0) {
            let poisoned = flags & F_RZ != 0;
            // SAFETY: the header and user bytes are inside our live block.
            unsafe {
                ((user - HEADER) as *mut Header)
                    .write(Header::new(user, size, FREED, flags, component));
                if poisoned {
                    (user as *mut u8).write_bytes(POISON, size);
                }
            }
            if record.is_none() {
                // Freed below the Tracking level: not marked by `dealloc_impl`.
                let free_stack = guarded(|| stacks::capture(3, FREE_FRAMES));
                s.table.update(user, |r| {
                    Some(Record {
                        freed: 1,
                        free_stack,
                        ..r
                    })
                });
            }
            let e = Entry {
                user,
                size,
                block,
                block_size: bl_size,
                block_align: bl_align,
                poisoned,
            };
            let mut out = [Entry::default(); 8];
            // Relaxed: a bound read racily.
            let max = self.quarantine_bytes.load(Ordering::Relaxed);
            match s.quarantine.push(e, max, &mut out) {
                Some(n) => {
                    s.quarantined.fetch_add(size, Ordering::Relaxed);
                    for e in &out[..n] {
                        self.leave_quarantine(s, e);
                    }
                }
                None => self.leave_quarantine(s, &e),
            }
            return;
        }
        if let (Some(s), true, None) = (state, flags & F_TRACKED != 0, record) {
            s.table.update(user, |_| None);
        }
        // SAFETY: the header is ours; then the block goes back to the allocator it
        // came from with the layout it was allocated with.
        unsafe {
            ((user - HEADER) as *mut Header)
                .write(Header::new(user, size, FREED, flags, component));
            self.inner.dealloc(
                block as *mut u8,
                Layout::from_size_align_unchecked(bl_size, bl_align),
            );
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
            let r = s.table.get(e.user);
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
        s.table.update(e.user, |_| None);
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

    fn free_sampled(&self, user: usize, record: Option<Record>) {
        let stack = if self.level() == DebugLevel::Full {
            guarded(|| stacks::capture(3, FREE_FRAMES))
        } else {
            0
        };
        if !guard_pages::free(user, stack) {
            let mut rep = RawReport::new(ReportKind::DoubleFree, user);
            rep.free_stack = stack;
            self.report(rep);
            return;
        }
        // The record was taken out of the table by `dealloc_impl`.
        if let (Some(s), Some(r)) = (self.state(), record) {
            s.counters[r.component as usize].on_free(r.size);
        }
    }

    /// Empties the quarantine, verifying every block (writes after free are
    /// reported now).
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
    }
}

/// Offset of the first byte in `[p, p+len)` that differs from `byte`.
///
/// # Safety
/// The range is readable.
unsafe fn quarantine_check(p: *const u8, len: usize, byte: u8) -> Option<usize> {
    // SAFETY: readable (caller).
    let s = unsafe { core::slice::from_raw_parts(p, len) };
    s.iter().position(|&b| b != byte)
}

// SAFETY: every block handed out is a region of at least `layout.size()` bytes
// aligned to `layout.align()` inside a distinct block of `inner` (or of the guard
// pool); `dealloc` finds the block again from the header and the same layout.
unsafe impl<A: GlobalAlloc> GlobalAlloc for DebugAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.alloc_impl(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.alloc_impl(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.dealloc_impl(p, layout) }
    }
}
