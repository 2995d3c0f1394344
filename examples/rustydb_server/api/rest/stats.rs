//! Metrics, statistics, connections and sessions.

use std::sync::atomic::Ordering;

use hyper::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::server::api::conns::ConnectionInfo;
use crate::server::api::http::{self, Resp, unix_now};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::memory::sessions::SessionInfo;
use crate::server::observe::metrics::PoolLabels;
use crate::server::observe::querystats::{SlowQuery, TopQuery};
use crate::server::observe::sysinfo;
use crate::server::sql::txn::Outcome;
use crate::server::state::App;

/// A value with its unit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Metric {
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: &'static str,
}

fn m(value: f64, unit: &'static str) -> Metric {
    Metric { value, unit }
}

/// `GET /api/v1/metrics`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricsResponse {
    /// Unix seconds.
    pub timestamp: u64,
    /// By name (the seed's three first).
    #[serde(serialize_with = "as_map")]
    #[schema(value_type = std::collections::HashMap<String, Metric>)]
    pub metrics: Vec<(&'static str, Metric)>,
}

fn as_map<S: serde::Serializer>(v: &[(&'static str, Metric)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, m)| (k, m)))
}

/// Request counters and response times (measured).
#[utoipa::path(get, path = "/api/v1/metrics", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, body = MetricsResponse)))]
pub async fn metrics(req: Req) -> Result<Resp, Problem> {
    let a = &req.app;
    let x = &a.metrics;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
    let (client, server) = (load(&x.client_errors), load(&x.server_errors));
    let rss = rustydb_memory::sys::process_rss();
    let mut v = vec![
        ("successful_requests", m(load(&x.successful), "count")),
        ("avg_response_time", m(x.latency.mean_ms(), "milliseconds")),
        ("total_requests", m(load(&x.total), "count")),
        ("failed_requests", m(client + server, "count")),
        ("client_errors", m(client, "count")),
        ("server_errors", m(server, "count")),
        ("handler_panics", m(load(&x.panics), "count")),
        (
            "p50_response_time",
            m(x.latency.quantile_ms(0.5), "milliseconds"),
        ),
        (
            "p99_response_time",
            m(x.latency.quantile_ms(0.99), "milliseconds"),
        ),
        ("max_response_time", m(x.latency.max_ms(), "milliseconds")),
        (
            "requests_per_second",
            m(x.rate.per_second(), "requests/second"),
        ),
        ("active_requests", m(load(&x.in_flight), "count")),
        ("open_connections", m(a.conns.count() as f64, "count")),
        ("uptime", m(a.started.elapsed().as_secs_f64(), "seconds")),
    ];
    // Absent, not 0, when /proc/self/status cannot be read.
    if let Some(rss) = rss {
        v.push(("memory_rss", m(rss as f64, "bytes")));
    }
    Ok(http::ok(&MetricsResponse {
        timestamp: unix_now(),
        metrics: v,
    }))
}

fn refresh_gauges(a: &App) {
    let x = &a.metrics;
    x.open_connections.set(a.conns.count() as i64);
    x.sessions.set(a.sessions.count() as i64);
    x.transactions.set(a.txns.count() as i64);
    x.alerts.set(a.alerts.active_count() as i64);
    for p in &a.pools.all {
        let s = p.stats();
        let l = PoolLabels {
            pool: s.pool_id.clone(),
        };
        x.pool_active
            .get_or_create(&l)
            .set(s.active_connections as i64);
        x.pool_waiting
            .get_or_create(&l)
            .set(s.waiting_requests as i64);
    }
}

/// The Prometheus text: the seed's three metrics, then the registry
/// (`rustydb_http_*`, server gauges, and the memory manager's
/// `rustydb_memory_*` per allocator with the fragmentation ratio).
pub fn prometheus_text(a: &App) -> Result<String, std::fmt::Error> {
    use std::fmt::Write;
    refresh_gauges(a);
    let x = &a.metrics;
    let mut s = String::with_capacity(16 << 10);
    writeln!(s, "# HELP rustydb_total_requests Total number of requests")?;
    writeln!(s, "# TYPE rustydb_total_requests counter")?;
    writeln!(
        s,
        "rustydb_total_requests {}",
        x.total.load(Ordering::Relaxed)
    )?;
    writeln!(
        s,
        "# HELP rustydb_successful_requests Number of successful requests"
    )?;
    writeln!(s, "# TYPE rustydb_successful_requests counter")?;
    writeln!(
        s,
        "rustydb_successful_requests {}",
        x.successful.load(Ordering::Relaxed)
    )?;
    writeln!(
        s,
        "# HELP rustydb_avg_response_time_ms Average response time in milliseconds"
    )?;
    writeln!(s, "# TYPE rustydb_avg_response_time_ms gauge")?;
    writeln!(s, "rustydb_avg_response_time_ms {}", x.latency.mean_ms())?;
    prometheus_client::encoding::text::encode_registry(&mut s, &x.registry)?;
    Ok(s)
}

/// Prometheus exposition (text format 0.0.4).
#[utoipa::path(get, path = "/api/v1/metrics/prometheus", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", description = "Prometheus text")))]
pub async fn prometheus(req: Req) -> Result<Resp, Problem> {
    let s = prometheus_text(&req.app).map_err(|_| Problem::internal("metrics encoding failed"))?;
    Ok(http::bytes_response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        s.into_bytes(),
    ))
}

/// `GET /api/v1/stats/performance`. A reading the system does not give
/// (an unreadable `/proc` file, no engine) is `null`, never 0.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PerformanceResponse {
    /// CPU used by the process over the last second, percent of one core;
    /// `null` where `/proc/self/stat` cannot be read.
    pub cpu_usage_percent: Option<f64>,
    /// Resident set size (VmRSS); `null` where `/proc/self/status` cannot be read.
    pub memory_usage_bytes: Option<u64>,
    /// RSS as a percentage of the memory budget (`null` with the RSS).
    pub memory_usage_percent: Option<f64>,
    /// The budget the percentage is of.
    pub memory_budget_bytes: u64,
    /// Bytes read from storage by the process (`/proc/self/io`); `null`
    /// where it cannot be read.
    pub disk_io_read_bytes: Option<u64>,
    /// Bytes written to storage by the process (`null` as above).
    pub disk_io_write_bytes: Option<u64>,
    /// Buffer-pool hit ratio, `null` while no pool is attached.
    pub cache_hit_ratio: Option<f64>,
    /// Where the ratio comes from.
    pub cache_hit_ratio_source: String,
    /// Transactions finished per second over the last minute.
    pub transactions_per_second: f64,
    /// Locks held now: the SQL engine's writer lock, 0 or 1 (`null` without
    /// an engine that locks). Readers take no lock (they read snapshots).
    pub locks_held: Option<u64>,
    /// Deadlocks: 0 — writers take one lock, so no wait cycle can form; a
    /// wait that lasts too long ends as a timeout (`lock_timeouts`).
    pub deadlocks: Option<u64>,
    /// Statements waiting for the writer lock now.
    pub lock_waiting: Option<u64>,
    /// Statements that waited for the writer lock, since start.
    pub lock_waits: Option<u64>,
    /// Waits that gave up (answered 409), since start.
    pub lock_timeouts: Option<u64>,
    /// Readers holding a snapshot now.
    pub snapshots: Option<u64>,
    /// The SQL engine's write-ahead log (`null` without one).
    pub log: Option<crate::server::sql::engine::LogStats>,
    /// Requests per second over the last minute.
    pub requests_per_second: f64,
    /// Queries per second over the last minute.
    pub queries_per_second: f64,
    /// Threads of the process; `null` where `/proc/self/status` cannot be read.
    pub threads: Option<u64>,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// (hits, misses, source) of the cache, if any is attached.
pub fn cache_counters(a: &App) -> Option<(u64, u64, String)> {
    a.engine
        .cache_counters()
        .map(|(h, m)| (h, m, format!("buffer pool of engine `{}`", a.engine.name())))
}

/// Measured process and server figures.
#[utoipa::path(get, path = "/api/v1/stats/performance", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = PerformanceResponse)))]
pub async fn performance(req: Req) -> Result<Resp, Problem> {
    let a = &req.app;
    let rss = rustydb_memory::sys::process_rss();
    let budget = a.mm.pressure().budget();
    let io = sysinfo::process_io();
    let locks = a.engine.locks();
    let (ratio, source) = match cache_counters(a) {
        Some((h, mi, src)) if h + mi > 0 => (Some(h as f64 / (h + mi) as f64), src),
        Some((_, _, src)) => (None, format!("{src} (no accesses yet)")),
        None => (None, "no buffer pool attached".to_string()),
    };
    Ok(http::ok(&PerformanceResponse {
        cpu_usage_percent: a.cpu.percent(),
        memory_usage_bytes: rss,
        memory_usage_percent: rss
            .filter(|_| budget > 0)
            .map(|r| r as f64 * 100.0 / budget as f64),
        memory_budget_bytes: budget,
        disk_io_read_bytes: io.map(|(r, _)| r),
        disk_io_write_bytes: io.map(|(_, w)| w),
        cache_hit_ratio: ratio,
        cache_hit_ratio_source: source,
        transactions_per_second: a.txns.rate.per_second(),
        locks_held: locks.map(|l| l.held),
        deadlocks: locks.map(|_| 0),
        lock_waiting: locks.map(|l| l.waiting),
        lock_waits: locks.map(|l| l.waits),
        lock_timeouts: locks.map(|l| l.timeouts),
        snapshots: locks.map(|l| l.snapshots),
        log: a.engine.log(),
        requests_per_second: a.metrics.rate.per_second(),
        queries_per_second: a.queries.rate.per_second(),
        threads: sysinfo::process_threads(),
        uptime_seconds: a.uptime_secs(),
    }))
}

/// `GET /api/v1/stats/sessions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionStatsResponse {
    /// Sessions with a request running or a transaction open.
    pub active_sessions: u64,
    /// The others.
    pub idle_sessions: u64,
    /// Every session.
    pub sessions: Vec<SessionInfo>,
    /// HTTP connections accepted since start.
    pub total_connections: u64,
    /// Most HTTP connections open at once.
    pub peak_connections: u64,
    /// HTTP connections open now.
    pub open_connections: u64,
    /// Sessions opened since start.
    pub sessions_opened: u64,
    /// Sessions closed since start.
    pub sessions_closed: u64,
}

/// Sessions and connection totals.
#[utoipa::path(get, path = "/api/v1/stats/sessions", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = SessionStatsResponse)))]
pub async fn session_stats(req: Req) -> Result<Resp, Problem> {
    let a = &req.app;
    let ctxs = crate::server::memory::ctx::Snapshot::take();
    let sessions: Vec<SessionInfo> = a.sessions.all().iter().map(|s| s.info(&ctxs)).collect();
    let active = sessions.iter().filter(|s| s.state == "active").count() as u64;
    Ok(http::ok(&SessionStatsResponse {
        active_sessions: active,
        idle_sessions: sessions.len() as u64 - active,
        sessions,
        total_connections: a.conns.accepted.load(Ordering::Relaxed),
        peak_connections: a.conns.peak.load(Ordering::Relaxed),
        open_connections: a.conns.count() as u64,
        sessions_opened: a.sessions.opened.load(Ordering::Relaxed),
        sessions_closed: a.sessions.closed.load(Ordering::Relaxed),
    }))
}

/// `GET /api/v1/stats/queries`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueryStatsResponse {
    /// SQL statements and GraphQL operations run.
    pub total_queries: u64,
    /// Of which failed.
    pub failed_queries: u64,
    /// Per second over the last minute.
    pub queries_per_second: f64,
    /// Mean duration.
    pub avg_execution_time_ms: f64,
    /// 99th percentile duration.
    pub p99_execution_time_ms: f64,
    /// The threshold for `slow_queries`.
    pub slow_query_threshold_ms: u64,
    /// The latest slow queries, newest first.
    pub slow_queries: Vec<SlowQuery>,
    /// The queries with the most total time.
    pub top_queries: Vec<TopQuery>,
}

/// Query statistics.
#[utoipa::path(get, path = "/api/v1/stats/queries", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = QueryStatsResponse)))]
pub async fn query_stats(req: Req) -> Result<Resp, Problem> {
    let q = &req.app.queries;
    Ok(http::ok(&QueryStatsResponse {
        total_queries: q.total.load(Ordering::Relaxed),
        failed_queries: q.failed.load(Ordering::Relaxed),
        queries_per_second: q.rate.per_second(),
        avg_execution_time_ms: q.latency.mean_ms(),
        p99_execution_time_ms: q.latency.quantile_ms(0.99),
        slow_query_threshold_ms: req.app.cfg.slow_query_ms,
        slow_queries: q.slow(),
        top_queries: q.top(10),
    }))
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// Items of this page.
    pub data: Vec<T>,
    /// Page number, from 1.
    pub page: u64,
    /// Items per page.
    pub page_size: u64,
    /// Pages.
    pub total_pages: u64,
    /// Items in all pages.
    pub total_count: u64,
}

/// Paginates `items` by the `page` and `page_size` parameters (1.., 1..=1000; 50 per page).
pub fn paginate<T: Clone + ToSchema>(req: &Req, items: Vec<T>) -> Result<Page<T>, Problem> {
    let page = req.query.int("page", 1, 1..=1_000_000)?;
    let size = req.query.int("page_size", 50, 1..=1000)?;
    let total = items.len() as u64;
    let data = items
        .into_iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .collect();
    Ok(Page {
        data,
        page,
        page_size: size,
        total_pages: total.div_ceil(size),
        total_count: total,
    })
}

/// Open HTTP connections (this request's own included), paginated.
#[utoipa::path(get, path = "/api/v1/connections", tag = "sessions", security(("bearer" = [])),
    params(("page" = Option<u64>, Query, minimum = 1, maximum = 1_000_000, description = "Page, from 1"),
           ("page_size" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 50)")),
    responses((status = 200, body = Page<ConnectionInfo>), (status = 400, description = "`page` or `page_size` out of range")))]
pub async fn connections(req: Req) -> Result<Resp, Problem> {
    let list = req.app.conns.list();
    Ok(http::ok(&paginate(&req, list)?))
}

/// Sessions, paginated.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security(("bearer" = [])),
    params(("page" = Option<u64>, Query, minimum = 1, maximum = 1_000_000, description = "Page, from 1"),
           ("page_size" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 50)")),
    responses((status = 200, body = Page<SessionInfo>), (status = 400, description = "`page` or `page_size` out of range")))]
pub async fn sessions(req: Req) -> Result<Resp, Problem> {
    let ctxs = crate::server::memory::ctx::Snapshot::take();
    let list: Vec<SessionInfo> = req
        .app
        .sessions
        .all()
        .iter()
        .map(|s| s.info(&ctxs))
        .collect();
    Ok(http::ok(&paginate(&req, list)?))
}

fn session_id(req: &Req) -> Result<u64, Problem> {
    req.param(0)
        .parse()
        .map_err(|_| Problem::not_found(format!("session `{}` not found", req.param(0))))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = u64, Path)), responses((status = 200, body = SessionInfo), (status = 404, description = "No such session")))]
pub async fn session(req: Req) -> Result<Resp, Problem> {
    let id = session_id(&req)?;
    let s = req
        .app
        .sessions
        .get(id)
        .ok_or_else(|| Problem::not_found(format!("session {id} not found")))?;
    Ok(http::ok(
        &s.info(&crate::server::memory::ctx::Snapshot::take()),
    ))
}

/// Closes a session: its open transactions are rolled back and its memory freed.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = u64, Path)),
    responses((status = 200, description = "Closed", body = Object), (status = 404, description = "No such session"),
              (status = 409, description = "A session cannot close itself")))]
pub async fn close_session(req: Req) -> Result<Resp, Problem> {
    let id = session_id(&req)?;
    let a = &req.app;
    if req.session.as_ref().is_some_and(|s| s.id == id) {
        return Err(Problem::conflict(
            "a session cannot close itself; use another X-Session-Id",
        ));
    }
    let s = a
        .sessions
        .remove(id)
        .ok_or_else(|| Problem::not_found(format!("session {id} not found")))?;
    let txns = a.txns.take_where(None, Some(id));
    let n = txns.len();
    for t in txns {
        let _ = crate::server::sql::exec::end_txn(a, t.id, false).await;
        a.txns.finish(t, Outcome::Aborted);
    }
    a.logs.info(
        "session",
        format!("session {id} closed by an admin; {n} open transaction(s) rolled back"),
    );
    drop(s);
    Ok(http::ok(
        &json!({"session_id": id, "closed": true, "transactions_rolled_back": n}),
    ))
}
