//! Request metrics: atomic counters, a latency histogram, per-second rate
//! windows and the Prometheus registry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets: 4 per power of two of microseconds, 1 µs to ~2 h.
const SUB: usize = 4;
const BUCKETS: usize = 33 * SUB;

/// A lock-free latency histogram (µs), for averages and quantiles.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    n: AtomicU64,
    max_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            n: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < 2 {
        return us as usize;
    }
    let lg = 63 - us.leading_zeros() as usize; // floor(log2)
    let frac = ((us >> lg.saturating_sub(2)) & 3) as usize; // next two bits
    (lg * SUB + frac).min(BUCKETS - 1)
}

fn bucket_upper(b: usize) -> u64 {
    if b < 2 {
        return b as u64 + 1;
    }
    let lg = b / SUB;
    let frac = (b % SUB) as u64;
    // Bucket holds [2^lg * (4+frac)/4, 2^lg * (5+frac)/4).
    ((1u64 << lg) * (5 + frac)).div_ceil(4)
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.counts[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.n.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }

    /// Mean in milliseconds (0 with no observations).
    pub fn mean_ms(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
        }
    }

    /// Largest observation in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.max_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// The bucket counts (for [`quantile_of_counts`] over a difference of two).
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The `q` quantile (0..=1) in milliseconds: the upper edge of its bucket
    /// (at most 25 % above the true value).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let max = self.max_us.load(Ordering::Relaxed).max(1);
        match quantile_of_counts(&self.counts(), q) {
            Some(ms) => ms.min(max as f64 / 1000.0),
            None => 0.0,
        }
    }
}

/// The `q` quantile (0..=1) in milliseconds of bucket `counts` (as
/// [`LatencyHistogram::counts`] returns them, or a difference of two such):
/// the upper edge of its bucket; `None` without observations.
pub fn quantile_of_counts(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut acc = 0;
    for (b, c) in counts.iter().enumerate() {
        acc += c;
        if acc >= rank {
            return Some(bucket_upper(b) as f64 / 1000.0);
        }
    }
    None
}

/// Events per second over the last minute, in one-second buckets.
#[derive(Debug)]
pub struct RateWindow {
    start: Instant,
    secs: Box<[AtomicU64]>,
    counts: Box<[AtomicU64]>,
}

const WINDOW: u64 = 60;
const SLOTS: usize = 64;

impl Default for RateWindow {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            secs: (0..SLOTS).map(|_| AtomicU64::new(u64::MAX)).collect(),
            counts: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RateWindow {
    /// Counts `n` events now.
    pub fn add(&self, n: u64) {
        let s = self.start.elapsed().as_secs();
        let i = (s % SLOTS as u64) as usize;
        if self.secs[i].load(Ordering::Relaxed) != s {
            // A new second in this slot: the first writer resets it. Racing
            // writers may lose a count at the boundary; this is a statistic.
            if self.secs[i].swap(s, Ordering::AcqRel) != s {
                self.counts[i].store(0, Ordering::Relaxed);
            }
        }
        self.counts[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Events per second over the last 60 s (or since start, if sooner).
    pub fn per_second(&self) -> f64 {
        let el = self.start.elapsed();
        let now = el.as_secs();
        let mut sum = 0;
        for i in 0..SLOTS {
            let s = self.secs[i].load(Ordering::Acquire);
            if s != u64::MAX && s <= now && now - s < WINDOW {
                sum += self.counts[i].load(Ordering::Relaxed);
            }
        }
        let span = el.as_secs_f64().clamp(1.0, WINDOW as f64);
        sum as f64 / span
    }
}

/// Labels of the per-route counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method (`OTHER` for extension methods).
    pub method: &'static str,
    /// Route pattern (`/api/v1/pools/{id}`), `unmatched` for 404s.
    pub route: &'static str,
    /// Status code.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    /// `2xx`, `4xx`, `5xx`.
    pub class: &'static str,
}

/// Labels of the pool gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool id.
    pub pool: String,
}

/// Request counters and the registry.
pub struct Metrics {
    /// Requests answered.
    pub total: AtomicU64,
    /// Answered with a status below 400.
    pub successful: AtomicU64,
    /// 4xx.
    pub client_errors: AtomicU64,
    /// 5xx.
    pub server_errors: AtomicU64,
    /// Handler panics caught.
    pub panics: AtomicU64,
    /// Requests being handled now.
    pub in_flight: AtomicU64,
    /// Response times.
    pub latency: LatencyHistogram,
    /// Requests per second.
    pub rate: RateWindow,
    /// The Prometheus registry (the seed's three metrics are written by hand
    /// before it, see `rest::metrics`).
    pub registry: Registry,
    /// `rustydb_http_requests_total{method,route,status}`.
    pub by_route: Family<RouteLabels, Counter>,
    /// `rustydb_http_request_duration_seconds{class}`.
    pub duration: Family<ClassLabels, Histogram>,
    /// Its members for 2xx, 3xx, 4xx, 5xx (created at start: no lookup per request).
    by_class: [Histogram; 4],
    /// Gauges refreshed at scrape time.
    pub open_connections: Gauge,
    /// Sessions.
    pub sessions: Gauge,
    /// Open transactions.
    pub transactions: Gauge,
    /// Pool permits in use.
    pub pool_active: Family<PoolLabels, Gauge>,
    /// Requests waiting for a pool permit.
    pub pool_waiting: Family<PoolLabels, Gauge>,
    /// Active alerts.
    pub alerts: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ])
}

impl Metrics {
    /// Counters at zero and a registry holding them, plus `extra` collectors.
    pub fn new(memory: Option<&'static rustydb_memory::MemoryManager>) -> Self {
        let mut registry = Registry::default();
        let by_route = Family::<RouteLabels, Counter>::default();
        let duration = Family::<ClassLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let open_connections = Gauge::default();
        let sessions = Gauge::default();
        let transactions = Gauge::default();
        let pool_active = Family::<PoolLabels, Gauge>::default();
        let pool_waiting = Family::<PoolLabels, Gauge>::default();
        let alerts = Gauge::default();
        registry.register(
            "rustydb_http_requests",
            "HTTP requests answered, by route and status",
            by_route.clone(),
        );
        registry.register(
            "rustydb_http_request_duration_seconds",
            "HTTP response time by status class",
            duration.clone(),
        );
        registry.register(
            "rustydb_open_connections",
            "HTTP connections open now",
            open_connections.clone(),
        );
        registry.register(
            "rustydb_sessions",
            "Client sessions held by the server",
            sessions.clone(),
        );
        registry.register(
            "rustydb_open_transactions",
            "Transactions begun and not yet finished",
            transactions.clone(),
        );
        registry.register(
            "rustydb_pool_active_connections",
            "Admission-pool slots in use",
            pool_active.clone(),
        );
        registry.register(
            "rustydb_pool_waiting_requests",
            "Requests waiting for an admission-pool slot",
            pool_waiting.clone(),
        );
        registry.register(
            "rustydb_active_alerts",
            "Alerts not yet resolved",
            alerts.clone(),
        );
        if let Some(m) = memory {
            registry.register_collector(Box::new(rustydb_memory::manager::MemoryCollector::new(m)));
        }
        let by_class = ["2xx", "3xx", "4xx", "5xx"]
            .map(|class| duration.get_or_create(&ClassLabels { class }).clone());
        Self {
            by_class,
            total: AtomicU64::new(0),
            successful: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            latency: LatencyHistogram::default(),
            rate: RateWindow::default(),
            registry,
            by_route,
            duration,
            open_connections,
            sessions,
            transactions,
            pool_active,
            pool_waiting,
            alerts,
        }
    }

    /// Counts one answered request.
    pub fn record(
        &self,
        method: &hyper::Method,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        use hyper::Method as M;
        let method = match *method {
            M::GET => "GET",
            M::POST => "POST",
            M::PUT => "PUT",
            M::DELETE => "DELETE",
            M::HEAD => "HEAD",
            M::PATCH => "PATCH",
            M::OPTIONS => "OPTIONS",
            _ => "OTHER",
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        let class = match status {
            0..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        match class {
            0 | 1 => self.successful.fetch_add(1, Ordering::Relaxed),
            2 => self.client_errors.fetch_add(1, Ordering::Relaxed),
            _ => self.server_errors.fetch_add(1, Ordering::Relaxed),
        };
        self.latency.record(elapsed);
        self.rate.add(1);
        self.by_route
            .get_or_create(&RouteLabels {
                method,
                route,
                status,
            })
            .inc();
        self.by_class[class].observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for us in [0u64, 1, 2, 3, 5, 7, 8, 100, 1000, 12_345, 1 << 32] {
            let b = bucket_of(us);
            assert!(bucket_upper(b) > us, "us={us} b={b} up={}", bucket_upper(b));
            if b > 2 {
                assert!(bucket_upper(b - 1) <= us.max(1) + 1, "us={us}");
            }
        }
    }

    #[test]
    fn quantiles_and_means() {
        let h = LatencyHistogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert!((h.mean_ms() - 50.5).abs() < 0.01);
        let p50 = h.quantile_ms(0.5);
        assert!((50.0..=63.0).contains(&p50), "p50 {p50}");
        let p99 = h.quantile_ms(0.99);
        assert!((99.0..=100.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn rate_window_counts_recent_events() {
        let r = RateWindow::default();
        r.add(30);
        let ps = r.per_second();
        assert!((29.0..=30.0).contains(&ps), "{ps}");
    }
}
