//! Components: a thread tags its allocations with a component ("query_exec",
//! "wal", …); the debugger keeps live bytes, count, peak and totals per component.
//! Names live in a fixed table (no allocation); id 0 is "untagged".

use super::threads;
use crate::sync::{Lock, RawLock};

pub(crate) use super::counters::Counters;

/// Components that can be told apart (further names share the last id).
pub const MAX_COMPONENTS: usize = 256;
const NAME_LEN: usize = 47;

struct Names {
    count: usize,
    names: [[u8; NAME_LEN + 1]; MAX_COMPONENTS],
}

static NAMES: Lock<Names> = Lock::new(Names {
    count: 1,
    names: [[0; NAME_LEN + 1]; MAX_COMPONENTS],
});

/// The name table's lock, for the fork handlers.
pub(crate) fn each_lock(f: &mut dyn FnMut(&RawLock)) {
    f(NAMES.raw());
}

/// The id of component `name` (interned; names longer than 47 bytes are cut).
pub(crate) fn intern(name: &str) -> u16 {
    let b = &name.as_bytes()[..name.len().min(NAME_LEN)];
    let mut n = NAMES.lock();
    for id in 1..n.count {
        let e = &n.names[id];
        if e[NAME_LEN] as usize == b.len() && &e[..b.len()] == b {
            return id as u16;
        }
    }
    if n.count == MAX_COMPONENTS {
        return (MAX_COMPONENTS - 1) as u16;
    }
    let id = n.count;
    n.names[id][..b.len()].copy_from_slice(b);
    n.names[id][NAME_LEN] = b.len() as u8;
    n.count += 1;
    id as u16
}

/// The name of component `id`.
pub(crate) fn name(id: u16) -> String {
    if id == 0 {
        return "untagged".into();
    }
    let mut buf = [0u8; NAME_LEN];
    let len = {
        let n = NAMES.lock();
        let e = &n.names[id as usize];
        let len = e[NAME_LEN] as usize;
        buf[..len].copy_from_slice(&e[..len]);
        len
    };
    // Formatted after the lock is released: the String's allocation may take
    // other locks.
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Tags the calling thread's allocations with a component until dropped
/// (restoring the previous one).
#[derive(Debug)]
#[must_use = "the component applies only while the guard lives"]
pub struct ComponentGuard {
    prev: u16,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for ComponentGuard {
    fn drop(&mut self) {
        threads::with(|t| t.component.set(self.prev));
    }
}

/// Tags this thread's allocations with `name` while the guard lives.
pub fn component(name: &str) -> ComponentGuard {
    let id = intern(name);
    let prev = threads::with(|t| t.component.replace(id));
    ComponentGuard {
        prev,
        _not_send: core::marker::PhantomData,
    }
}

/// Runs `f` with this thread's allocations tagged `name`.
pub fn with_component<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let _g = component(name);
    f()
}

/// Figures of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ComponentStats {
    /// The component's name (`untagged` for id 0).
    pub name: String,
    /// Bytes live now.
    pub live_bytes: u64,
    /// Blocks live now.
    pub live_count: u64,
    /// Highest live bytes seen.
    pub peak_bytes: u64,
    /// Bytes ever allocated.
    pub total_bytes: u64,
    /// Blocks ever allocated.
    pub total_count: u64,
}
