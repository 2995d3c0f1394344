//! The concurrency shim: every atomic, lock and shared cell of the crate comes from
//! here, so that `--cfg rustydb_loom` can swap them for loom's model-checked versions
//! (the crossbeam / tokio pattern).
//!
//! Under loom only the parts that are model-checked (the magazine ⇄ depot exchange)
//! are compiled; the process-wide statics of the global allocator need `const`
//! constructors that loom's types do not have.

mod lock;
mod owned;

pub(crate) use lock::RawLock;
#[allow(unused_imports)] // named by code that holds a guard in a field or signature
pub(crate) use owned::{Lock, LockGuard};

/// Blocking locks for the parts above the allocator (pressure, buffer pool,
/// manager), where a poisoned lock is recovered rather than propagated.
#[cfg(not(rustydb_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard, RwLock};

/// Locks `m`, recovering the data if a panicking thread poisoned it (every
/// structure guarded this way stays consistent between statements).
#[cfg(not(rustydb_loom))]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(not(rustydb_loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
    Ordering, fence,
};

#[cfg(rustydb_loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
    Ordering, fence,
};

/// `UnsafeCell` with loom's closure API, so the same code runs under both.
#[cfg(not(rustydb_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(rustydb_loom))]
impl<T> UnsafeCell<T> {
    /// A new cell holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(rustydb_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Spin hint / yield point: a real `spin_loop` hint in production, a loom yield
/// under the model checker (so spin loops terminate in the model).
#[inline(always)]
pub(crate) fn spin_hint() {
    #[cfg(not(rustydb_loom))]
    core::hint::spin_loop();
    #[cfg(rustydb_loom)]
    loom::thread::yield_now();
}
