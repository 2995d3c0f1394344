//! Open HTTP connections: registered when accepted, removed when closed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// One open connection; the handlers update it through `Arc`.
#[derive(Debug)]
pub struct Conn {
    /// Id, increasing from 1.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// Unix seconds.
    pub opened_at: u64,
    opened: Instant,
    /// Requests answered on it.
    pub requests: AtomicU64,
    /// Requests in progress on it.
    pub in_flight: AtomicU64,
    /// Unix ms of the last request's start (0: none yet).
    pub last_request_ms: AtomicU64,
    /// The session of the last authenticated request (0: none).
    pub session_id: AtomicU64,
    /// The token id of the last authenticated request (0: none).
    pub token_id: AtomicU64,
}

/// A connection as listed by `GET /api/v1/connections`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionInfo {
    /// Id.
    pub connection_id: u64,
    /// Client address.
    pub client_address: String,
    /// Server address.
    pub server_address: String,
    /// Unix seconds.
    pub connected_at: u64,
    /// Seconds open.
    pub duration_seconds: f64,
    /// `active` while a request is being handled on it, else `idle`.
    pub state: &'static str,
    /// Requests answered on it.
    pub requests: u64,
    /// Unix ms of the last request, if any.
    pub last_request_at_ms: Option<u64>,
    /// Session of the last authenticated request.
    pub session_id: Option<u64>,
}

/// Removes the connection from the table when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    table: Arc<Connections>,
    /// The connection.
    pub conn: Arc<Conn>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.conn.id);
        self.table.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The table of open connections.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections closed since start.
    pub closed: AtomicU64,
    /// Most connections open at once.
    pub peak: AtomicU64,
    /// Connections refused because `--max-connections` were open.
    pub refused: AtomicU64,
}

impl Connections {
    /// Registers an accepted connection; `None` (and counted as refused) when
    /// `max` are open already.
    pub fn open(
        self: &Arc<Self>,
        peer: SocketAddr,
        local: SocketAddr,
        max: usize,
    ) -> Option<ConnGuard> {
        let mut m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= max {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(Conn {
            id,
            peer,
            local,
            opened_at: crate::server::api::http::unix_now(),
            opened: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_request_ms: AtomicU64::new(0),
            session_id: AtomicU64::new(0),
            token_id: AtomicU64::new(0),
        });
        m.insert(id, conn.clone());
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.peak.fetch_max(m.len() as u64, Ordering::Relaxed);
        Some(ConnGuard {
            table: self.clone(),
            conn,
        })
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Open connections, oldest first.
    pub fn list(&self) -> Vec<ConnectionInfo> {
        let m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        m.values()
            .map(|c| {
                let last = c.last_request_ms.load(Ordering::Relaxed);
                let sid = c.session_id.load(Ordering::Relaxed);
                ConnectionInfo {
                    connection_id: c.id,
                    client_address: c.peer.to_string(),
                    server_address: c.local.to_string(),
                    connected_at: c.opened_at,
                    duration_seconds: c.opened.elapsed().as_secs_f64(),
                    state: if c.in_flight.load(Ordering::Relaxed) > 0 {
                        "active"
                    } else {
                        "idle"
                    },
                    requests: c.requests.load(Ordering::Relaxed),
                    last_request_at_ms: (last != 0).then_some(last),
                    session_id: (sid != 0).then_some(sid),
                }
            })
            .collect()
    }

    /// Open connections used by session `sid`.
    pub fn of_session(&self, sid: u64) -> usize {
        let m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        m.values()
            .filter(|c| c.session_id.load(Ordering::Relaxed) == sid)
            .count()
    }
}
