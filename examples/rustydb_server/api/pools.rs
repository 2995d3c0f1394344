//! Admission pools: the seed's `default` and `readonly` connection pools,
//! made real. A pool holds *slots* (the server's execution connections): a
//! request takes a slot for as long as it runs — reads (`GET`) from
//! `readonly`, everything else from `default` — waiting up to
//! `connection_timeout_secs` when all `max_connections` are busy (then 503).
//! `min_connections` slots are created at start and kept; slots idle longer
//! than `idle_timeout_secs` above the minimum are destroyed. Every counter
//! counts what happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::server::api::problem::Problem;

/// A pool's configuration (the seed's shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PoolConfig {
    /// `default` or `readonly`.
    pub pool_id: String,
    /// Slots kept even when idle.
    pub min_connections: u32,
    /// Slots at most (requests beyond wait).
    pub max_connections: u32,
    /// How long a request waits for a slot before a 503.
    pub connection_timeout_secs: u64,
    /// Idle slots above the minimum are destroyed after this.
    pub idle_timeout_secs: u64,
}

/// The seed's pools.
pub fn default_configs() -> Vec<PoolConfig> {
    vec![
        PoolConfig {
            pool_id: "default".into(),
            min_connections: 10,
            max_connections: 100,
            connection_timeout_secs: 30,
            idle_timeout_secs: 600,
        },
        PoolConfig {
            pool_id: "readonly".into(),
            min_connections: 5,
            max_connections: 50,
            connection_timeout_secs: 15,
            idle_timeout_secs: 300,
        },
    ]
}

/// A pool's counters (the seed's shape, plus a few).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolStats {
    /// Pool id.
    pub pool_id: String,
    /// Slots serving a request now.
    pub active_connections: u64,
    /// Slots created and free.
    pub idle_connections: u64,
    /// Active + idle.
    pub total_connections: u64,
    /// Requests waiting for a slot now.
    pub waiting_requests: u64,
    /// Slots handed out since start.
    pub total_acquired: u64,
    /// Slots created since start.
    pub total_created: u64,
    /// Slots destroyed since start.
    pub total_destroyed: u64,
    /// Requests refused after waiting `connection_timeout_secs`.
    pub total_timeouts: u64,
    /// Mean wait for a slot, ms.
    pub avg_wait_ms: f64,
    /// Longest wait for a slot, ms.
    pub max_wait_ms: f64,
    /// The limit.
    pub max_connections: u32,
}

#[derive(Debug)]
struct Slot {
    last_used: Instant,
}

/// One pool.
#[derive(Debug)]
pub struct Pool {
    /// Its configuration.
    pub cfg: PoolConfig,
    sem: Arc<Semaphore>,
    idle: Mutex<Vec<Slot>>,
    active: AtomicU64,
    waiting: AtomicU64,
    acquired: AtomicU64,
    created: AtomicU64,
    destroyed: AtomicU64,
    timeouts: AtomicU64,
    wait_us: AtomicU64,
    max_wait_us: AtomicU64,
}

/// A slot, returned to the pool on drop.
#[derive(Debug)]
pub struct PoolGuard {
    pool: Arc<Pool>,
    slot: Option<Slot>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        if let Some(mut s) = self.slot.take() {
            s.last_used = Instant::now();
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s);
        }
        self.pool.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// A pool with `min_connections` slots created.
    pub fn new(cfg: PoolConfig) -> Arc<Pool> {
        let now = Instant::now();
        Arc::new(Pool {
            sem: Arc::new(Semaphore::new(cfg.max_connections as usize)),
            idle: Mutex::new(
                (0..cfg.min_connections.min(cfg.max_connections))
                    .map(|_| Slot { last_used: now })
                    .collect(),
            ),
            active: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            acquired: AtomicU64::new(0),
            created: AtomicU64::new(u64::from(cfg.min_connections.min(cfg.max_connections))),
            destroyed: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            wait_us: AtomicU64::new(0),
            max_wait_us: AtomicU64::new(0),
            cfg,
        })
    }

    /// Takes a slot, waiting up to the connection timeout.
    pub async fn acquire(self: &Arc<Self>) -> Result<PoolGuard, Problem> {
        let t0 = Instant::now();
        let permit = match self.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let r = tokio::time::timeout(
                    Duration::from_secs(self.cfg.connection_timeout_secs),
                    self.sem.clone().acquire_owned(),
                )
                .await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                match r {
                    Ok(Ok(p)) => p,
                    _ => {
                        self.timeouts.fetch_add(1, Ordering::Relaxed);
                        return Err(Problem::unavailable(
                            "pool-exhausted",
                            "Connection pool exhausted",
                            format!(
                                "all {} connections of pool `{}` stayed busy for {} s",
                                self.cfg.max_connections,
                                self.cfg.pool_id,
                                self.cfg.connection_timeout_secs
                            ),
                            1,
                        )
                        .with("pool_id", &self.cfg.pool_id));
                    }
                }
            }
        };
        let waited = t0.elapsed().as_micros() as u64;
        self.wait_us.fetch_add(waited, Ordering::Relaxed);
        self.max_wait_us.fetch_max(waited, Ordering::Relaxed);
        let slot = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let slot = slot.unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            Slot {
                last_used: Instant::now(),
            }
        });
        self.active.fetch_add(1, Ordering::Relaxed);
        self.acquired.fetch_add(1, Ordering::Relaxed);
        Ok(PoolGuard {
            pool: self.clone(),
            slot: Some(slot),
            _permit: permit,
        })
    }

    /// Destroys slots idle past the timeout, keeping `min_connections`; returns how many.
    pub fn reap(&self, now: Instant) -> usize {
        let idle_for = Duration::from_secs(self.cfg.idle_timeout_secs);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let total = idle.len() as u64 + self.active.load(Ordering::Relaxed);
        let min = u64::from(self.cfg.min_connections);
        let mut excess = total.saturating_sub(min) as usize;
        let before = idle.len();
        // Oldest first: they are at the front (slots are pushed as they are returned).
        idle.retain(|s| {
            if excess > 0 && now.duration_since(s.last_used) >= idle_for {
                excess -= 1;
                false
            } else {
                true
            }
        });
        let n = before - idle.len();
        self.destroyed.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let active = self.active.load(Ordering::Relaxed);
        let acquired = self.acquired.load(Ordering::Relaxed);
        PoolStats {
            pool_id: self.cfg.pool_id.clone(),
            active_connections: active,
            idle_connections: idle,
            total_connections: active + idle,
            waiting_requests: self.waiting.load(Ordering::Relaxed),
            total_acquired: acquired,
            total_created: self.created.load(Ordering::Relaxed),
            total_destroyed: self.destroyed.load(Ordering::Relaxed),
            total_timeouts: self.timeouts.load(Ordering::Relaxed),
            avg_wait_ms: if acquired == 0 {
                0.0
            } else {
                self.wait_us.load(Ordering::Relaxed) as f64 / acquired as f64 / 1000.0
            },
            max_wait_ms: self.max_wait_us.load(Ordering::Relaxed) as f64 / 1000.0,
            max_connections: self.cfg.max_connections,
        }
    }
}

/// The server's pools.
#[derive(Debug)]
pub struct Pools {
    /// By id, in configuration order.
    pub all: Vec<Arc<Pool>>,
}

impl Pools {
    /// Pools from configurations.
    pub fn new(cfgs: Vec<PoolConfig>) -> Self {
        Self {
            all: cfgs.into_iter().map(Pool::new).collect(),
        }
    }

    /// A pool by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Pool>> {
        self.all.iter().find(|p| p.cfg.pool_id == id)
    }

    /// The pool a request goes to: reads to `readonly`, the rest to `default`.
    pub fn for_method(&self, read: bool) -> Option<&Arc<Pool>> {
        self.get(if read { "readonly" } else { "default" })
            .or_else(|| self.all.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max: u32, min: u32) -> Arc<Pool> {
        Pool::new(PoolConfig {
            pool_id: "t".into(),
            min_connections: min,
            max_connections: max,
            connection_timeout_secs: 1,
            idle_timeout_secs: 0,
        })
    }

    #[tokio::test]
    async fn limits_are_enforced_and_counted() {
        let p = small(2, 1);
        assert_eq!(p.stats().total_created, 1);
        let a = p.acquire().await.unwrap();
        let b = p.acquire().await.unwrap();
        let s = p.stats();
        assert_eq!(
            (s.active_connections, s.idle_connections, s.total_created),
            (2, 0, 2)
        );
        // A third request waits, then times out with a 503.
        let t0 = Instant::now();
        let c = p.acquire().await;
        assert_eq!(c.unwrap_err().status, 503);
        assert!(t0.elapsed() >= Duration::from_millis(900));
        assert_eq!(p.stats().total_timeouts, 1);
        // A waiter is served as soon as a slot comes back.
        let p2 = p.clone();
        let waiter = tokio::spawn(async move { p2.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.stats().waiting_requests, 1);
        drop(a);
        waiter.await.unwrap().unwrap();
        drop(b);
        let s = p.stats();
        assert_eq!(
            (s.active_connections, s.idle_connections, s.total_acquired),
            (0, 2, 3)
        );
        // Idle slots above the minimum are destroyed (idle timeout 0 here).
        assert_eq!(p.reap(Instant::now()), 1);
        let s = p.stats();
        assert_eq!((s.total_connections, s.total_destroyed), (1, 1));
    }
}
