//! The thread-exit hook of the thread caches, armed once per thread when its
//! cache is registered.
//!
//! Why not a `thread_local!` with `Drop` (Rust's own mechanism): registering a
//! Rust TLS destructor pushes onto a per-thread list that std allocates with
//! `System` — libc's `malloc`. When this allocator *is* libc's `malloc` (the
//! preloaded C library), that push re-enters the allocator in the middle of the
//! registration and std aborts ("the System allocator may not use TLS with
//! destructors").
//!
//! On glibc the hook is registered with `__cxa_thread_atexit_impl`, the call
//! behind C++ `thread_local` destructors. It allocates its list node with
//! `calloc` — which the caller serves without a cache (its cache is marked
//! *registering*) — and links the node only after that `calloc` returned, so a
//! registration nested in another one loses nothing.
//!
//! A `pthread` key is not used on glibc because it is not safe there: keys past
//! the first 32 keep their values in blocks that `pthread_setspecific`
//! allocates with `calloc` *before* storing the block. If a thread's first
//! allocation is that `calloc` (the program setting its own high key), our
//! registration nested inside it sets our key in a block of its own, which the
//! outer call then overwrites: our destructor would never run, and the
//! registry would keep the dead thread's cache. Other C libraries, whose
//! runtimes this was not measured on, use a key created on first use.
//!
//! glibc runs these destructors first at thread exit (`__call_tls_dtors`), then
//! the `pthread` key destructors, whose frees find the cache dead and go
//! straight to the slabs. The main thread's hook does nothing: it runs in
//! `exit`, where flushing the cache only slows the program's last frees, and
//! the main thread's TLS outlives every other thread, so its cache may stay
//! registered.

use core::ffi::c_void;

/// Arranges for [`super::cache_registry::thread_exited`] to run when the calling
/// thread exits. False if it cannot be arranged: the caller then leaves the
/// thread uncached.
///
/// May allocate once (see the module note): the caller's cache must already be
/// in a state that serves nested allocations without it.
#[cfg(target_env = "gnu")]
pub(crate) fn arm() -> bool {
    unsafe extern "C" {
        /// glibc (since 2.18): registers `dtor(obj)` to run at thread exit;
        /// `dso` names the object whose code `dtor` is (kept loaded till then).
        fn __cxa_thread_atexit_impl(
            dtor: unsafe extern "C" fn(*mut c_void),
            obj: *mut c_void,
            dso: *mut c_void,
        ) -> i32;
    }
    // SAFETY: `on_exit` is an `extern "C"` function that never unwinds and
    // ignores its argument; its own address identifies this object's code. glibc
    // aborts the process rather than return failure, so 0 is the only result.
    unsafe { __cxa_thread_atexit_impl(on_exit, core::ptr::null_mut(), on_exit as *mut c_void) == 0 }
}

#[cfg(not(target_env = "gnu"))]
pub(crate) fn arm() -> bool {
    key::arm()
}

/// The destructor: runs at the calling thread's exit, with its TLS in place.
///
/// # Safety
///
/// Called only by the C runtime's thread-exit machinery (registered by
/// `arm`), on the exiting thread, while its thread-locals are still in place;
/// the argument is ignored.
unsafe extern "C" fn on_exit(_unused: *mut c_void) {
    // SAFETY: both calls have no preconditions.
    let main_thread = unsafe { libc::getpid() == libc::gettid() };
    if !main_thread {
        super::cache_registry::thread_exited();
    }
}

/// The portable hook: a `pthread` key with a destructor (see the module note
/// for why glibc does not use it).
#[cfg(not(target_env = "gnu"))]
mod key {
    use core::ffi::c_void;

    use crate::sync::{AtomicU32, Ordering};

    /// 0: not created; 1: being created; 2: created, `KEY` valid; 3: failed.
    static STATE: AtomicU32 = AtomicU32::new(0);
    static KEY: AtomicU32 = AtomicU32::new(0);

    fn key() -> Option<libc::pthread_key_t> {
        loop {
            // Acquire: pairs with the Release store below, so `KEY` is read after it.
            match STATE.load(Ordering::Acquire) {
                // Relaxed: published by STATE's Release store.
                2 => return Some(KEY.load(Ordering::Relaxed) as libc::pthread_key_t),
                3 => return None,
                0 => {
                    if STATE
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
                        .is_ok()
                    {
                        let mut k: libc::pthread_key_t = 0;
                        // SAFETY: `k` is a valid out-parameter; `on_key_exit` never unwinds.
                        let ok =
                            unsafe { libc::pthread_key_create(&mut k, Some(on_key_exit)) } == 0;
                        KEY.store(k as u32, Ordering::Relaxed);
                        // Release: publishes KEY.
                        STATE.store(if ok { 2 } else { 3 }, Ordering::Release);
                    }
                }
                _ => crate::sync::spin_hint(),
            }
        }
    }

    pub(super) fn arm() -> bool {
        let Some(k) = key() else { return false };
        // Any non-null value: only its presence makes the destructor run.
        let token = core::ptr::NonNull::<u8>::dangling()
            .as_ptr()
            .cast::<c_void>();
        // SAFETY: `k` is a key created by `pthread_key_create`.
        unsafe { libc::pthread_setspecific(k, token) == 0 }
    }

    /// The pthread key's destructor.
    ///
    /// # Safety
    ///
    /// Called only by pthreads at the exiting thread's end, as `on_exit`.
    unsafe extern "C" fn on_key_exit(token: *mut c_void) {
        // SAFETY: forwarded; the argument is unused.
        unsafe { super::on_exit(token) }
    }
}
