//! Slabs: runs of units holding objects of one size class, and the per-class
//! [`Central`] that hands their objects out in batches.
//!
//! A slab hands out objects from its intrusive free list first, then from its
//! never-used tail (`bump..end`), so a fresh slab touches no page until an object
//! on it is used. Each new slab of a class starts at a different cache colour
//! (a multiple of 64 B within the slab's slack) so equal-index objects of
//! different slabs do not compete for the same cache sets.

use core::ptr;

use super::owner::{self, MAX_OWNERS, Owner};
use super::segment::{HEADER_SIZE, SegmentHeader, SegmentManager, UNIT_SIZE, UNITS};
use super::size_class::{CLASS_SIZE, NUM_CLASSES, NUM_SMALL};
use crate::sync::{AtomicUsize, Lock, Ordering};

/// Descriptor of one unit of a segment; for the first unit of a slab, of the slab.
///
/// Invariants (first unit of an in-use slab): `start <= bump <= end`; every
/// object in `[start, bump)` is either handed out (counted in `used`) or on the
/// free list; `used <= capacity`; `on_partial` iff the slab is linked in its
/// class's partial list, which holds exactly the slabs with a free object.
/// All fields are guarded by the owning class's [`Central`] lock, except `offset`,
/// which is written before any object of the slab is handed out and never changes
/// while one is live.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slab {
    free: *mut u8,
    bump: *mut u8,
    end: *mut u8,
    pub(crate) start: *mut u8,
    next: *mut Slab,
    prev: *mut Slab,
    used: u32,
    capacity: u32,
    pub(crate) obj_size: u32,
    /// Distance in units back to the slab's first unit.
    pub(crate) offset: u8,
    span: u8,
    class: u8,
    on_partial: bool,
}

impl Slab {
    /// A free unit.
    pub(crate) const EMPTY: Slab = Slab {
        free: ptr::null_mut(),
        bump: ptr::null_mut(),
        end: ptr::null_mut(),
        start: ptr::null_mut(),
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
        used: 0,
        capacity: 0,
        obj_size: 0,
        offset: 0,
        span: 0,
        class: 0,
        on_partial: false,
    };

    /// The size class of the slab's objects (meaningful for the first unit of
    /// an in-use slab; constant while any of its objects is live).
    #[inline(always)]
    pub(crate) fn class(&self) -> usize {
        self.class as usize
    }

    /// The start of the object that contains `p` (for over-aligned pointers).
    ///
    /// # Safety
    /// `p` points into a live object of this slab.
    #[inline]
    pub(crate) unsafe fn object_start(&self, p: *mut u8) -> *mut u8 {
        let off = p as usize - self.start as usize;
        // SAFETY: `off` rounds down to an object boundary inside the slab.
        unsafe { self.start.add(off - off % self.obj_size as usize) }
    }
}

/// Units per slab for each class: the span in 1..=16 with the least slack that
/// still holds ≥ 8 objects (≥ 4 for the medium classes above 32 KiB).
pub(crate) static CLASS_SPAN: [u8; NUM_CLASSES] = spans();

const fn spans() -> [u8; NUM_CLASSES] {
    let mut t = [0u8; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        let size = CLASS_SIZE[c] as usize;
        let min_objs = if c < NUM_SMALL { 8 } else { 4 };
        let mut best = 0usize;
        let mut best_waste = 0usize; // waste per 1024 bytes of slab
        let mut n = 1;
        while n <= 16 {
            let bytes = n * UNIT_SIZE; // a slab in unit 0 holds one header's worth less
            if bytes / size >= min_objs {
                let waste = (bytes % size) * 1024 / bytes;
                if best == 0 || waste < best_waste {
                    best = n;
                    best_waste = waste;
                }
                if size <= 1024 {
                    break;
                }
            }
            n += 1;
        }
        assert!(best != 0 && best <= UNITS);
        t[c] = best as u8;
        c += 1;
    }
    t
}

/// What a class's lock guards: its partial lists and counters, and (through the
/// lists and the segment headers) the descriptors and owners of the class's slabs.
///
/// Invariant: the partial lists link exactly the class's slabs that have a free
/// object (`Slab::on_partial`), each on the list of its owner: `partial` for
/// shared slabs (owner 0), `own[o]` for the slabs of a live or releasing owner
/// `o`; `slabs` counts the class's slabs, `empty` those of them with no live
/// object.
struct CentralInner {
    /// Shared slabs with at least one free object.
    partial: *mut Slab,
    /// Per owner: its slabs with at least one free object (`own[0]` unused).
    own: [*mut Slab; MAX_OWNERS],
    slabs: usize,
    empty: usize,
    colour: usize,
}

// SAFETY: the slabs a `CentralInner` links live in process-wide segment
// mappings; no thread owns them, and the `Lock` orders every access.
unsafe impl Send for CentralInner {}

impl CentralInner {
    /// The partial list of owner `o`.
    #[inline]
    fn list(&mut self, o: Owner) -> &mut *mut Slab {
        if o == 0 {
            &mut self.partial
        } else {
            &mut self.own[o as usize]
        }
    }
}

/// The segment of slab descriptor `s` and the index of its first unit.
///
/// # Safety
/// `s` is the descriptor of the first unit of a slab in a live segment.
unsafe fn units_of(s: *mut Slab) -> (*mut SegmentHeader, usize) {
    let seg = SegmentHeader::of(s as *const u8);
    // SAFETY: the descriptor lives in its segment's header (contract).
    let slabs = unsafe { ptr::addr_of!((*seg).slabs) } as usize;
    (seg, (s as usize - slabs) / core::mem::size_of::<Slab>())
}

/// Sets the owner of slab `s` (every unit of it).
///
/// # Safety
/// `s` is the first unit of an in-use slab whose class lock the caller holds.
unsafe fn set_owner(s: *mut Slab, o: Owner) {
    // SAFETY: see the contract; the descriptor lives in its segment's header.
    unsafe {
        let (seg, first) = units_of(s);
        SegmentHeader::set_owner(seg, first, (*s).span as usize, o);
    }
}

/// The per-class store of slabs: hands out and takes back objects in batches.
pub(crate) struct Central {
    inner: Lock<CentralInner>,
    /// Objects handed out of this class's slabs (to magazines or callers).
    pub(crate) used: AtomicUsize,
    /// Slabs of this class.
    pub(crate) slabs: AtomicUsize,
    /// Slabs of this class with no live object (a mirror, for the purger).
    empty_slabs: AtomicUsize,
}

impl Central {
    /// An empty central store.
    pub(crate) const fn new() -> Self {
        Self {
            inner: Lock::new(CentralInner {
                partial: ptr::null_mut(),
                own: [ptr::null_mut(); MAX_OWNERS],
                slabs: 0,
                empty: 0,
                colour: 0,
            }),
            used: AtomicUsize::new(0),
            slabs: AtomicUsize::new(0),
            empty_slabs: AtomicUsize::new(0),
        }
    }

    /// The raw lock, for the fork handlers.
    pub(crate) fn raw_lock(&self) -> &crate::sync::RawLock {
        self.inner.raw()
    }

    /// Fills `out` with up to `out.len()` objects of `class` for owner `me`;
    /// returns how many. Fewer than asked (possibly 0) only when the OS refuses
    /// memory. The objects come from `me`'s slabs, then from shared slabs `me`
    /// adopts, then from a new slab of `me`'s: never from another owner's slab.
    pub(crate) fn alloc_batch(
        &self,
        class: usize,
        segs: &SegmentManager,
        out: &mut [*mut u8],
        me: Owner,
    ) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut n = 0;
        // SAFETY: the lock is held (the guard); list entries are in-use slabs of
        // this class (CentralInner's invariant), whose descriptors it guards.
        unsafe {
            while n < out.len() {
                let mut s = *inner.list(me);
                if s.is_null() && me != 0 && !inner.partial.is_null() {
                    s = inner.partial;
                    unlink(&mut inner.partial, s);
                    set_owner(s, me);
                    push(inner.list(me), s);
                }
                if s.is_null() {
                    s = new_slab(inner, class, segs, me);
                    if s.is_null() {
                        break;
                    }
                }
                if (*s).used == 0 {
                    inner.empty -= 1;
                }
                while n < out.len() {
                    let p = if !(*s).free.is_null() {
                        let p = (*s).free;
                        (*s).free = *(p as *mut *mut u8);
                        p
                    } else if (*s).bump < (*s).end {
                        let p = (*s).bump;
                        (*s).bump = p.add((*s).obj_size as usize);
                        p
                    } else {
                        break;
                    };
                    (*s).used += 1;
                    out[n] = p;
                    n += 1;
                }
                if (*s).free.is_null() && (*s).bump >= (*s).end {
                    unlink(inner.list(me), s);
                }
            }
        }
        // Relaxed: a statistic.
        self.used.fetch_add(n, Ordering::Relaxed);
        if n != 0 {
            self.sync_slabs(inner);
        }
        n
    }

    /// Takes back objects of `class`. Slabs left empty are released to the
    /// segment manager, except one kept per class.
    ///
    /// # Safety
    /// Every pointer is the start of a live object of `class` handed out by
    /// `alloc_batch` and not freed since; none is used afterwards.
    pub(crate) unsafe fn free_batch(&self, segs: &SegmentManager, objs: &[*mut u8]) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        for &p in objs {
            // SAFETY: the lock is held; `p` is a live object of ours (caller), so
            // its slab descriptor is live and belongs to this class.
            unsafe {
                let s = SegmentHeader::slab_of(p);
                *(p as *mut *mut u8) = (*s).free;
                (*s).free = p;
                (*s).used -= 1;
                let mut o = SegmentHeader::owner_of(p);
                if !(*s).on_partial {
                    if o != 0 && !owner::is_live(o) {
                        // Its owner exited (or is handing its slabs over, and
                        // has done this class): the slab becomes shared.
                        set_owner(s, 0);
                        o = 0;
                    }
                    push(inner.list(o), s);
                }
                if (*s).used == 0 {
                    if !(*s).prev.is_null() || !(*s).next.is_null() {
                        // Another slab of the list has room: give this one back.
                        unlink(inner.list(o), s);
                        release_slab(inner, segs, s);
                    } else {
                        // Kept to absorb churn (the purger releases it later).
                        inner.empty += 1;
                    }
                }
            }
        }
        // Relaxed: a statistic.
        self.used.fetch_sub(objs.len(), Ordering::Relaxed);
        self.sync_slabs(inner);
    }

    /// Releases every empty slab of this class (for `purge`).
    pub(crate) fn release_empty(&self, segs: &SegmentManager) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        // SAFETY: the lock is held; list entries are live slabs of this class.
        unsafe {
            for o in 0..MAX_OWNERS as Owner {
                let mut s = *inner.list(o);
                while !s.is_null() {
                    let next = (*s).next;
                    if (*s).used == 0 {
                        unlink(inner.list(o), s);
                        release_slab(inner, segs, s);
                        inner.empty -= 1;
                    }
                    s = next;
                }
            }
        }
        self.sync_slabs(inner);
    }

    /// Makes every slab of owner `o` with a free object shared (its cache
    /// exited; `owner::release`). Its slabs without one stay marked `o` until a
    /// free finds them (see `free_batch`) or a new cache claims `o`.
    pub(crate) fn hand_over(&self, o: Owner) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        // SAFETY: the lock is held; list entries are live slabs of this class.
        unsafe {
            loop {
                let s = *inner.list(o);
                if s.is_null() {
                    break;
                }
                unlink(inner.list(o), s);
                set_owner(s, 0);
                push(&mut inner.partial, s);
            }
        }
    }

    /// Whether the class keeps an empty slab (the purger's hint).
    #[inline]
    pub(crate) fn has_empty(&self) -> bool {
        // Relaxed: a hint, read racily.
        self.empty_slabs.load(Ordering::Relaxed) != 0
    }

    /// Mirrors the slab counts for statistics and the purger (plain stores).
    fn sync_slabs(&self, inner: &CentralInner) {
        // Relaxed: mirrors, read racily.
        self.slabs.store(inner.slabs, Ordering::Relaxed);
        self.empty_slabs.store(inner.empty, Ordering::Relaxed);
    }
}

/// Gives the empty slab `s` back to the segment manager.
///
/// # Safety
/// `inner` is the guarded state of `s`'s class (its lock is held); `s` is an
/// empty slab of that class, not on the partial list.
unsafe fn release_slab(inner: &mut CentralInner, segs: &SegmentManager, s: *mut Slab) {
    // SAFETY: see the contract; the descriptor lives in its segment's header, and
    // nothing lives in the slab's units any more.
    unsafe {
        let (seg, first) = units_of(s);
        let span = (*s).span as usize;
        inner.slabs -= 1;
        SegmentHeader::set_owner(seg, first, span, 0);
        segs.release(seg, first, span);
    }
}

/// Carves a new slab of `class` for owner `o` from fresh units and puts it on
/// `o`'s partial list; null when the OS refuses memory.
///
/// # Safety
/// `inner` is the guarded state of `class` (its lock is held).
unsafe fn new_slab(
    inner: &mut CentralInner,
    class: usize,
    segs: &SegmentManager,
    o: Owner,
) -> *mut Slab {
    let span = CLASS_SPAN[class] as usize;
    let Some((seg, first)) = segs.acquire(span) else {
        return ptr::null_mut();
    };
    let size = CLASS_SIZE[class] as usize;
    let mut base = SegmentHeader::unit_addr(seg, first) as usize;
    let end = SegmentHeader::unit_addr(seg, first + span) as usize;
    if first == 0 {
        base += HEADER_SIZE;
    }
    let capacity = (end - base) / size;
    let slack = (end - base) - capacity * size;
    let colours = slack / 64 + 1;
    let colour = (inner.colour % colours) * 64;
    inner.colour = inner.colour.wrapping_add(1);
    let start = (base + colour) as *mut u8;
    // SAFETY: the units were just acquired, so their descriptors are ours to
    // initialise (and the class lock is held, which guards them from now on).
    unsafe {
        for u in 0..span {
            (*seg).slabs[first + u].offset = u as u8;
        }
        let s = ptr::addr_of_mut!((*seg).slabs[first]);
        (*s).free = ptr::null_mut();
        (*s).start = start;
        (*s).bump = start;
        (*s).end = start.add(capacity * size);
        (*s).used = 0;
        (*s).capacity = capacity as u32;
        (*s).obj_size = size as u32;
        (*s).span = span as u8;
        (*s).class = class as u8;
        SegmentHeader::set_owner(seg, first, span, o);
        inner.slabs += 1;
        inner.empty += 1;
        push(inner.list(o), s);
        s
    }
}

/// # Safety
/// `s` is not on the list; the class lock is held.
unsafe fn push(head: &mut *mut Slab, s: *mut Slab) {
    // SAFETY: see the contract.
    unsafe {
        (*s).prev = ptr::null_mut();
        (*s).next = *head;
        if !(*head).is_null() {
            (**head).prev = s;
        }
        (*s).on_partial = true;
    }
    *head = s;
}

/// # Safety
/// `s` is on the list; the class lock is held.
unsafe fn unlink(head: &mut *mut Slab, s: *mut Slab) {
    // SAFETY: see the contract.
    unsafe {
        let (p, n) = ((*s).prev, (*s).next);
        if p.is_null() {
            *head = n;
        } else {
            (*p).next = n;
        }
        if !n.is_null() {
            (*n).prev = p;
        }
        (*s).next = ptr::null_mut();
        (*s).prev = ptr::null_mut();
        (*s).on_partial = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_hold_enough_objects() {
        for c in 0..NUM_CLASSES {
            let bytes = CLASS_SPAN[c] as usize * UNIT_SIZE;
            let objs = bytes / CLASS_SIZE[c] as usize;
            assert!(objs >= if c < NUM_SMALL { 8 } else { 4 }, "class {c}");
        }
    }

    #[test]
    fn batches_round_trip_and_slabs_are_released() {
        let segs = SegmentManager::new();
        let central = Central::new();
        let class = 40; // a mid-size small class
        let size = CLASS_SIZE[class] as usize;
        let mut objs = vec![ptr::null_mut(); 3000];
        assert_eq!(central.alloc_batch(class, &segs, &mut objs, 0), 3000);
        let mut sorted = objs.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[1] as usize - w[0] as usize >= size, "objects overlap");
        }
        for (i, &p) in objs.iter().enumerate() {
            // SAFETY: each object is `size` bytes and ours.
            unsafe { p.write_bytes(i as u8, size) };
        }
        for (i, &p) in objs.iter().enumerate() {
            // SAFETY: as above.
            assert_eq!(unsafe { *p.add(size - 1) }, i as u8);
        }
        assert!(central.slabs.load(Ordering::Relaxed) > 1);
        // SAFETY: all objects came from this central and are not used again.
        unsafe { central.free_batch(&segs, &objs) };
        assert_eq!(central.used.load(Ordering::Relaxed), 0);
        assert_eq!(
            central.slabs.load(Ordering::Relaxed),
            1,
            "one empty slab kept"
        );
        central.release_empty(&segs);
        assert_eq!(central.slabs.load(Ordering::Relaxed), 0);
        assert_eq!(segs.counters.units_in_use.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn owners_get_their_own_slabs_and_frees_go_home() {
        let segs = SegmentManager::new();
        let central = Central::new();
        let class = 3;
        let (a, b) = (owner::claim(), owner::claim());
        assert!(a != 0 && b != 0);
        let mut xs = vec![ptr::null_mut(); 100];
        let mut ys = vec![ptr::null_mut(); 100];
        assert_eq!(central.alloc_batch(class, &segs, &mut xs, a), 100);
        assert_eq!(central.alloc_batch(class, &segs, &mut ys, b), 100);
        // SAFETY: objects of live slabs.
        let owner_of = |p: *mut u8| unsafe { SegmentHeader::owner_of(p) };
        assert!(xs.iter().all(|&p| owner_of(p) == a));
        assert!(ys.iter().all(|&p| owner_of(p) == b));
        // Different slabs: no cache line holds objects of both.
        let lines = |v: &[*mut u8]| v.iter().map(|&p| p as usize / 64).collect::<Vec<_>>();
        let (lx, ly) = (lines(&xs), lines(&ys));
        assert!(lx.iter().all(|l| !ly.contains(l)));
        // `a`'s objects freed (by anyone) go home: `b` never gets them, `a` does.
        // SAFETY: live objects of `class`, not used afterwards.
        unsafe { central.free_batch(&segs, &xs) };
        let mut more = vec![ptr::null_mut(); 100];
        assert_eq!(central.alloc_batch(class, &segs, &mut more, b), 100);
        assert!(more.iter().all(|p| !xs.contains(p)));
        let mut back = vec![ptr::null_mut(); 100];
        assert_eq!(central.alloc_batch(class, &segs, &mut back, a), 100);
        assert!(back.iter().all(|p| xs.contains(p)));
        // `a` exits: its slabs become shared and `b` may adopt them.
        owner::release(a, |o| central.hand_over(o));
        // SAFETY: as above.
        unsafe { central.free_batch(&segs, &back) };
        assert!(back.iter().all(|&p| owner_of(p) == 0));
        let mut adopted = vec![ptr::null_mut(); 100];
        assert_eq!(central.alloc_batch(class, &segs, &mut adopted, b), 100);
        assert!(adopted.iter().all(|&p| owner_of(p) == b));
        for v in [&ys, &more, &adopted] {
            // SAFETY: as above.
            unsafe { central.free_batch(&segs, v) };
        }
        owner::release(b, |o| central.hand_over(o));
        central.release_empty(&segs);
        assert_eq!(central.slabs.load(Ordering::Relaxed), 0);
    }
}
