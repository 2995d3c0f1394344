//! Query statistics: SQL statements and GraphQL operations, with slow
//! queries and the top queries by total time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::server::api::http::unix_ms;
use crate::server::observe::metrics::{LatencyHistogram, RateWindow};

const SLOW_KEPT: usize = 50;
const TOP_KEYS: usize = 500;
const TEXT_MAX: usize = 200;

/// A slow query.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlowQuery {
    /// `sql` or `graphql`.
    pub kind: &'static str,
    /// Normalised text.
    pub query: String,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Unix ms.
    pub at_ms: u64,
    /// Whether it succeeded.
    pub ok: bool,
}

/// A query's totals.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TopQuery {
    /// `sql` or `graphql`.
    pub kind: &'static str,
    /// Normalised text.
    pub query: String,
    /// Times run.
    pub calls: u64,
    /// Total time, ms.
    pub total_ms: f64,
    /// Mean time, ms.
    pub mean_ms: f64,
    /// Failed runs.
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Top {
    calls: u64,
    total_us: u64,
    errors: u64,
}

/// The statistics.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Queries run.
    pub total: AtomicU64,
    /// Queries failed.
    pub failed: AtomicU64,
    /// Durations.
    pub latency: LatencyHistogram,
    /// Per second.
    pub rate: RateWindow,
    slow: Mutex<VecDeque<SlowQuery>>,
    top: Mutex<HashMap<(&'static str, String), Top>>,
}

/// Whitespace collapsed, truncated to 200 characters.
pub fn normalise(q: &str) -> String {
    let mut s = String::with_capacity(q.len().min(TEXT_MAX + 4));
    for w in q.split_whitespace() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(w);
        if s.len() > TEXT_MAX {
            let mut cut = TEXT_MAX;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
            break;
        }
    }
    s
}

impl QueryStats {
    /// Records one query.
    pub fn record(&self, kind: &'static str, text: &str, d: Duration, ok: bool, slow_ms: u64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(d);
        self.rate.add(1);
        let q = normalise(text);
        let ms = d.as_secs_f64() * 1000.0;
        if ms >= slow_ms as f64 {
            let mut s = self.slow.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() == SLOW_KEPT {
                s.pop_front();
            }
            s.push_back(SlowQuery {
                kind,
                query: q.clone(),
                duration_ms: ms,
                at_ms: unix_ms(),
                ok,
            });
        }
        let mut t = self.top.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() >= TOP_KEYS && !t.contains_key(&(kind, q.clone())) {
            // Make room: forget the entry with the least total time.
            if let Some(k) = t
                .iter()
                .min_by_key(|(_, v)| v.total_us)
                .map(|(k, _)| k.clone())
            {
                t.remove(&k);
            }
        }
        let e = t.entry((kind, q)).or_default();
        e.calls += 1;
        e.total_us += d.as_micros() as u64;
        e.errors += u64::from(!ok);
    }

    /// Slow queries, newest first.
    pub fn slow(&self) -> Vec<SlowQuery> {
        let s = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        s.iter().rev().cloned().collect()
    }

    /// The `n` queries with the most total time.
    pub fn top(&self, n: usize) -> Vec<TopQuery> {
        let t = self.top.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<TopQuery> = t
            .iter()
            .map(|((kind, q), e)| TopQuery {
                kind,
                query: q.clone(),
                calls: e.calls,
                total_ms: e.total_us as f64 / 1000.0,
                mean_ms: e.total_us as f64 / 1000.0 / e.calls.max(1) as f64,
                errors: e.errors,
            })
            .collect();
        v.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_slow_and_top() {
        let q = QueryStats::default();
        q.record("sql", "SELECT  1\n", Duration::from_millis(1), true, 100);
        q.record("sql", "SELECT 1", Duration::from_millis(150), false, 100);
        q.record(
            "graphql",
            "{ schemas { name } }",
            Duration::from_millis(2),
            true,
            100,
        );
        assert_eq!(q.total.load(Ordering::Relaxed), 3);
        assert_eq!(q.failed.load(Ordering::Relaxed), 1);
        let slow = q.slow();
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].query, "SELECT 1");
        let top = q.top(10);
        assert_eq!(top[0].query, "SELECT 1");
        assert_eq!((top[0].calls, top[0].errors), (2, 1));
        assert!(normalise(&"x ".repeat(500)).chars().count() <= TEXT_MAX + 1);
    }
}
