//! Call stacks: captured as raw return addresses (no symbols, no
//! allocation), deduplicated in the [`depot`], resolved to names only when a
//! report or profile is made ([`resolve`]).
//!
//! Capture starts from the registers of the allocating frame (read by
//! [`Regs::here`], inlined into the allocator's entry) and walks outwards with
//! one of:
//! - **frame pointers** ([`fp`]): a few loads per frame; right only when the
//!   whole program was built with `-C force-frame-pointers=yes`;
//! - **cached DWARF** ([`dwarf`], x86_64 Linux): framehop's rule cache over
//!   `.eh_frame`; right for any binary with unwind tables (Rust's default);
//! - **libgcc** (`backtrace`'s unsynchronised trace): the fallback, and the
//!   only walker on other targets.
//!
//! `Unwind::Auto` (the default) calibrates: the first captures walk both ways
//! and compare; if frame pointers agree with DWARF every time, they are used
//! from then on, otherwise DWARF. `RUSTYDB_MEM_UNWIND=fp|dwarf|libgcc|auto` or
//! [`set_unwind`] chooses explicitly.

pub(crate) mod depot;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod dwarf;
mod fp;
mod resolve;

pub(crate) use depot::{MAX_FRAMES, frames};
pub(crate) use resolve::{Frame, is_internal, resolve, resolve_ip};

use super::threads;
use crate::sync::{AtomicU8, AtomicU32, Ordering};

/// How the debugger walks call stacks (process-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Unwind {
    /// Calibrate: frame pointers if they agree with DWARF on the first
    /// captures, DWARF otherwise (the default).
    Auto,
    /// Frame-pointer walking (build with `-C force-frame-pointers=yes`).
    FramePointers,
    /// framehop's cached DWARF unwinder (x86_64 Linux; elsewhere libgcc).
    Dwarf,
    /// libgcc's unwinder through `backtrace` (slow; the last resort).
    Libgcc,
}

impl Unwind {
    /// Parses `auto`, `fp`, `dwarf`, `libgcc`.
    pub fn parse(s: &[u8]) -> Option<Unwind> {
        Some(match s {
            b"auto" => Unwind::Auto,
            b"fp" | b"frame-pointers" => Unwind::FramePointers,
            b"dwarf" => Unwind::Dwarf,
            b"libgcc" => Unwind::Libgcc,
            _ => return None,
        })
    }
}

const M_UNSET: u8 = 0;
const M_AUTO: u8 = 1;
const M_FP: u8 = 2;
const M_DWARF: u8 = 3;
const M_LIBGCC: u8 = 4;

static MODE: AtomicU8 = AtomicU8::new(M_UNSET);
/// Captures on which frame pointers agreed with DWARF (while calibrating).
static AGREED: AtomicU32 = AtomicU32::new(0);
/// Agreeing captures needed to choose frame pointers.
const CALIBRATION: u32 = 8;

/// Chooses how stacks are walked from now on (all `DebugAlloc`s).
pub fn set_unwind(u: Unwind) {
    let m = match u {
        Unwind::Auto => {
            AGREED.store(0, Ordering::Relaxed);
            M_AUTO
        }
        Unwind::FramePointers => M_FP,
        Unwind::Dwarf => M_DWARF,
        Unwind::Libgcc => M_LIBGCC,
    };
    // Relaxed: a mode flag.
    MODE.store(m, Ordering::Relaxed);
}

/// The walker in use: `Auto` while calibrating, then the one it chose.
pub fn unwind() -> Unwind {
    match mode() {
        M_FP => Unwind::FramePointers,
        M_DWARF => Unwind::Dwarf,
        M_LIBGCC => Unwind::Libgcc,
        _ => Unwind::Auto,
    }
}

#[inline]
fn mode() -> u8 {
    // Relaxed: a mode flag.
    let m = MODE.load(Ordering::Relaxed);
    if m != M_UNSET {
        return m;
    }
    mode_from_env()
}

#[cold]
fn mode_from_env() -> u8 {
    // SAFETY: getenv with a NUL-terminated name; the value is read at once.
    let p = unsafe { libc::getenv(c"RUSTYDB_MEM_UNWIND".as_ptr()) };
    let u = if p.is_null() {
        Unwind::Auto
    } else {
        // SAFETY: a non-null getenv result is a C string.
        Unwind::parse(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes()).unwrap_or(Unwind::Auto)
    };
    let _ = MODE.compare_exchange(M_UNSET, M_AUTO, Ordering::Relaxed, Ordering::Relaxed);
    if u != Unwind::Auto {
        set_unwind(u);
    }
    MODE.load(Ordering::Relaxed)
}

/// The registers a walk starts from: an instruction pointer inside a live
/// frame of the calling thread, and that frame's stack and frame pointers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Regs {
    ip: usize,
    sp: usize,
    fp: usize,
}

impl Regs {
    /// The registers of the calling function's frame (inlined into it, so the
    /// walk starts at its caller: the allocator's own frames are not kept).
    #[inline(always)]
    pub(crate) fn here() -> Regs {
        #[cfg(target_arch = "x86_64")]
        {
            let (ip, sp, fp): (usize, usize, usize);
            // SAFETY: reads rip, rsp and rbp into registers; touches no memory,
            // no stack, no flags.
            unsafe {
                core::arch::asm!(
                    "lea {ip}, [rip]",
                    "mov {sp}, rsp",
                    "mov {fp}, rbp",
                    ip = out(reg) ip,
                    sp = out(reg) sp,
                    fp = out(reg) fp,
                    options(nomem, nostack, preserves_flags)
                );
            }
            Regs { ip, sp, fp }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let here = 0u8;
            let sp = core::ptr::addr_of!(here) as usize;
            Regs { ip: 0, sp, fp: 0 }
        }
    }
}

/// Captures the stack above the frame of `r` (at most `max` frames) and
/// returns its depot id (0 if none could be taken). The caller holds the
/// reentrancy flag: a walker's first use allocates.
pub(crate) fn capture(r: &Regs, max: usize) -> u32 {
    let mut ips = [0usize; MAX_FRAMES];
    let n = walk(r, &mut ips[..max.min(MAX_FRAMES)]);
    depot::intern(&ips[..n])
}

/// Walks with the chosen walker; returns the frames written into `out`.
pub(crate) fn walk(r: &Regs, out: &mut [usize]) -> usize {
    let Some(bounds) = threads::stack_bounds(r.sp) else {
        return libgcc(r, out);
    };
    match mode() {
        M_FP => match fp::walk(r.fp, bounds.0, bounds.1, out) {
            0 => dwarf_walk(r, bounds, out),
            n => n,
        },
        M_LIBGCC => libgcc(r, out),
        M_AUTO => calibrate(r, bounds, out),
        _ => dwarf_walk(r, bounds, out),
    }
}

/// Walks both ways, returns the DWARF stack, and decides once enough
/// captures agreed (or one did not).
#[cold]
fn calibrate(r: &Regs, bounds: (usize, usize), out: &mut [usize]) -> usize {
    let n = dwarf_walk(r, bounds, out);
    let mut by_fp = [0usize; MAX_FRAMES];
    let m = fp::walk(r.fp, bounds.0, bounds.1, &mut by_fp[..out.len()]);
    let common = out[..n]
        .iter()
        .zip(&by_fp[..m])
        .take_while(|(a, b)| a == b)
        .count();
    // The outermost frames may differ (libc's start routines have no frame
    // pointer, so the chain can end early or with a stray link there).
    let agree = common >= 2 && common + 2 >= n;
    // Relaxed: a mode decision; a racing capture may decide the same.
    if !agree {
        let _ = MODE.compare_exchange(M_AUTO, M_DWARF, Ordering::Relaxed, Ordering::Relaxed);
    } else if AGREED.fetch_add(1, Ordering::Relaxed) + 1 >= CALIBRATION {
        let _ = MODE.compare_exchange(M_AUTO, M_FP, Ordering::Relaxed, Ordering::Relaxed);
    }
    n
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn dwarf_walk(r: &Regs, bounds: (usize, usize), out: &mut [usize]) -> usize {
    let walked = threads::with(|t| {
        let mut c = t.unwind_cache.get();
        if c.is_null() {
            if threads::slot() == threads::SHARED {
                return None; // no exit hook would free a cache: use libgcc
            }
            c = Box::into_raw(dwarf::new_cache()).cast();
            t.unwind_cache.set(c);
        }
        // SAFETY: the cache is this thread's (created above for it, freed only
        // at its exit) and not in use: captures do not nest (they run with the
        // reentrancy flag set, and nothing they call captures).
        let cache = unsafe { &mut *c.cast::<dwarf::Cache>() };
        dwarf::walk(cache, (r.ip, r.sp, r.fp), bounds, out)
    });
    match walked {
        Some(n) if n > 0 => n,
        _ => libgcc(r, out),
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn dwarf_walk(r: &Regs, _bounds: (usize, usize), out: &mut [usize]) -> usize {
    libgcc(r, out)
}

/// Frees a thread's unwind cache at its exit.
pub(crate) fn free_cache(c: *mut u8) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if !c.is_null() {
        // SAFETY: `c` came from `Box::into_raw` in `dwarf_walk` and the thread
        // that owned it is exiting (its pointer was just cleared).
        drop(unsafe { Box::from_raw(c.cast::<dwarf::Cache>()) });
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let _ = c;
}

/// libgcc's unwinder: keeps the frames outside the frame of `r` — those
/// whose stack pointer (`_Unwind_GetGR(rsp)`: the frame's own, at its call)
/// is above `r.sp`; the capture's frames and the frame of `r` itself are at
/// or below it.
fn libgcc(r: &Regs, out: &mut [usize]) -> usize {
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` is unsafe only because it skips
    // backtrace's global lock (what makes dhat deadlock, dhat-rs #25/#38):
    // concurrent unwinds only read the unwind tables, which libgcc supports.
    unsafe {
        backtrace::trace_unsynchronized(|f| {
            if r.ip != 0 && f.sp() as usize <= r.sp {
                return true;
            }
            if n < out.len() {
                out[n] = f.ip() as usize;
                n += 1;
            }
            n < out.len()
        });
    }
    n
}

/// The walkers' locks, for the fork handlers.
pub(crate) fn each_lock(f: &mut dyn FnMut(&crate::sync::RawLock)) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    dwarf::each_lock(f);
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let _ = f;
}
