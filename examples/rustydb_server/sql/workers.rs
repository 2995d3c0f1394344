//! The SQL workers: small, bounded thread pools in place of tokio's blocking
//! pool (up to 512 threads), one per [`Lane`]:
//!
//! * **read** — `max(2, cores)` threads for statements that never wait for
//!   the writer's lock (snapshot reads, catalog listings);
//! * **write** — 2 threads for writes that may wait for the writer's lock
//!   (at most these two wait at a time; further writes queue without a
//!   thread);
//! * **owner** — 1 thread for the statements, commit and rollback of the
//!   transaction that holds the writer's lock. Writes waiting for that lock
//!   never occupy this thread, so they cannot starve the commit that would
//!   release it.
//!
//! [`Lane::Inline`] (a point read) runs on the calling task's thread: no hop.
//! A commit's wait for the log is asynchronous ([`SqlEngine::durable`]), so
//! it holds no worker either: any number of commits can wait for the same
//! `fdatasync` (group commit) while the workers go on.
//!
//! [`SqlEngine::durable`]: crate::server::sql::engine::SqlEngine::durable

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::server::sql::engine::Lane;

type Job = Box<dyn FnOnce() + Send>;

/// One pool.
#[derive(Debug)]
struct Pool {
    tx: Sender<Job>,
    threads: usize,
    queued: Arc<AtomicU64>,
    busy: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
}

impl Pool {
    fn new(name: &str, threads: usize) -> Pool {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicU64::new(0));
        let busy = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        for i in 0..threads {
            let (rx, queued, busy, done) = (rx.clone(), queued.clone(), busy.clone(), done.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("rustydb-sql-{name}-{i}"))
                .spawn(move || worker(&rx, &queued, &busy, &done));
            if spawned.is_err() {
                break;
            }
        }
        Pool {
            tx,
            threads,
            queued,
            busy,
            done,
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, queued: &AtomicU64, busy: &AtomicU64, done: &AtomicU64) {
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(e) => e.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        queued.fetch_sub(1, Ordering::Relaxed);
        busy.fetch_add(1, Ordering::Relaxed);
        // A panic is caught by the job itself (see `run`).
        job();
        busy.fetch_sub(1, Ordering::Relaxed);
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Figures of one pool.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolStats {
    /// Its lane.
    pub lane: &'static str,
    /// Threads.
    pub threads: usize,
    /// Jobs running now.
    pub busy: u64,
    /// Jobs waiting for a thread now.
    pub queued: u64,
    /// Jobs run since start.
    pub completed: u64,
}

/// The three pools.
#[derive(Debug)]
pub struct Workers {
    read: Pool,
    write: Pool,
    owner: Pool,
}

impl Workers {
    /// Pools of the given sizes.
    pub fn new(read: usize, write: usize) -> Workers {
        Workers {
            read: Pool::new("read", read.max(1)),
            write: Pool::new("write", write.max(1)),
            owner: Pool::new("owner", 1),
        }
    }

    /// The process's workers: `max(2, cores)` readers, 2 writers, 1 owner.
    pub fn global() -> &'static Workers {
        static W: OnceLock<Workers> = OnceLock::new();
        W.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            Workers::new(cores.max(2), 2)
        })
    }

    /// Runs `f` in `lane` and waits for it without holding the caller's
    /// thread; `Err` if it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let pool = match lane {
            Lane::Inline => {
                return std::panic::catch_unwind(AssertUnwindSafe(f))
                    .map_err(|_| "the SQL engine panicked".to_string());
            }
            Lane::Read => &self.read,
            Lane::Write => &self.write,
            Lane::Owner => &self.owner,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        pool.queued.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        });
        if pool.tx.send(job).is_err() {
            pool.queued.fetch_sub(1, Ordering::Relaxed);
            return Err("the SQL workers are gone".into());
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("the SQL engine panicked".into()),
            Err(_) => Err("the statement was cancelled".into()),
        }
    }

    /// Figures of each pool.
    pub fn stats(&self) -> Vec<PoolStats> {
        [
            ("read", &self.read),
            ("write", &self.write),
            ("owner", &self.owner),
        ]
        .into_iter()
        .map(|(lane, p)| PoolStats {
            lane,
            threads: p.threads,
            busy: p.busy.load(Ordering::Relaxed),
            queued: p.queued.load(Ordering::Relaxed),
            completed: p.done.load(Ordering::Relaxed),
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_run_jobs_and_a_blocked_lane_does_not_block_the_others() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let w = Workers::new(2, 1);
        rt.block_on(async {
            assert_eq!(w.run(Lane::Inline, || 1).await, Ok(1));
            // The single write thread is stuck until released…
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let stuck = w.run(Lane::Write, move || wait.recv().is_ok());
            // …while reads and the owner lane go on.
            let others = async {
                assert_eq!(w.run(Lane::Read, || 2).await, Ok(2));
                assert_eq!(w.run(Lane::Owner, || 3).await, Ok(3));
                assert!(
                    w.run(Lane::Read, || -> u8 { panic!("boom") })
                        .await
                        .is_err()
                );
                release.send(()).unwrap();
            };
            let (r, ()) = tokio::join!(stuck, others);
            assert_eq!(r, Ok(true));
        });
        // A worker counts a job after handing over its result: wait for it.
        let t0 = std::time::Instant::now();
        while w.stats()[0].completed < 2 && t0.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let s = w.stats();
        assert_eq!(s[0].threads, 2);
        assert!(s[0].completed >= 2, "{s:?}");
        assert_eq!(s[1].queued, 0);
    }
}
