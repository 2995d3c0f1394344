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

/// Cuts `s` to at most `TEXT_MAX` bytes on a character boundary and marks
/// the cut with `…`.
fn cut_to_text_max(s: &mut String) {
    if s.len() > TEXT_MAX {
        let mut cut = TEXT_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
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
            cut_to_text_max(&mut s);
            break;
        }
    }
    s
}

/// The statement's shape, as `pg_stat_statements` keys it: whitespace
/// collapsed, every number and quoted string literal replaced by `?`,
/// truncated to 200 characters. `SELECT * FROM t WHERE id = 17` and
/// `… id = 42` are one entry, so a workload of point queries keeps one key
/// instead of filling (and churning) the table with one key per literal.
pub fn shape(q: &str) -> String {
    let mut s = String::with_capacity(q.len().min(TEXT_MAX + 4));
    let mut chars = q.chars().peekable();
    let mut space = false;
    // Whether the previous character continues an identifier (`t1`, `x_2`):
    // digits there are part of the name, not a literal.
    let mut in_word = false;
    while let Some(c) = chars.next() {
        if s.len() > TEXT_MAX {
            cut_to_text_max(&mut s);
            return s;
        }
        if c.is_whitespace() {
            space = !s.is_empty();
            in_word = false;
            continue;
        }
        if space {
            s.push(' ');
            space = false;
        }
        if c == '\'' {
            // A string literal; `''` inside it is a quote.
            while let Some(d) = chars.next() {
                if d == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            s.push('?');
            in_word = false;
        } else if c == '"' {
            // A quoted identifier stays as written.
            s.push(c);
            for d in chars.by_ref() {
                s.push(d);
                if d == '"' {
                    break;
                }
            }
            in_word = true;
        } else if c.is_ascii_digit() && !in_word {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.' || *d == '_')
            {
                chars.next();
            }
            s.push('?');
        } else {
            in_word = c.is_alphanumeric() || c == '_';
            s.push(c);
        }
    }
    cut_to_text_max(&mut s);
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
        let ms = d.as_secs_f64() * 1000.0;
        if ms >= slow_ms as f64 {
            let q = normalise(text);
            let mut s = self.slow.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() == SLOW_KEPT {
                s.pop_front();
            }
            s.push_back(SlowQuery {
                kind,
                query: q,
                duration_ms: ms,
                at_ms: unix_ms(),
                ok,
            });
        }
        let key = (kind, shape(text));
        let mut t = self.top.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() >= TOP_KEYS && !t.contains_key(&key) {
            // Make room for a tenth of the table at once: forgetting one entry
            // per new shape meant a scan of all of them per query.
            let mut totals: Vec<u64> = t.values().map(|v| v.total_us).collect();
            let nth = TOP_KEYS / 10;
            let (_, &mut bound, _) = totals.select_nth_unstable(nth);
            let mut room = nth + 1;
            t.retain(|_, v| {
                let keep = v.total_us > bound || room == 0;
                room -= usize::from(!keep);
                keep
            });
        }
        let e = t.entry(key).or_default();
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
        // Slow queries keep their text; the top list keys by shape.
        let top = q.top(10);
        assert_eq!(top[0].query, "SELECT ?");
        assert_eq!((top[0].calls, top[0].errors), (2, 1));
        assert!(normalise(&"x ".repeat(500)).chars().count() <= TEXT_MAX + 1);
    }

    #[test]
    fn shapes_replace_literals_and_keep_names() {
        assert_eq!(
            shape("SELECT  id, name FROM t1 WHERE id = 17 AND s = 'it''s' AND x > -2.5e3"),
            "SELECT id, name FROM t1 WHERE id = ? AND s = ? AND x > -?"
        );
        assert_eq!(
            shape("select * from \"t 2\" where c_3 = 4"),
            "select * from \"t 2\" where c_3 = ?"
        );
        assert_eq!(shape("SELECT 1"), shape("SELECT 2"));
        assert!(shape(&"x ".repeat(500)).chars().count() <= TEXT_MAX + 1);
        assert_eq!(shape("'unterminated"), "?");
    }

    #[test]
    fn a_full_table_evicts_a_tenth_of_its_lightest_entries_at_once() {
        let q = QueryStats::default();
        for i in 0..TOP_KEYS {
            let text = format!("SELECT * FROM t{i}");
            q.record(
                "sql",
                &text,
                Duration::from_micros(1000 + i as u64),
                true,
                1000,
            );
        }
        assert_eq!(q.top(usize::MAX).len(), TOP_KEYS);
        q.record(
            "sql",
            "SELECT * FROM fresh",
            Duration::from_micros(1),
            true,
            1000,
        );
        let top = q.top(usize::MAX);
        assert_eq!(top.len(), TOP_KEYS - TOP_KEYS / 10 - 1 + 1);
        // The heaviest survive; the lightest tenth is gone; the new one is in.
        assert!(top.iter().any(|e| e.query == "SELECT * FROM t499"));
        assert!(!top.iter().any(|e| e.query == "SELECT * FROM t0"));
        assert!(top.iter().any(|e| e.query == "SELECT * FROM fresh"));
    }
}
