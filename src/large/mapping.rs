//! Making and unmapping the mappings that back large blocks, with the huge-page
//! fallback chain of [`huge`](super::huge) and every system call counted.

use core::mem::MaybeUninit;

use super::huge::{Backing, HugePagePolicy, THP_SIZE, Want, thp_usable};
use super::stats::Counters;
use crate::sys::{self, Advice, HugePageSize};

/// A fresh mapping: zero-filled, read-write, owned by nobody yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapped {
    pub(crate) addr: usize,
    pub(crate) len: usize,
    pub(crate) backing: Backing,
}

/// `x` rounded up to a multiple of `to` (a power of two); `None` on overflow.
#[inline]
pub(crate) fn round_up(x: usize, to: usize) -> Option<usize> {
    Some(x.checked_add(to - 1)? & !(to - 1))
}

/// Maps a block of `len` bytes (a page multiple) aligned to `align` (a power of
/// two ≥ the page size) with the pages `policy` asks for, falling back as the
/// module table of [`huge`](super::huge) says. `None` if even normal pages fail.
pub(crate) fn map_block(
    len: usize,
    align: usize,
    policy: HugePagePolicy,
    c: &Counters,
) -> Option<Mapped> {
    match (policy, Want::of(policy, len, align)) {
        (_, Want::Explicit(size)) => {
            let hlen = round_up(len, size.bytes())?;
            Counters::bump(&c.mmap);
            if let Some(p) = sys::map_huge_reserved(hlen, size) {
                let (ok, backing) = match size {
                    HugePageSize::TwoMiB => (&c.huge_2m, Backing::Huge2M),
                    HugePageSize::OneGiB => (&c.huge_1g, Backing::Huge1G),
                };
                Counters::bump(ok);
                return Some(Mapped {
                    addr: p.as_ptr() as usize,
                    len: hlen,
                    backing,
                });
            }
            Counters::bump(match size {
                HugePageSize::TwoMiB => &c.huge_2m_fallbacks,
                HugePageSize::OneGiB => &c.huge_1g_fallbacks,
            });
            map_transparent(len, align, c)
        }
        (HugePagePolicy::Transparent, Want::Any) => map_transparent(len, align, c),
        _ => map_pages(len, align, c).map(|addr| Mapped {
            addr,
            len,
            backing: Backing::Pages,
        }),
    }
}

/// Normal pages advised `MADV_HUGEPAGE` on a 2 MiB-aligned mapping when the
/// block is at least 2 MiB and the kernel's THP mode allows it; else normal
/// pages (a counted fallback for blocks ≥ 2 MiB).
fn map_transparent(len: usize, align: usize, c: &Counters) -> Option<Mapped> {
    if len < THP_SIZE {
        return map_pages(len, align, c).map(|addr| Mapped {
            addr,
            len,
            backing: Backing::Pages,
        });
    }
    if !thp_usable() {
        Counters::bump(&c.thp_fallbacks);
        return map_pages(len, align, c).map(|addr| Mapped {
            addr,
            len,
            backing: Backing::Pages,
        });
    }
    let addr = map_pages(len, align.max(THP_SIZE), c)?;
    Counters::bump(&c.madvise);
    // SAFETY: `[addr, addr+len)` is the mapping just made, page aligned, and
    // holds no data yet; `HugePage` does not change contents.
    let backing = if unsafe { sys::advise(addr as *mut u8, len, Advice::HugePage) } {
        Counters::bump(&c.thp_advised);
        Backing::Thp
    } else {
        Counters::bump(&c.thp_fallbacks);
        Backing::Pages
    };
    Some(Mapped { addr, len, backing })
}

/// Maps `len` bytes of normal pages aligned to `align`, over-mapping by
/// `align − page` and unmapping the unaligned head and tail when needed.
fn map_pages(len: usize, align: usize, c: &Counters) -> Option<usize> {
    let page = sys::page_size();
    if align <= page {
        Counters::bump(&c.mmap);
        return sys::map(len).map(|p| p.as_ptr() as usize);
    }
    let over = len.checked_add(align - page)?;
    Counters::bump(&c.mmap);
    let base = sys::map(over)?.as_ptr() as usize;
    let start = (base + align - 1) & !(align - 1);
    let head = start - base;
    let tail = over - head - len;
    // SAFETY: head and tail are the unused ends of the mapping just made; nothing
    // refers to them.
    unsafe {
        if head != 0 {
            unmap(base, head, c);
        }
        if tail != 0 {
            unmap(start + len, tail, c);
        }
    }
    Some(start)
}

/// Unmaps `[addr, addr+len)`, counting the call.
///
/// # Safety
/// The range is page aligned, lies inside mappings of this allocator, and
/// nothing will access it again.
pub(crate) unsafe fn unmap(addr: usize, len: usize, c: &Counters) {
    Counters::bump(&c.munmap);
    // SAFETY: forwarded contract.
    unsafe { sys::unmap(addr as *mut u8, len) };
}

/// Ranges detached from the registry under the lock, to be unmapped after it is
/// released (so no thread waits on the lock behind a `munmap`).
pub(crate) struct Batch {
    items: [MaybeUninit<(usize, usize)>; Batch::CAP],
    n: usize,
}

impl Batch {
    /// Most ranges one batch holds.
    pub(crate) const CAP: usize = 16;

    /// An empty batch (nothing initialised: cheap on the hot path).
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Self {
            items: [const { MaybeUninit::uninit() }; Batch::CAP],
            n: 0,
        }
    }

    /// Whether another range fits.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.n < Self::CAP
    }

    /// Adds a range; the caller checked [`has_room`](Self::has_room).
    #[inline]
    pub(crate) fn push(&mut self, addr: usize, len: usize) {
        debug_assert!(self.has_room());
        if self.n < Self::CAP {
            self.items[self.n].write((addr, len));
            self.n += 1;
        }
    }

    /// Unmaps every range in the batch and empties it; returns the bytes unmapped.
    ///
    /// # Safety
    /// Every range pushed satisfies [`unmap`]'s contract.
    #[inline(always)]
    pub(crate) unsafe fn unmap_all(&mut self, c: &Counters) -> usize {
        if self.n == 0 {
            return 0;
        }
        // SAFETY: forwarded contract.
        unsafe { self.unmap_slow(c) }
    }

    /// # Safety
    /// As [`unmap_all`](Self::unmap_all).
    #[cold]
    #[inline(never)]
    unsafe fn unmap_slow(&mut self, c: &Counters) -> usize {
        let mut bytes = 0;
        for item in &self.items[..self.n] {
            // SAFETY: items `0..n` were written by `push`.
            let (addr, len) = unsafe { item.assume_init() };
            // SAFETY: forwarded contract.
            unsafe { unmap(addr, len, c) };
            bytes += len;
        }
        self.n = 0;
        bytes
    }
}
