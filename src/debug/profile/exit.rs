//! `RUSTYDB_MEM_PROFILE=path`: a heap profile of the live heap is written at
//! exit (an `atexit` handler, armed when a `DebugAlloc` first maps its state).
//! The format follows the name (`.pb.gz`, `.pb`, `.pprof`: pprof; otherwise
//! dhat JSON). With several `DebugAlloc`s, the first writes `path` and the
//! others `path.1`, `path.2`, …

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{ProfileFormat, ProfileScope};
use crate::debug::state;
use crate::debug::threads::guarded;
use crate::sync::{AtomicU8, Lock, Ordering};

const UNCHECKED: u8 = 0;
const ARMED: u8 = 1;
const UNSET: u8 = 2;

static STATUS: AtomicU8 = AtomicU8::new(UNCHECKED);
/// The path, copied out of the environment (NUL-terminated).
static PATH: Lock<[u8; 4096]> = Lock::new([0; 4096]);

/// Reads `RUSTYDB_MEM_PROFILE` once and, if set, registers the exit handler.
/// Allocates nothing (it runs inside the allocator).
pub(crate) fn arm() {
    // Relaxed: a once-flag; a racing second reader repeats the same work.
    if STATUS.load(Ordering::Relaxed) != UNCHECKED {
        return;
    }
    // SAFETY: getenv with a NUL-terminated name; the value is copied at once.
    let p = unsafe { libc::getenv(c"RUSTYDB_MEM_PROFILE".as_ptr()) };
    if p.is_null() {
        STATUS.store(UNSET, Ordering::Relaxed);
        return;
    }
    // SAFETY: a non-null getenv result is a C string.
    let v = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
    if v.is_empty() || v.len() >= 4096 {
        STATUS.store(UNSET, Ordering::Relaxed);
        return;
    }
    if STATUS
        .compare_exchange(UNCHECKED, ARMED, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    {
        let mut path = PATH.lock();
        path[..v.len()].copy_from_slice(v);
        path[v.len()] = 0;
    }
    // SAFETY: registers an `extern "C"` function without arguments; glibc may
    // allocate its handler list with its own malloc, not through this allocator.
    unsafe { libc::atexit(write_at_exit) };
}

extern "C" fn write_at_exit() {
    // A panic must not cross the C boundary; a failure is reported on stderr.
    let _ = std::panic::catch_unwind(|| guarded(write_all));
}

fn write_all() {
    let bytes = {
        let p = PATH.lock();
        let n = p.iter().position(|&b| b == 0).unwrap_or(0);
        p[..n].to_vec()
    };
    let base = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
    let mut i = 0;
    state::for_each(|s| {
        let path = if i == 0 {
            base.clone()
        } else {
            let mut p = base.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        i += 1;
        let r = std::fs::File::create(&path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            super::write(
                s,
                &mut w,
                ProfileFormat::for_path(&path),
                ProfileScope::Live,
            )?;
            std::io::Write::flush(&mut w)
        });
        match r {
            Ok(()) => eprintln!("rustydb-memory: heap profile written to {}", path.display()),
            Err(e) => eprintln!(
                "rustydb-memory: could not write the heap profile to {}: {e}",
                path.display()
            ),
        }
    });
}
