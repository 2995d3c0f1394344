//! Client sessions. A session is one client's logical session: the token it
//! authenticates with plus an optional `X-Session-Id` header (so one token can
//! hold several). It owns a memory context (the parent of its transactions'
//! and queries' contexts), counts its requests and is closed after
//! `--session-idle-timeout-secs` without requests or open transactions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::server::api::auth::{Principal, Role};
use crate::server::api::http::unix_ms;
use crate::server::api::problem::Problem;
use rustydb_memory::OwnedContext;

/// Sessions held at most; the oldest idle one is closed to make room.
pub const MAX_SESSIONS: usize = 10_000;

/// One session.
#[derive(Debug)]
pub struct Session {
    /// Id, increasing from 1.
    pub id: u64,
    /// The `X-Session-Id` name (`default` without the header).
    pub name: String,
    /// The token's id.
    pub token_id: u32,
    /// The role.
    pub role: Role,
    /// The token's label.
    pub user: String,
    /// Unix ms.
    pub created_ms: u64,
    /// Unix ms of the last request's start or end.
    pub last_active_ms: AtomicU64,
    /// Requests made.
    pub requests: AtomicU64,
    /// Requests in progress.
    pub in_flight: AtomicU64,
    /// Transactions open.
    pub open_txns: AtomicU64,
    /// Statements run.
    pub queries: AtomicU64,
    /// The session's memory context.
    pub ctx: Arc<OwnedContext>,
    /// Last client address.
    pub client: Mutex<Option<std::net::SocketAddr>>,
}

/// A session as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Id.
    pub session_id: u64,
    /// `X-Session-Id` name.
    pub name: String,
    /// Token label.
    pub user: String,
    /// Role.
    pub role: String,
    /// `active` while a request runs or a transaction is open, else `idle`.
    pub state: &'static str,
    /// Last client address.
    pub client_address: String,
    /// Unix ms.
    pub created_at_ms: u64,
    /// Unix ms.
    pub last_active_at_ms: u64,
    /// Requests made.
    pub requests: u64,
    /// Statements run.
    pub queries: u64,
    /// Transactions open.
    pub open_transactions: u64,
    /// The session's memory context (its subtree: transactions and queries).
    pub memory: SessionMemory,
}

/// Memory figures of a session's context subtree.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionMemory {
    /// The root context's id.
    pub context_id: u64,
    /// Bytes handed out in the subtree.
    pub used_bytes: u64,
    /// Chunk bytes held by the subtree.
    pub reserved_bytes: u64,
}

/// Marks a session busy for the life of a request.
#[derive(Debug)]
pub struct ActiveGuard(pub Arc<Session>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.last_active_ms.store(unix_ms(), Ordering::Relaxed);
    }
}

impl Session {
    /// Whether a request runs or a transaction is open.
    pub fn is_active(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0 || self.open_txns.load(Ordering::Relaxed) > 0
    }

    /// Listing form; `contexts` is a registry snapshot.
    pub fn info(&self, contexts: &crate::server::memory::ctx::Snapshot) -> SessionInfo {
        let (reserved, used) = contexts.subtree(self.ctx.id());
        SessionInfo {
            session_id: self.id,
            name: self.name.clone(),
            user: self.user.clone(),
            role: self.role.as_str().into(),
            state: if self.is_active() { "active" } else { "idle" },
            client_address: self
                .client
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|a| a.to_string())
                .unwrap_or_default(),
            created_at_ms: self.created_ms,
            last_active_at_ms: self.last_active_ms.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            queries: self.queries.load(Ordering::Relaxed),
            open_transactions: self.open_txns.load(Ordering::Relaxed),
            memory: SessionMemory {
                context_id: self.ctx.id(),
                used_bytes: used as u64,
                reserved_bytes: reserved as u64,
            },
        }
    }
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    /// By token id, then `X-Session-Id` name.
    map: Mutex<HashMap<u32, HashMap<String, Arc<Session>>>>,
    next: AtomicU64,
    /// Sessions opened since start.
    pub opened: AtomicU64,
    /// Sessions closed (idle, evicted or terminated).
    pub closed: AtomicU64,
}

/// Checks an `X-Session-Id` value.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Sessions {
    /// The session of `who` named `name`, opened if new; marks it busy.
    pub fn enter(
        &self,
        who: &Principal,
        name: Option<&str>,
        client: Option<std::net::SocketAddr>,
    ) -> Result<ActiveGuard, Problem> {
        let name = match name {
            None => "default",
            Some(n) if valid_name(n) => n,
            Some(_) => {
                return Err(Problem::bad_request(
                    "X-Session-Id must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.'",
                ));
            }
        };
        let now = unix_ms();
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let found = m.get(&who.token_id).and_then(|t| t.get(name)).cloned();
        let s = match found {
            Some(s) => s,
            None => {
                let held: usize = m.values().map(HashMap::len).sum();
                if held >= MAX_SESSIONS {
                    let victim = m
                        .iter()
                        .flat_map(|(t, by)| by.iter().map(move |(n, s)| (*t, n, s)))
                        .filter(|(_, _, s)| !s.is_active())
                        .min_by_key(|(_, _, s)| s.last_active_ms.load(Ordering::Relaxed))
                        .map(|(t, n, _)| (t, n.clone()));
                    match victim {
                        Some((t, n)) => {
                            if let Some(by) = m.get_mut(&t) {
                                by.remove(&n);
                            }
                            self.closed.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            return Err(Problem::unavailable(
                                "too-many-sessions",
                                "Too many sessions",
                                format!("{MAX_SESSIONS} sessions are active; retry later"),
                                5,
                            ));
                        }
                    }
                }
                let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
                let s = Arc::new(Session {
                    id,
                    name: name.to_string(),
                    token_id: who.token_id,
                    role: who.role,
                    user: who.name.clone(),
                    created_ms: now,
                    last_active_ms: AtomicU64::new(now),
                    requests: AtomicU64::new(0),
                    in_flight: AtomicU64::new(0),
                    open_txns: AtomicU64::new(0),
                    queries: AtomicU64::new(0),
                    ctx: OwnedContext::root(format!("session:{id}"), None),
                    client: Mutex::new(None),
                });
                m.entry(who.token_id)
                    .or_default()
                    .insert(name.to_string(), s.clone());
                self.opened.fetch_add(1, Ordering::Relaxed);
                s
            }
        };
        drop(m);
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        s.last_active_ms.store(now, Ordering::Relaxed);
        {
            let mut c = s.client.lock().unwrap_or_else(|e| e.into_inner());
            if client.is_some() {
                *c = client;
            }
        }
        Ok(ActiveGuard(s))
    }

    /// All sessions, by id.
    pub fn all(&self) -> Vec<Arc<Session>> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m.values().flat_map(|by| by.values().cloned()).collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// One session.
    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values()
            .flat_map(|by| by.values())
            .find(|s| s.id == id)
            .cloned()
    }

    /// Removes session `id`; returns it.
    pub fn remove(&self, id: u64) -> Option<Arc<Session>> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = m
            .values()
            .flat_map(|by| by.values())
            .find(|s| s.id == id)
            .cloned()?;
        if let Some(by) = m.get_mut(&s.token_id) {
            by.remove(&s.name);
        }
        self.closed.fetch_add(1, Ordering::Relaxed);
        Some(s)
    }

    /// Closes sessions idle for `idle` without open transactions; returns how many.
    pub fn reap(&self, idle: Duration) -> usize {
        let cutoff = unix_ms().saturating_sub(idle.as_millis() as u64);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for by in m.values_mut() {
            let before = by.len();
            by.retain(|_, s| s.is_active() || s.last_active_ms.load(Ordering::Relaxed) > cutoff);
            n += before - by.len();
        }
        m.retain(|_, by| !by.is_empty());
        self.closed.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Sessions held.
    pub fn count(&self) -> usize {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(HashMap::len).sum()
    }
}
