//! The server's log: a bounded ring of records (served by `GET /api/v1/logs`),
//! echoed to stderr from `info` up.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Per-request access records.
    Debug,
    /// Lifecycle: start, stop, transactions, configuration.
    Info,
    /// Something to look at: pressure, failed webhooks, client errors of note.
    Warn,
    /// Server errors and caught panics.
    Error,
}

impl Level {
    /// Parses `debug`, `info`, `warn`/`warning`, `error` (exactly: the
    /// names `GET /api/v1/logs` documents).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// One record as stored (the time is formatted when records are read).
#[derive(Debug)]
struct Entry {
    seq: u64,
    unix_ms: u64,
    level: Level,
    target: &'static str,
    message: String,
}

/// One record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// Increasing sequence number (gaps mean records fell out of the ring).
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub timestamp: String,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Severity.
    pub level: Level,
    /// The part of the server that logged it (`http`, `txn`, `pressure`, …).
    pub target: &'static str,
    /// The message.
    pub message: String,
}

/// The ring.
#[derive(Debug)]
pub struct LogRing {
    cap: usize,
    buf: Mutex<VecDeque<Entry>>,
    next: AtomicU64,
    stderr: bool,
}

impl LogRing {
    /// A ring of `cap` records; `stderr` echoes `info` and above.
    pub fn new(cap: usize, stderr: bool) -> Self {
        Self {
            cap: cap.max(1),
            buf: Mutex::new(VecDeque::with_capacity(cap.clamp(1, 4096))),
            next: AtomicU64::new(1),
            stderr,
        }
    }

    /// Appends a record (dropping the oldest when full).
    pub fn log(&self, level: Level, target: &'static str, message: impl Into<String>) {
        let unix_ms = crate::server::api::http::unix_ms();
        let r = Entry {
            seq: self.next.fetch_add(1, Ordering::Relaxed),
            unix_ms,
            level,
            target,
            message: message.into(),
        };
        if self.stderr && level >= Level::Info {
            let t = crate::server::api::http::rfc3339(unix_ms);
            eprintln!("{t} {:5} {}: {}", level.as_str(), target, r.message);
        }
        let mut b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() == self.cap {
            b.pop_front();
        }
        b.push_back(r);
    }

    /// `info` record.
    pub fn info(&self, target: &'static str, m: impl Into<String>) {
        self.log(Level::Info, target, m)
    }
    /// `warn` record.
    pub fn warn(&self, target: &'static str, m: impl Into<String>) {
        self.log(Level::Warn, target, m)
    }
    /// `error` record.
    pub fn error(&self, target: &'static str, m: impl Into<String>) {
        self.log(Level::Error, target, m)
    }
    /// `debug` record.
    pub fn debug(&self, target: &'static str, m: impl Into<String>) {
        self.log(Level::Debug, target, m)
    }

    /// Records at `min` or above with `seq > after`, newest last, at most
    /// `limit` (the newest ones).
    pub fn query(&self, min: Level, after: u64, limit: usize) -> Vec<Record> {
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Record> = b
            .iter()
            .rev()
            .filter(|r| r.level >= min && r.seq > after)
            .take(limit)
            .map(|e| Record {
                seq: e.seq,
                timestamp: crate::server::api::http::rfc3339(e.unix_ms),
                unix_ms: e.unix_ms,
                level: e.level,
                target: e.target,
                message: e.message.clone(),
            })
            .collect();
        v.reverse();
        v
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// (records held, records ever written).
    pub fn counts(&self) -> (usize, u64) {
        let held = self.buf.lock().unwrap_or_else(|e| e.into_inner()).len();
        (held, self.next.load(Ordering::Relaxed) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_filters() {
        let r = LogRing::new(4, false);
        for i in 0..10 {
            r.log(
                if i % 2 == 0 {
                    Level::Debug
                } else {
                    Level::Warn
                },
                "t",
                format!("m{i}"),
            );
        }
        assert_eq!(r.counts(), (4, 10));
        let all = r.query(Level::Debug, 0, 100);
        assert_eq!(
            all.iter().map(|x| x.seq).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
        let warn = r.query(Level::Warn, 0, 100);
        assert!(warn.iter().all(|x| x.level == Level::Warn));
        assert_eq!(r.query(Level::Debug, 9, 100).len(), 1);
        assert_eq!(r.query(Level::Debug, 0, 1)[0].seq, 10);
    }
}
