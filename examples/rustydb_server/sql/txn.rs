//! Transactions: ids, isolation, owner session, a memory context per
//! transaction (a child of the session's), idle timeouts and the record of
//! finished ones. The SQL engine is told about begin/commit/rollback through
//! [`SqlEngine`](crate::server::sql::engine::SqlEngine); the bookkeeping here holds with or
//! without one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::api::auth::{Principal, Role};
use crate::server::api::http::unix_ms;
use crate::server::api::problem::Problem;
use crate::server::memory::sessions::Session;
use crate::server::observe::metrics::RateWindow;
use crate::server::sql::engine::IsolationLevel;
use rustydb_memory::OwnedContext;

/// Open transactions at most.
pub const MAX_OPEN: usize = 10_000;
/// Finished transactions remembered (for 409 on a second commit).
const FINISHED_KEPT: usize = 1024;

/// An open transaction.
#[derive(Debug)]
pub struct Txn {
    /// Id, increasing from 1.
    pub id: u64,
    /// Owner.
    pub session: Arc<Session>,
    /// Isolation level (as the engine granted it).
    pub isolation: IsolationLevel,
    /// Unix ms.
    pub started_ms: u64,
    started: Instant,
    /// The transaction's memory context (child of the session's).
    pub ctx: Arc<OwnedContext>,
    /// Its limit.
    pub memory_limit: u64,
    /// Statements run in it.
    pub statements: AtomicU64,
    /// Unix ms of the last statement (or of begin).
    pub last_active_ms: AtomicU64,
    /// Held while a statement of this transaction runs (one at a time;
    /// awaited, so a second statement waits without a thread).
    pub busy: Arc<tokio::sync::Mutex<()>>,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Committed.
    Committed,
    /// Rolled back on request.
    RolledBack,
    /// Rolled back after `--txn-idle-timeout-secs`.
    TimedOut,
    /// Rolled back when its session was terminated or the server stopped.
    Aborted,
}

/// A transaction's description (open or finished).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TxnInfo {
    /// Id.
    pub transaction_id: u64,
    /// `READ_COMMITTED`, ….
    pub isolation_level: IsolationLevel,
    /// Unix seconds.
    pub started_at: u64,
    /// `active`, `committed`, `rolled_back`, `timed_out`, `aborted`.
    pub status: String,
    /// Owner session.
    pub session_id: u64,
    /// Statements run.
    pub statements: u64,
    /// Unix seconds, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Duration in ms, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The memory context.
    pub memory: TxnMemory,
}

/// Memory of a transaction's context subtree.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TxnMemory {
    /// Context id (gone from `/api/v1/memory/contexts` once finished).
    pub context_id: u64,
    /// Context name.
    pub context_name: String,
    /// Limit of the subtree, bytes.
    pub limit_bytes: u64,
    /// Bytes handed out now (open) or at the end (finished).
    pub used_bytes: u64,
    /// Peak bytes handed out by the transaction's own context.
    pub peak_bytes: u64,
    /// Chunk bytes freed when the context was dropped (finished only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_bytes: Option<u64>,
}

impl Txn {
    /// Whether `p` may use this transaction: its own session's token, or admin.
    pub fn check_owner(&self, p: &Principal) -> Result<(), Problem> {
        if p.token_id == self.session.token_id || p.role == Role::Admin {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "transaction {} belongs to another client",
                self.id
            )))
        }
    }

    fn info(&self, contexts: &crate::server::memory::ctx::Snapshot) -> TxnInfo {
        let (_, used) = contexts.subtree(self.ctx.id());
        let own = contexts.get(self.ctx.id());
        TxnInfo {
            transaction_id: self.id,
            isolation_level: self.isolation,
            started_at: self.started_ms / 1000,
            status: "active".into(),
            session_id: self.session.id,
            statements: self.statements.load(Ordering::Relaxed),
            finished_at: None,
            duration_ms: None,
            memory: TxnMemory {
                context_id: self.ctx.id(),
                context_name: format!("txn:{}", self.id),
                limit_bytes: self.memory_limit,
                used_bytes: used as u64,
                peak_bytes: own.map_or(0, |c| c.peak as u64),
                released_bytes: None,
            },
        }
    }
}

/// The transaction table.
#[derive(Debug)]
pub struct Transactions {
    active: Mutex<BTreeMap<u64, Arc<Txn>>>,
    finished: Mutex<VecDeque<TxnInfo>>,
    next: AtomicU64,
    /// Begun since start.
    pub begun: AtomicU64,
    /// Committed.
    pub committed: AtomicU64,
    /// Rolled back (on request, by timeout or abort).
    pub rolled_back: AtomicU64,
    /// Finished per second.
    pub rate: RateWindow,
}

impl Default for Transactions {
    fn default() -> Self {
        Self {
            active: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            rolled_back: AtomicU64::new(0),
            rate: RateWindow::default(),
        }
    }
}

/// Parses a transaction id from a path (`3`); anything else is a 404.
pub fn parse_id(s: &str) -> Result<u64, Problem> {
    s.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
        Problem::not_found(format!(
            "transaction `{s}` not found (transaction ids are positive integers from POST /api/v1/transactions)"
        ))
        .with("transaction_id", s)
    })
}

impl Transactions {
    /// Reserves the next id.
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a begun transaction with id `id` (from [`next_id`](Self::next_id)).
    pub fn insert(
        &self,
        id: u64,
        session: Arc<Session>,
        isolation: IsolationLevel,
        memory_limit: u64,
    ) -> Result<Arc<Txn>, Problem> {
        let mut m = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_OPEN {
            return Err(Problem::unavailable(
                "too-many-transactions",
                "Too many open transactions",
                format!("{MAX_OPEN} transactions are open; commit or roll some back"),
                1,
            ));
        }
        let now = unix_ms();
        let t = Arc::new(Txn {
            id,
            ctx: session.ctx.child(
                format!("txn:{id}"),
                Some(usize::try_from(memory_limit).unwrap_or(usize::MAX)),
            ),
            session,
            isolation,
            started_ms: now,
            started: Instant::now(),
            memory_limit,
            statements: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(now),
            busy: Arc::new(tokio::sync::Mutex::new(())),
        });
        t.session.open_txns.fetch_add(1, Ordering::Relaxed);
        m.insert(id, t.clone());
        self.begun.fetch_add(1, Ordering::Relaxed);
        Ok(t)
    }

    /// An open transaction, or 404 (409 if it finished already).
    pub fn get(&self, id: u64) -> Result<Arc<Txn>, Problem> {
        if let Some(t) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(t.clone());
        }
        Err(self.missing(id))
    }

    fn missing(&self, id: u64) -> Problem {
        let f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        match f.iter().find(|t| t.transaction_id == id) {
            Some(t) => Problem::conflict(format!("transaction {id} is already {}", t.status))
                .with("transaction_id", id)
                .with("status", &t.status),
            None => {
                Problem::not_found(format!("transaction {id} not found")).with("transaction_id", id)
            }
        }
    }

    /// Removes open transaction `id` to finish it (the caller tells the engine).
    pub fn take(&self, id: u64) -> Result<Arc<Txn>, Problem> {
        let t = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        t.ok_or_else(|| self.missing(id))
    }

    /// Puts a transaction back (the engine refused to finish it).
    pub fn restore(&self, t: Arc<Txn>) {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.id, t);
    }

    /// Records the end of `t` (already taken) and drops its memory context
    /// (at once, or when a statement still running lets go of it).
    pub fn finish(&self, t: Arc<Txn>, outcome: Outcome) -> TxnInfo {
        let contexts = crate::server::memory::ctx::Snapshot::take();
        let (reserved, _) = contexts.subtree(t.ctx.id());
        let mut info = t.info(&contexts);
        info.status = serde_json::to_value(outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        info.finished_at = Some(unix_ms() / 1000);
        info.duration_ms = Some(t.started.elapsed().as_secs_f64() * 1000.0);
        info.memory.released_bytes = Some(reserved as u64);
        t.session.open_txns.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Outcome::Committed => self.committed.fetch_add(1, Ordering::Relaxed),
            _ => self.rolled_back.fetch_add(1, Ordering::Relaxed),
        };
        self.rate.add(1);
        let mut f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() == FINISHED_KEPT {
            f.pop_front();
        }
        f.push_back(info.clone());
        drop(f);
        drop(t); // the context goes with the last reference
        info
    }

    /// Open transactions.
    pub fn list(&self) -> Vec<TxnInfo> {
        let contexts = crate::server::memory::ctx::Snapshot::take();
        let m = self.active.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(|t| t.info(&contexts)).collect()
    }

    /// One open transaction's description.
    pub fn describe(&self, t: &Txn) -> TxnInfo {
        t.info(&crate::server::memory::ctx::Snapshot::take())
    }

    /// Open transactions idle longer than `idle`, or of session `sid`, taken out.
    pub fn take_where(&self, idle: Option<Duration>, sid: Option<u64>) -> Vec<Arc<Txn>> {
        let cutoff = idle.map(|d| unix_ms().saturating_sub(d.as_millis() as u64));
        let mut m = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<u64> = m
            .values()
            .filter(|t| {
                cutoff.is_some_and(|c| t.last_active_ms.load(Ordering::Relaxed) < c)
                    || sid.is_some_and(|s| t.session.id == s)
            })
            .map(|t| t.id)
            .collect();
        ids.iter().filter_map(|id| m.remove(id)).collect()
    }

    /// Every open transaction, taken out (shutdown).
    pub fn take_all(&self) -> Vec<Arc<Txn>> {
        let mut m = self.active.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *m).into_values().collect()
    }

    /// Open transactions.
    pub fn count(&self) -> usize {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
