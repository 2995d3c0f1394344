//! Shared pieces of the workloads: a deterministic generator, self-checking
//! blocks, thread fan-out and allocation-free readings of `/proc/self/status`.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error, realloc};
use std::io::Read;
use std::ptr::NonNull;

/// Ends the run at once with a failure (exit code 2): a wrong answer must fail
/// the run, and a panicking worker could leave its peers blocked.
#[cold]
pub fn fail(msg: &str) -> ! {
    eprintln!("alloc-suite: CHECK FAILED: {msg}");
    std::process::exit(2)
}

/// SplitMix64: deterministic, so every allocator sees the same requests.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed ^ 0x05EE_D0FA_110C))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

/// The SplitMix64 finaliser: a bijection on `u64`.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Alignment of every [`Blk`] (what C's `malloc` callers rely on at most for
/// these sizes; every allocator here serves ≤ 16 the same way).
pub const BLK_ALIGN: usize = 8;
/// Smallest block: room for the 8-byte stamp and the tag byte.
pub const BLK_MIN: usize = 16;

/// A block from the global allocator that checks itself: its first 8 bytes hold
/// a stamp (`len << 32 | id`), its last byte a tag derived from the stamp. A
/// block handed out twice, overlapping another or corrupted by the allocator's
/// own metadata fails the check when it is freed.
pub struct Blk(NonNull<u8>);

// SAFETY: a `Blk` owns its memory exclusively; the global allocator accepts frees
// from any thread.
unsafe impl Send for Blk {}

#[inline]
fn tag(stamp: u64) -> u8 {
    ((stamp >> 32) as u8 ^ stamp as u8 ^ 0xA5) | 1
}

impl Blk {
    #[inline]
    fn layout(len: usize) -> Layout {
        match Layout::from_size_align(len, BLK_ALIGN) {
            Ok(l) => l,
            Err(_) => fail("block layout"),
        }
    }

    /// Allocates `len` (≥ 16, < 4 GiB) bytes and stamps them with `id`.
    #[inline]
    pub fn new(len: usize, id: u32) -> Blk {
        debug_assert!((BLK_MIN..1 << 32).contains(&len));
        let layout = Self::layout(len);
        // SAFETY: non-zero size.
        let p = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(p) else {
            handle_alloc_error(layout)
        };
        let b = Blk(p);
        b.stamp_with(len, id);
        b
    }

    #[inline]
    fn stamp_with(&self, len: usize, id: u32) {
        let stamp = (len as u64) << 32 | u64::from(id);
        // SAFETY: the block is at least 16 bytes long and owned by `self`.
        unsafe {
            self.0.as_ptr().cast::<u64>().write_unaligned(stamp);
            self.0.as_ptr().add(len - 1).write(tag(stamp));
        }
    }

    #[inline]
    fn stamp(&self) -> u64 {
        // SAFETY: the first 8 bytes are the stamp.
        unsafe { self.0.as_ptr().cast::<u64>().read_unaligned() }
    }

    /// Checks the stamp and the tag; returns `(len, id)`.
    #[inline]
    pub fn check(&self) -> (usize, u32) {
        let s = self.stamp();
        let len = (s >> 32) as usize;
        if len < BLK_MIN {
            fail("block stamp overwritten");
        }
        // SAFETY: `len` is the block's length (stamp intact so far).
        let t = unsafe { self.0.as_ptr().add(len - 1).read() };
        if t != tag(s) {
            fail("block tail overwritten");
        }
        (len, s as u32)
    }

    /// Checks and frees the block; returns its id.
    #[inline]
    pub fn free(self) -> u32 {
        let (len, id) = self.check();
        // SAFETY: allocated with this layout (the stamp's length), freed once.
        unsafe { dealloc(self.0.as_ptr(), Self::layout(len)) };
        id
    }

    /// Checks the block, reallocates it to `new_len` (≥ 16) and checks that the
    /// stamp moved with it; then re-stamps it.
    pub fn realloc(self, new_len: usize, id: u32) -> Blk {
        let (len, _) = self.check();
        let old = self.stamp();
        // SAFETY: allocated with this layout; `new_len` is non-zero and valid.
        let p = unsafe { realloc(self.0.as_ptr(), Self::layout(len), new_len) };
        let Some(p) = NonNull::new(p) else {
            handle_alloc_error(Self::layout(new_len))
        };
        let b = Blk(p);
        if b.stamp() != old {
            fail("realloc lost the block's contents");
        }
        b.stamp_with(new_len, id);
        b
    }

    /// The raw pointer (the block is not freed).
    pub fn into_raw(self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// Takes back a pointer from [`Blk::into_raw`]; `None` for null.
    ///
    /// # Safety
    /// `p` is null or came from `into_raw` and is not owned by anyone else.
    pub unsafe fn from_raw(p: *mut u8) -> Option<Blk> {
        NonNull::new(p).map(Blk)
    }
}

/// Runs `f(thread_index)` on `threads` scoped threads, returns the results in order.
pub fn par<R: Send>(threads: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1)).map(|t| s.spawn(move || f(t))).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| fail("worker panicked")))
            .collect()
    })
}

/// A field of `/proc/self/status` in KiB (e.g. `"VmHWM:"`), read into a stack
/// buffer: the reading itself allocates nothing, so it cannot move what it reads
/// (nor wake an allocator's deferred purge during the idle measurement).
pub fn status_kib(field: &str) -> u64 {
    let mut buf = [0u8; 8192];
    let mut len = 0;
    let Ok(mut f) = std::fs::File::open("/proc/self/status") else {
        return 0;
    };
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let text = &buf[..len];
    for line in text.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(field.as_bytes()) {
            let mut v = 0u64;
            for &b in rest {
                if b.is_ascii_digit() {
                    v = v * 10 + u64::from(b - b'0');
                } else if v != 0 {
                    break;
                }
            }
            return v;
        }
    }
    0
}

/// CPU time (user + system) of the whole process so far.
pub fn cpu_time() -> std::time::Duration {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::time::Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime))
}
