//! The optional background flusher: a thread that wakes every `interval`,
//! writes dirty pages of the cooling stage (the next to be evicted, so
//! eviction finds them clean) and then up to `budget` other dirty pages,
//! skipping any page that is pinned or latched. It holds only a weak
//! reference to the pool and stops when the pool is dropped.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sync::{AtomicBool, Ordering, lock};

use super::pool::Shared;

/// The running flusher.
#[derive(Debug)]
pub(crate) struct Handle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts the flusher for `shared`.
pub(crate) fn start(shared: &Arc<Shared>, interval: Duration, budget: usize) -> Result<()> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("rustydb-bp-flusher".into())
        .spawn(move || {
            let mut cursor = 0;
            loop {
                std::thread::park_timeout(interval);
                // SeqCst: the stop flag; rare and cheap.
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Some(s) = weak.upgrade() else { break };
                s.flush_round(&mut cursor, budget);
                // Dropping the last handle here runs the pool's Drop on this
                // thread; `stop` then does not join itself.
                drop(s);
            }
        })
        .map_err(|e| Error::Os {
            op: "spawn flusher",
            errno: e.raw_os_error().unwrap_or(libc::EAGAIN),
        })?;
    *lock(&shared.flusher) = Some(Handle { stop, thread });
    Ok(())
}

/// Stops the flusher (and waits for it, unless called on it).
pub(crate) fn stop(shared: &Shared) {
    let Some(h) = lock(&shared.flusher).take() else {
        return;
    };
    // SeqCst: the stop flag.
    h.stop.store(true, Ordering::SeqCst);
    h.thread.thread().unpark();
    if h.thread.thread().id() != std::thread::current().id() {
        let _ = h.thread.join();
    }
}

/// Default pages per round beyond the cooling stage.
pub(crate) const DEFAULT_BUDGET: usize = 256;
