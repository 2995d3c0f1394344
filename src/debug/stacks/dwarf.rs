//! The cached DWARF unwinder, for binaries without frame pointers: samply's
//! `framehop` over the `.eh_frame_hdr` / `.eh_frame` sections of every loaded
//! module, read in place (they are mapped with the code). framehop turns the
//! CFI of an address into a small rule (CFA = rsp+k or rbp+16, where the
//! return address and rbp are) and keeps the rules in a 509-entry cache per
//! thread: a warm frame costs a lookup and two loads instead of libgcc's CFI
//! interpretation (~2 800 instructions a frame).
//!
//! It fits inside an allocator: with `MustNotAllocateDuringUnwind` an unwind
//! allocates nothing (the gimli evaluation space lives in the cache), and
//! stack reads go through a closure that refuses any address outside the
//! calling thread's stack. What allocates — the module list and a thread's
//! cache — is built on first use, with the debugger's reentrancy flag set.
//!
//! Modules loaded later (`dlopen`) are found when a walk ends at an address
//! outside every known module: the list is rebuilt (at most once a second,
//! and only if the loader's count of loads changed). A superseded list stays
//! allocated, since another thread may be walking with it.

use core::ops::Deref;
use core::ptr;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, Module, MustNotAllocateDuringUnwind, Unwinder};

use crate::sync::{AtomicPtr, AtomicU64, Lock, Ordering};

/// Section bytes of a loaded module, read where they are mapped.
#[derive(Clone, Copy, Default)]
pub(crate) struct Mapped(&'static [u8]);

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

type Uw = UnwinderX86_64<Mapped, MustNotAllocateDuringUnwind>;
/// A thread's rule cache.
pub(crate) type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

struct Known {
    unwinder: Uw,
    /// Sorted address ranges of the modules.
    ranges: Vec<(usize, usize)>,
    /// The loader's count of loads when the list was built.
    adds: u64,
}

static KNOWN: AtomicPtr<Known> = AtomicPtr::new(ptr::null_mut());
/// Serialises (re)builds.
static BUILD: Lock<()> = Lock::new(());
static LAST_REBUILD_NS: AtomicU64 = AtomicU64::new(0);

/// The build lock, for the fork handlers.
pub(crate) fn each_lock(f: &mut dyn FnMut(&crate::sync::RawLock)) {
    f(BUILD.raw());
}

fn known() -> Option<&'static Known> {
    // Acquire: pairs with the Release publication in `rebuild`.
    let k = KNOWN.load(Ordering::Acquire);
    if k.is_null() {
        return rebuild();
    }
    // SAFETY: published lists are leaked, never freed.
    Some(unsafe { &*k })
}

#[cold]
#[inline(never)]
fn rebuild() -> Option<&'static Known> {
    let _g = BUILD.lock();
    let (mods, adds) = loaded_modules();
    // Acquire: as in `known`.
    let cur = KNOWN.load(Ordering::Acquire);
    // SAFETY: published lists are never freed.
    if let Some(c) = unsafe { cur.as_ref() }
        && c.adds == adds
    {
        return Some(c);
    }
    let mut unwinder = Uw::new();
    let mut ranges = Vec::with_capacity(mods.len());
    for m in mods {
        ranges.push((m.lo, m.hi));
        unwinder.add_module(Module::new(
            String::new(),
            m.lo as u64..m.hi as u64,
            m.base as u64,
            ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma: Some(m.text.0 as u64..m.text.1 as u64),
                eh_frame_svma: Some(m.eh_frame.0 as u64..m.eh_frame.1 as u64),
                eh_frame: Some(m.eh_frame_bytes),
                eh_frame_hdr_svma: Some(m.eh_frame_hdr.0 as u64..m.eh_frame_hdr.1 as u64),
                eh_frame_hdr: Some(m.eh_frame_hdr_bytes),
                ..Default::default()
            },
        ));
    }
    ranges.sort_unstable();
    let k = Box::into_raw(Box::new(Known {
        unwinder,
        ranges,
        adds,
    }));
    // Release: the list is complete before anyone loads the pointer.
    KNOWN.store(k, Ordering::Release);
    // SAFETY: just leaked; never freed.
    Some(unsafe { &*k })
}

/// Walks the stack from the registers `(ip, sp, bp)` of a live frame of the
/// calling thread, reading only `[lo, hi)`; writes return addresses (the
/// frame of `ip` itself excluded) into `out`. `None` if the unwinder could
/// not be set up. The caller holds the reentrancy flag.
pub(crate) fn walk(
    cache: &mut Cache,
    (ip, sp, bp): (usize, usize, usize),
    (lo, hi): (usize, usize),
    out: &mut [usize],
) -> Option<usize> {
    let k = known()?;
    let mut read = |addr: u64| -> Result<u64, ()> {
        let a = addr as usize;
        if a >= lo && a.is_multiple_of(8) && a <= hi.saturating_sub(8) {
            // SAFETY: an aligned word inside the calling thread's live stack
            // [lo, hi), which is mapped and readable.
            Ok(unsafe { ptr::read_volatile(a as *const u64) })
        } else {
            Err(())
        }
    };
    let regs = UnwindRegsX86_64::new(ip as u64, sp as u64, bp as u64);
    let mut it = k.unwinder.iter_frames(ip as u64, regs, cache, &mut read);
    let _ = it.next(); // the frame of `ip` itself
    let mut n = 0;
    while n < out.len() {
        match it.next() {
            Ok(Some(f)) => {
                out[n] = f.address() as usize;
                n += 1;
            }
            _ => break,
        }
    }
    if n > 0 && n < out.len() && !k.covers(out[n - 1]) {
        maybe_rebuild(k);
    }
    Some(n)
}

impl Known {
    fn covers(&self, addr: usize) -> bool {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        i > 0 && addr < self.ranges[i - 1].1
    }
}

/// A walk ended outside every known module: look for new ones, at most once
/// a second.
#[cold]
fn maybe_rebuild(k: &Known) {
    let now = crate::sys::coarse_now_ns();
    // Relaxed: a rate limit.
    let last = LAST_REBUILD_NS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 1_000_000_000
        || LAST_REBUILD_NS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    if loaded_modules_count() != k.adds {
        rebuild();
    }
}

/// A new rule cache (about 30 KiB; allocated with the reentrancy flag set).
pub(crate) fn new_cache() -> Box<Cache> {
    Box::new(Cache::new_in())
}

struct ModInfo {
    lo: usize,
    hi: usize,
    base: usize,
    text: (usize, usize),
    eh_frame: (usize, usize),
    eh_frame_bytes: Mapped,
    eh_frame_hdr: (usize, usize),
    eh_frame_hdr_bytes: Mapped,
}

struct Collect {
    mods: Vec<ModInfo>,
    adds: u64,
}

fn loaded_modules() -> (Vec<ModInfo>, u64) {
    let mut c = Collect {
        mods: Vec::new(),
        adds: 0,
    };
    // SAFETY: the callback only reads the `dl_phdr_info` it is given (valid
    // for the call) and pushes into the `Collect` behind `data`, which lives
    // on our stack for the whole call.
    unsafe { libc::dl_iterate_phdr(Some(on_module), ptr::addr_of_mut!(c).cast()) };
    (c.mods, c.adds)
}

fn loaded_modules_count() -> u64 {
    /// # Safety
    /// Called by `dl_iterate_phdr` with a valid `info` and a `*mut u64` as `data`.
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `info` is valid for the call; `data` is the u64 below.
        unsafe { *data.cast::<u64>() = (*info).dlpi_adds };
        1 // stop after the first module: the counter is global
    }
    let mut adds = 0u64;
    // SAFETY: as in `loaded_modules`.
    unsafe { libc::dl_iterate_phdr(Some(first), ptr::addr_of_mut!(adds).cast()) };
    adds
}

/// # Safety
/// Called by `dl_iterate_phdr` with a valid `info` and the `Collect` of
/// `loaded_modules` as `data`.
unsafe extern "C" fn on_module(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the contract above.
    let (info, c) = unsafe { (&*info, &mut *data.cast::<Collect>()) };
    c.adds = info.dlpi_adds;
    // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of a loaded
    // module, valid while it stays loaded.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let base = info.dlpi_addr as usize;
    let (mut lo, mut hi, mut text, mut hdr) = (usize::MAX, 0, (0, 0), None);
    for ph in phdrs {
        let (v, len) = (ph.p_vaddr as usize, ph.p_memsz as usize);
        if ph.p_type == libc::PT_LOAD {
            lo = lo.min(v);
            hi = hi.max(v + len);
            if ph.p_flags & libc::PF_X != 0 {
                text = (v, v + len);
            }
        } else if ph.p_type == libc::PT_GNU_EH_FRAME {
            hdr = Some((v, v + len));
        }
    }
    let Some(hdr) = hdr else { return 0 };
    // The loaded segment that holds an address (svma), as its end.
    let seg_end = |svma: usize| {
        phdrs
            .iter()
            .filter(|ph| ph.p_type == libc::PT_LOAD)
            .map(|ph| (ph.p_vaddr as usize, (ph.p_vaddr + ph.p_memsz) as usize))
            .find(|&(a, b)| a <= svma && svma < b)
            .map(|(_, b)| b)
    };
    // SAFETY: the PT_GNU_EH_FRAME segment is mapped, `hdr.1 - hdr.0` bytes.
    let hdr_bytes =
        unsafe { core::slice::from_raw_parts((base + hdr.0) as *const u8, hdr.1 - hdr.0) };
    let Some(eh) = eh_frame_address(hdr_bytes, base + hdr.0).map(|a| a - base) else {
        return 0;
    };
    let Some(end) = seg_end(eh) else { return 0 };
    // SAFETY: [eh, end) lies in a loaded segment of this module.
    let eh_bytes = unsafe { core::slice::from_raw_parts((base + eh) as *const u8, end - eh) };
    c.mods.push(ModInfo {
        lo: base + lo,
        hi: base + hi,
        base,
        text,
        eh_frame: (eh, end),
        eh_frame_bytes: Mapped(eh_bytes),
        eh_frame_hdr: hdr,
        eh_frame_hdr_bytes: Mapped(hdr_bytes),
    });
    0
}

/// The address of `.eh_frame` from the `.eh_frame_hdr` at `at`: version 1,
/// then the pointer's encoding (pc-relative, data-relative or absolute; 4 or
/// 8 bytes).
fn eh_frame_address(h: &[u8], at: usize) -> Option<usize> {
    if h.len() < 12 || h[0] != 1 {
        return None;
    }
    let enc = h[1];
    let field = at + 4;
    let value = match enc & 0x0f {
        0x03 => u32::from_le_bytes(h[4..8].try_into().ok()?) as i64,
        0x0b => i32::from_le_bytes(h[4..8].try_into().ok()?) as i64,
        0x04 | 0x0c if h.len() >= 16 => i64::from_le_bytes(h[4..12].try_into().ok()?),
        _ => return None,
    };
    let base = match enc & 0x70 {
        0x00 => 0,
        0x10 => field,
        0x30 => at,
        _ => return None,
    };
    Some((base as i64).wrapping_add(value) as usize)
}
