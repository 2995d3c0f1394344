//! `librustydb_malloc`: RustyAlloc as the C `malloc` family.
//!
//! Load it with `LD_PRELOAD=librustydb_malloc.so program`, or link it
//! (`-lrustydb_malloc`, see `include/rustydb_memory.h` and `rustydb-malloc.pc`):
//! its `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`,
//! `aligned_alloc`, `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`,
//! `free_sized`, `free_aligned_sized` and `malloc_trim` then replace glibc's for
//! the whole process, glibc's own internal calls included (glibc supports this:
//! "Replacing malloc" in its manual).
//!
//! Semantics follow glibc 2.38 (see each function): errno `ENOMEM` on
//! exhaustion, `EINVAL` for bad alignments, 16-byte minimum alignment,
//! `realloc(p, 0)` frees and returns null, `malloc(0)` a distinct minimal block.
//!
//! Start-up: the dynamic linker calls `malloc` after relocating libc but before
//! it has filled in the threads' TLS blocks. Until this library's constructor
//! has run (`READY`), every call therefore goes to [`SharedHeap`] — the shared
//! slabs, no thread cache, no TLS. Blocks of both are the same kind of block.
//! Pointers we never handed out (the dynamic linker's own early blocks, a
//! program's stray `free`) are recognised without being read — see
//! `RustyAlloc::free` — and ignored.

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use rustydb_memory::{RustyAlloc, SharedHeap};

/// Set by the library constructor: TLS is set up and thread caches may be used.
static READY: AtomicBool = AtomicBool::new(false);

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

/// Runs when the dynamic linker initialises this library: after libc's
/// initialisation and the TLS set-up, before the program's constructors.
extern "C" fn constructor() {
    RustyAlloc.initialize();
    // Relaxed: a thread that reads `true` may use its own TLS, which the
    // dynamic linker set up before any constructor ran; nothing else is published.
    READY.store(true, Ordering::Relaxed);
}

#[inline(always)]
fn ready() -> bool {
    // Relaxed: see `constructor`.
    READY.load(Ordering::Relaxed)
}

#[inline(always)]
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Fails with ENOMEM when `p` is null.
#[inline(always)]
fn or_enomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

#[inline(always)]
fn alloc(size: usize) -> *mut u8 {
    if ready() {
        RustyAlloc.malloc(size)
    } else {
        SharedHeap.malloc(size)
    }
}

#[inline(always)]
fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    if ready() {
        RustyAlloc.aligned_malloc(size, align)
    } else {
        SharedHeap.aligned_malloc(size, align)
    }
}

/// # Safety
/// `p` is null, foreign, or a live block of ours, not used afterwards.
#[inline(always)]
unsafe fn release(p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe {
        if ready() {
            RustyAlloc.free(p)
        } else {
            SharedHeap.free(p)
        }
    }
}

/// `malloc(3)`: at least `size` bytes aligned to 16; `malloc(0)` is a distinct
/// minimal block. Null with `ENOMEM` when memory is refused or `size > PTRDIFF_MAX`.
///
/// # Safety
/// Callable from any thread at any time (C contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    or_enomem(alloc(size))
}

/// `free(3)`: null is ignored; so is a pointer this library never handed out.
///
/// # Safety
/// `p` is null or a live block from this library, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { release(p.cast()) }
}

/// `calloc(3)`: `n * size` zeroed bytes; null with `ENOMEM` when the product
/// overflows or memory is refused.
///
/// # Safety
/// As [`malloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let p = if ready() {
        RustyAlloc.calloc(n, size)
    } else {
        SharedHeap.calloc(n, size)
    };
    or_enomem(p)
}

/// `realloc(3)` as glibc: `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)`
/// frees `p` and returns null; on failure null with `ENOMEM` and `p` untouched
/// (also for a pointer this library never handed out).
///
/// # Safety
/// `p` is null or a live block from this library; after a non-null result only
/// that result is used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return or_enomem(alloc(size));
    }
    if size == 0 {
        // SAFETY: the caller's contract; glibc frees on a zero size.
        unsafe { release(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: the caller's contract.
    let q = unsafe {
        if ready() {
            RustyAlloc.resize(p.cast(), size)
        } else {
            SharedHeap.resize(p.cast(), size)
        }
    };
    or_enomem(q)
}

/// `reallocarray(3)`: `realloc(p, n * size)`, or null with `ENOMEM` (and `p`
/// untouched) when the product overflows.
///
/// # Safety
/// As [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: the caller's contract.
        Some(bytes) => unsafe { realloc(p, bytes) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// glibc's `_mid_memalign`: alignments up to 16 are plain `malloc`; others are
/// rounded up to a power of two; above `SIZE_MAX / 2 + 1` `EINVAL`.
fn memalign_glibc(align: usize, size: usize) -> *mut c_void {
    if align <= 16 {
        return or_enomem(alloc(size));
    }
    if align > usize::MAX / 2 + 1 {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    or_enomem(alloc_aligned(size, align.next_power_of_two()))
}

/// `posix_memalign(3)`: `align` must be a power-of-two multiple of
/// `sizeof(void *)`, else `EINVAL`; `ENOMEM` when memory is refused. `*out` is
/// written only on success; errno is left alone.
///
/// # Safety
/// `out` is valid for a pointer-sized write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    let word = size_of::<*mut c_void>();
    if align == 0 || !align.is_multiple_of(word) || !(align / word).is_power_of_two() {
        return libc::EINVAL;
    }
    let p = if align <= 16 {
        alloc(size)
    } else {
        alloc_aligned(size, align)
    };
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller's contract.
    unsafe { *out = p.cast() };
    0
}

/// `aligned_alloc(3)` as glibc ≥ 2.38 (C17): `align` must be a power of two,
/// else null with `EINVAL`.
///
/// # Safety
/// As [`malloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    memalign_glibc(align, size)
}

/// `memalign(3)` (obsolete): any alignment, rounded up to a power of two.
///
/// # Safety
/// As [`malloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    memalign_glibc(align, size)
}

/// `valloc(3)` (obsolete): page-aligned.
///
/// # Safety
/// As [`malloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign_glibc(page_size(), size)
}

/// `pvalloc(3)` (obsolete): page-aligned, size rounded up to whole pages;
/// `ENOMEM` if that overflows.
///
/// # Safety
/// As [`malloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.checked_add(page - 1) {
        Some(s) => memalign_glibc(page, s & !(page - 1)),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `malloc_usable_size(3)`: bytes usable in the block; 0 for null and for
/// pointers this library never handed out.
///
/// # Safety
/// `p` is null or a live block from this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: the caller's contract.
    unsafe { RustyAlloc.usable_size(p.cast()) }
}

/// C23 `free_sized`: the size is not needed (each block's class is found from
/// its address), so this is `free`.
///
/// # Safety
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: the caller's contract.
    unsafe { free(p) }
}

/// C23 `free_aligned_sized`: as [`free_sized`].
///
/// # Safety
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: the caller's contract.
    unsafe { free(p) }
}

/// `malloc_trim(3)`: returns free memory to the OS now (`RustyAlloc::purge`:
/// the calling thread's cache, every depot, empty slabs, free segments and the
/// large cache). 1 if memory was released, else 0, as glibc.
///
/// # Safety
/// Callable from any thread (C contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_trim(_pad: usize) -> c_int {
    if !ready() {
        return 0;
    }
    c_int::from(RustyAlloc.purge() > 0)
}

/// Writes the allocator's statistics report to the file descriptor `fd`
/// (2 for standard error) without allocating. 0 on success, -1 with errno set.
///
/// # Safety
/// Callable from any thread (C contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rustydb_malloc_stats_print(fd: c_int) -> c_int {
    match RustyAlloc.stats().write_to_fd(fd) {
        Ok(()) => 0,
        Err(rustydb_memory::Error::Os { errno, .. }) => {
            set_errno(errno);
            -1
        }
        Err(_) => {
            set_errno(libc::EIO);
            -1
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}
