//! mmap / munmap / madvise / mremap wrappers.

use core::ptr::NonNull;

use crate::sync::{AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size (cached after the first call; 4096 if `sysconf` fails).
#[inline]
pub(crate) fn page_size() -> usize {
    // Relaxed: an idempotent cache of a constant; any thread may fill it.
    let p = PAGE_SIZE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let v = if v > 0 && (v as usize).is_power_of_two() {
        v as usize
    } else {
        4096
    };
    PAGE_SIZE.store(v, Ordering::Relaxed);
    v
}

/// Memory advice, as `madvise(2)` understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Advice {
    /// No special treatment (`MADV_NORMAL`).
    Normal,
    /// Expect sequential access: aggressive read-ahead (`MADV_SEQUENTIAL`).
    Sequential,
    /// Expect random access: no read-ahead (`MADV_RANDOM`).
    Random,
    /// Expect access soon: fault the pages in ahead (`MADV_WILLNEED`).
    WillNeed,
    /// Drop the contents now; the next touch reads zeros (`MADV_DONTNEED`).
    DontNeed,
    /// Contents may be dropped lazily, under memory pressure (`MADV_FREE`).
    Free,
    /// Back this range with transparent huge pages (`MADV_HUGEPAGE`).
    HugePage,
    /// Never back this range with transparent huge pages (`MADV_NOHUGEPAGE`).
    NoHugePage,
}

impl Advice {
    fn to_libc(self) -> libc::c_int {
        match self {
            Advice::Normal => libc::MADV_NORMAL,
            Advice::Sequential => libc::MADV_SEQUENTIAL,
            Advice::Random => libc::MADV_RANDOM,
            Advice::WillNeed => libc::MADV_WILLNEED,
            Advice::DontNeed => libc::MADV_DONTNEED,
            Advice::Free => libc::MADV_FREE,
            Advice::HugePage => libc::MADV_HUGEPAGE,
            Advice::NoHugePage => libc::MADV_NOHUGEPAGE,
        }
    }
}

/// An explicit huge-page size for `MAP_HUGETLB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HugePageSize {
    /// 2 MiB pages (`MAP_HUGE_2MB`).
    TwoMiB,
    /// 1 GiB pages (`MAP_HUGE_1GB`).
    OneGiB,
}

impl HugePageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            HugePageSize::TwoMiB => 2 << 20,
            HugePageSize::OneGiB => 1 << 30,
        }
    }
}

fn mmap_raw(len: usize, extra_flags: libc::c_int) -> Option<NonNull<u8>> {
    if len == 0 {
        return None;
    }
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing
    // cannot alias any existing Rust object; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        super::mapped::note_mapped(len);
        NonNull::new(p.cast::<u8>())
    }
}

/// Maps `len` bytes (a multiple of the page size) of zeroed, read-write memory.
pub(crate) fn map(len: usize) -> Option<NonNull<u8>> {
    mmap_raw(len, 0)
}

/// Maps `len` bytes aligned to `align` (a power of two ≥ the page size) by
/// over-mapping and trimming the unaligned head and tail.
pub(crate) fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    let page = page_size();
    if align <= page {
        return map(len);
    }
    let over = len.checked_add(align - page)?;
    let base = map(over)?.as_ptr() as usize;
    let start = (base + align - 1) & !(align - 1);
    let head = start - base;
    let tail = over - head - len;
    // SAFETY: [base, start) and [start+len, base+over) are parts of the mapping we
    // just made and nothing refers to them.
    unsafe {
        if head != 0 {
            unmap(base as *mut u8, head);
        }
        if tail != 0 {
            unmap((start + len) as *mut u8, tail);
        }
    }
    NonNull::new(start as *mut u8)
}

/// Unmaps `[ptr, ptr+len)`.
///
/// # Safety
/// - The range lies inside mappings made by this module and is page aligned.
/// - No live reference or pointer that will be dereferenced points into it.
pub(crate) unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused; munmap of such a
    // range cannot fail except for EINVAL, which we ignore (nothing to recover).
    if unsafe { libc::munmap(ptr.cast(), len) } == 0 {
        super::mapped::note_unmapped(len);
    }
}

/// Gives `advice` for `[ptr, ptr+len)`; returns whether the kernel accepted it.
///
/// # Safety
/// - The range lies inside mappings made by this module and is page aligned.
/// - For `DontNeed` / `Free`: no live data the program still needs is in it
///   (its contents become zero, now or later).
pub(crate) unsafe fn advise(ptr: *mut u8, len: usize, advice: Advice) -> bool {
    // SAFETY: the caller guarantees the range is ours; madvise never touches memory
    // outside it and reports bad input as an error.
    unsafe { libc::madvise(ptr.cast(), len, advice.to_libc()) == 0 }
}

/// Makes `[ptr, ptr+len)` resident and writable now: `MADV_POPULATE_WRITE`
/// (Linux 5.14+), else touching one byte per page.
///
/// # Safety
/// The range lies inside a read-write mapping of ours, page aligned, and no other
/// thread writes to it concurrently (the fallback writes a zero per page when the
/// byte already reads zero, which is then a no-op on the contents).
#[allow(dead_code)] // used by the large-object allocator (issue 3)
pub(crate) unsafe fn populate(ptr: *mut u8, len: usize) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    // SAFETY: the caller guarantees the range is ours.
    if unsafe { libc::madvise(ptr.cast(), len, MADV_POPULATE_WRITE) } == 0 {
        return;
    }
    let page = page_size();
    let mut off = 0;
    while off < len {
        // SAFETY: `ptr + off` is inside the caller's read-write range; a volatile
        // read-then-write of the same byte keeps the contents and faults the page in
        // for writing.
        unsafe {
            let p = ptr.add(off);
            let v = core::ptr::read_volatile(p);
            core::ptr::write_volatile(p, v);
        }
        off += page;
    }
}

/// Resizes the mapping at `ptr` from `old` to `new` bytes, moving it if
/// `may_move`; `None` if the kernel refused (the old mapping is then untouched).
///
/// # Safety
/// `[ptr, ptr+old)` is exactly one whole mapping of ours (page aligned); if the
/// call succeeds with a different address, the old range is gone and must not be used.
pub(crate) unsafe fn remap(
    ptr: *mut u8,
    old: usize,
    new: usize,
    may_move: bool,
) -> Option<NonNull<u8>> {
    let flags = if may_move { libc::MREMAP_MAYMOVE } else { 0 };
    // SAFETY: the caller guarantees the mapping is ours and whole.
    let p = unsafe { libc::mremap(ptr.cast(), old, new, flags) };
    if p == libc::MAP_FAILED {
        None
    } else {
        if new > old {
            super::mapped::note_mapped(new - old);
        } else {
            super::mapped::note_unmapped(old - new);
        }
        NonNull::new(p.cast::<u8>())
    }
}

/// The calling thread's `errno` (the reason the last failed call gave).
pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Maps `len` bytes (a multiple of `size`) of explicit huge pages **with a
/// reservation**: `None` unless the kernel's pool for `size` can back the whole
/// range now.
///
/// No `MAP_NORESERVE` here: for hugetlb mappings it skips the reservation, so the
/// `mmap` would succeed with an empty pool and the first touch of a page the pool
/// cannot supply would raise `SIGBUS`. Callers need a refusal they can fall back from.
pub(crate) fn map_huge_reserved(len: usize, size: HugePageSize) -> Option<NonNull<u8>> {
    let flag = match size {
        HugePageSize::TwoMiB => libc::MAP_HUGE_2MB,
        HugePageSize::OneGiB => libc::MAP_HUGE_1GB,
    };
    if len == 0 || !len.is_multiple_of(size.bytes()) {
        return None;
    }
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing
    // cannot alias any existing Rust object; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | flag,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        super::mapped::note_mapped(len);
        NonNull::new(p.cast::<u8>())
    }
}
