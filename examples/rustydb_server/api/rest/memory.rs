//! `/api/v1/memory/*`: the seed's recommended endpoints, on live state —
//! allocator statistics with fragmentation, the debugger's leak report, the
//! pressure manager (level, budget, history, webhooks), the memory-context
//! tree, buffer pools, and controls (purge, debugger level, ballast).

use std::alloc::Layout;

use hyper::StatusCode;
use rustydb_memory::debug::LeakScope;
use rustydb_memory::{DebugLevel, MemoryContext, PressureLevel, RustyAlloc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::server::api::http::{self, I64_MAX, Resp, unix_ms};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::state::{App, Ballast, LeakMark};

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One size class with live objects or cached ones.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SizeClassInfo {
    /// Object size.
    pub size: usize,
    /// Objects held by the program.
    pub live_objects: usize,
    /// live_objects × size.
    pub bytes_in_use: usize,
    /// Slabs.
    pub slabs: usize,
    /// Free objects in thread magazines.
    pub thread_cached: usize,
    /// Free objects in the depot.
    pub depot_objects: usize,
}

/// Everything `GET /api/v1/memory/stats` returns, built from one `MemoryStats` snapshot.
pub fn memory_stats(a: &App) -> Value {
    let s = a.mm.stats();
    let al = &s.allocator;
    let large = &al.large;
    let slab_in_use = al.bytes_in_use.saturating_sub(large.bytes_in_use) as u64;
    let slab_mapped = (al.segments as u64) << 21;
    let classes: Vec<SizeClassInfo> = al
        .classes
        .iter()
        .filter(|c| c.live_objects + c.thread_cached + c.depot_objects > 0)
        .map(|c| SizeClassInfo {
            size: c.size,
            live_objects: c.live_objects,
            bytes_in_use: c.live_objects * c.size,
            slabs: c.slabs,
            thread_cached: c.thread_cached,
            depot_objects: c.depot_objects,
        })
        .collect();
    let ctx_used: u64 = s.contexts.iter().map(|c| c.used as u64).sum();
    let ctx_reserved: u64 = s.contexts.iter().map(|c| c.reserved as u64).sum();
    let mi = rustydb_memory::sys::meminfo();
    let p = &s.pressure;
    json!({
        "timestamp_ms": unix_ms(),
        "rss_bytes": s.rss,
        "mapped_bytes": s.mapped,
        "in_use_bytes": s.in_use,
        "fragmentation_ratio": s.fragmentation,
        "allocators": {
            "slab": {
                "bytes_in_use": slab_in_use,
                "bytes_mapped": slab_mapped,
                "bytes_cached": al.bytes_cached,
                "fragmentation_ratio": ratio(slab_mapped, slab_in_use),
                "segments": al.segments,
                "units_in_use": al.units_in_use,
                "thread_caches": al.thread_caches,
                "magazines": al.magazines,
                "purges": al.purges,
                "purged_bytes": al.purged_bytes,
                "unmapped_segments": al.unmapped_segments,
                "depot_trims": al.depot_trims,
                "size_classes": classes,
            },
            "large": {
                "live": large.live,
                "bytes_in_use": large.bytes_in_use,
                "bytes_mapped": large.bytes_mapped,
                "fragmentation_ratio": ratio(
                    large.bytes_mapped.saturating_sub(large.bytes_cached) as u64,
                    large.bytes_in_use as u64
                ),
                "cached_blocks": large.cached,
                "bytes_cached": large.bytes_cached,
                "cache_hits": large.cache_hits,
                "cache_misses": large.cache_misses,
                "cache_hit_ratio": ratio(large.cache_hits, large.cache_hits + large.cache_misses),
                "mmap_calls": large.mmap_calls,
                "munmap_calls": large.munmap_calls,
                "mremap_calls": large.mremap_calls,
                "huge_2m_blocks": large.huge_2m,
                "thp_advised": large.thp_advised,
            },
            "arena": {
                "contexts": s.contexts.len(),
                "used_bytes": ctx_used,
                "reserved_bytes": ctx_reserved,
                "fragmentation_ratio": ratio(ctx_reserved, ctx_used),
            },
            "buffer_pools": s.pools.iter().map(|p| json!({"name": p.name, "held_bytes": p.held_bytes})).collect::<Vec<_>>(),
        },
        "pressure": {
            "level": p.level.as_str(),
            "usage_bytes": p.usage,
            "budget_bytes": p.budget,
            "usage_percent": ratio(p.usage, p.budget) * 100.0,
        },
        "debugger": s.debugger.map(|d| json!({
            "level": format!("{:?}", d.level).to_ascii_lowercase(),
            "tracked_blocks": d.tracked_blocks,
            "tracked_bytes": d.tracked_bytes,
            "quarantined_bytes": d.quarantined_bytes,
            "reports": d.reports,
            "guard_page_faults": d.guard_page_faults,
        })),
        "system": {
            "mem_total_bytes": mi.map(|m| m.total),
            "mem_available_bytes": mi.map(|m| m.available),
            "cgroup_memory_max_bytes": rustydb_memory::sys::cgroup_memory_max(),
            "cgroup_memory_current_bytes": rustydb_memory::sys::cgroup_memory_current(),
        },
    })
}

/// Per-allocator statistics with fragmentation ratios (mapped ÷ in use).
#[utoipa::path(get, path = "/api/v1/memory/stats", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "slab, large, arena, buffer pools; pressure; debugger; system", body = Object)))]
pub async fn stats(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&memory_stats(&req.app)))
}

fn level_name(l: DebugLevel) -> String {
    format!("{l:?}").to_ascii_lowercase()
}

const DEBUGGER_OFF: &str = "the memory debugger is not tracking allocations (level off or counting): start the server with RUSTYDB_MEM_DEBUG=tracking (or full), or PUT /api/v1/memory/debugger {\"level\":\"tracking\"}; only blocks allocated while tracking are reported";

/// Live tracked allocations since server start (or since a mark, or older
/// than an age), grouped by site and component, with the debugger's findings.
#[utoipa::path(get, path = "/api/v1/memory/leaks", tag = "memory", security(("bearer" = [])),
    params(("mark" = Option<u64>, Query, minimum = 1, maximum = 9_223_372_036_854_775_807_i64, description = "A mark id from POST /api/v1/memory/leaks/marks (default: server start)"),
           ("min_age_secs" = Option<u64>, Query, minimum = 0, maximum = 31_536_000, description = "Instead: blocks older than this"),
           ("component" = Option<String>, Query, description = "Only this component"),
           ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Groups returned (default 20)")),
    responses((status = 200, description = "The report, or enabled=false with the reason", body = Object),
              (status = 400, description = "A parameter out of its range"),
              (status = 404, description = "No such mark")))]
pub async fn leaks(req: Req) -> Result<Resp, Problem> {
    let a = req.app.clone();
    // Parameters are checked whether or not the debugger tracks.
    let limit = req.query.int("limit", 20, 1..=1000)? as usize;
    let min_age = req
        .query
        .get("min_age_secs")
        .map(|_| req.query.int("min_age_secs", 0, 0..=86_400 * 365))
        .transpose()?;
    let mark_id = req
        .query
        .get("mark")
        .map(|_| req.query.int("mark", 0, 1..=I64_MAX))
        .transpose()?;
    let Some(d) = a.debugger.filter(|d| d.level() >= DebugLevel::Tracking) else {
        return Ok(http::ok(&json!({
            "enabled": false,
            "level": level_name(a.debug_level()),
            "message": DEBUGGER_OFF,
            "leaks": null,
        })));
    };
    let scope = match req.query.get("component") {
        Some(c) if !c.is_empty() => LeakScope::Component(c.to_string()),
        _ => LeakScope::All,
    };
    let (since, mark) = match mark_id {
        None => ("server start".to_string(), a.start_mark),
        Some(id) => {
            let m = a
                .leak_marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|m| m.id == id)
                .copied()
                .ok_or_else(|| Problem::not_found(format!("leak mark {id} not found")))?;
            (format!("mark {id}"), Some(m.mark))
        }
    };
    let report = tokio::task::spawn_blocking(move || match (min_age, mark) {
        (Some(age), _) => d.long_lived(std::time::Duration::from_secs(age), scope),
        (None, Some(m)) => d.leaks_since(m, scope),
        (None, None) => d.long_lived(std::time::Duration::ZERO, scope),
    })
    .await
    .map_err(|_| Problem::internal("the leak report failed"))?;
    let groups: Vec<Value> = report
        .groups
        .iter()
        .take(limit)
        .map(|g| {
            json!({
                "component": g.component,
                "bytes": g.bytes,
                "count": g.count,
                "oldest_age_ms": g.oldest_age.as_millis() as u64,
                "site": g.site,
            })
        })
        .collect();
    let findings: Vec<Value> = d
        .reports()
        .iter()
        .rev()
        .take(50)
        .map(|r| {
            json!({
                "kind": format!("{:?}", r.kind),
                "addr": format!("{:#x}", r.addr),
                "size": r.size,
                "component": r.component,
                "text": r.to_string(),
            })
        })
        .collect();
    Ok(http::ok(&json!({
        "enabled": true,
        "level": level_name(d.level()),
        "since": if let Some(age) = min_age { format!("older than {age} s") } else { since },
        "bytes": report.bytes,
        "count": report.count,
        "groups": groups,
        "groups_total": report.groups.len(),
        "findings": findings,
        "components": d.components(),
    })))
}

/// The `format` of `GET /api/v1/memory/profile`, as the document states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ProfileFormatParam {
    /// dhat's JSON (the default): open it in `dh_view.html`.
    Dhat,
    /// A gzipped pprof `profile.proto`.
    Pprof,
}

/// A heap profile of the server's debugger: dhat JSON (open it in
/// `dh_view.html`) or gzipped pprof (`go tool pprof`, speedscope, Pyroscope).
/// Exact at the tracking and full levels, Poisson estimates at sampled, one
/// site per component at counting.
#[utoipa::path(get, path = "/api/v1/memory/profile", tag = "memory", security(("bearer" = [])),
    params(("format" = Option<ProfileFormatParam>, Query, description = "`dhat` (default) or `pprof`"),
           ("mark" = Option<u64>, Query, description = "Only blocks allocated since this mark (POST /api/v1/memory/leaks/marks) and still live")),
    responses((status = 200, description = "dhat JSON (dhatFileVersion 2, mode rust-heap), or with `format=pprof` a gzipped pprof profile.proto",
               content((Object = "application/json"), (String = "application/octet-stream"))),
              (status = 400, description = "Unknown format"), (status = 404, description = "Unknown mark"),
              (status = 409, description = "No debugger, or its level is off")))]
pub async fn profile(req: Req) -> Result<Resp, Problem> {
    use rustydb_memory::debug::{ProfileFormat, ProfileScope};
    let a = req.app.clone();
    let d = a
        .debugger
        .ok_or_else(|| Problem::conflict("no memory debugger is attached to this server"))?;
    if d.level() == DebugLevel::Off {
        return Err(Problem::conflict(
            "the memory debugger is off: start the server with RUSTYDB_MEM_DEBUG=sampled (or counting, tracking, full), or PUT /api/v1/memory/debugger",
        ));
    }
    // Exactly the document's enum (`ProfileFormatParam`): the library's
    // aliases (`json`, `pb`) are not part of the API.
    let format = match req.query.get("format") {
        None | Some("dhat") => ProfileFormatParam::Dhat,
        Some("pprof") => ProfileFormatParam::Pprof,
        Some(f) => {
            return Err(Problem::bad_request(format!(
                "unknown profile format `{f}`: use dhat or pprof"
            )));
        }
    };
    let format = match format {
        ProfileFormatParam::Dhat => ProfileFormat::Dhat,
        ProfileFormatParam::Pprof => ProfileFormat::Pprof,
    };
    let scope = match req.query.get("mark") {
        None => ProfileScope::Live,
        Some(_) => {
            let id = req.query.int("mark", 0, 1..=u64::MAX)?;
            let m = a
                .leak_marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|m| m.id == id)
                .copied()
                .ok_or_else(|| Problem::not_found(format!("leak mark {id} not found")))?;
            ProfileScope::Since(m.mark)
        }
    };
    let body = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        d.write_profile(&mut out, format, scope).map(|()| out)
    })
    .await
    .map_err(|_| Problem::internal("the profile failed"))?
    .map_err(|e| Problem::internal(format!("the profile failed: {e}")))?;
    Ok(http::bytes_response(
        StatusCode::OK,
        format.content_type(),
        body,
    ))
}

/// Records a mark to report leaks since.
#[utoipa::path(post, path = "/api/v1/memory/leaks/marks", tag = "memory", security(("bearer" = [])),
    responses((status = 201, description = "{mark_id, at_ms}", body = Object),
              (status = 409, description = "No memory debugger is attached")))]
pub async fn leak_mark(req: Req) -> Result<Resp, Problem> {
    let d = req
        .app
        .debugger
        .ok_or_else(|| Problem::conflict("no memory debugger is attached to this server"))?;
    let mut marks = req.app.leak_marks.lock().unwrap_or_else(|e| e.into_inner());
    let id = marks.last().map_or(1, |m| m.id + 1);
    if marks.len() == 64 {
        marks.remove(0);
    }
    let m = LeakMark {
        id,
        mark: d.mark(),
        at_ms: unix_ms(),
    };
    marks.push(m);
    Ok(http::json(
        StatusCode::CREATED,
        &json!({"mark_id": id, "at_ms": m.at_ms}),
    ))
}

/// The debugger's level, counters and components.
#[utoipa::path(get, path = "/api/v1/memory/debugger", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "Level, counters, components", body = Object)))]
pub async fn debugger(req: Req) -> Result<Resp, Problem> {
    let a = &req.app;
    Ok(http::ok(&match a.debugger {
        None => json!({"attached": false, "level": "off"}),
        Some(d) => json!({
            "attached": true,
            "level": level_name(d.level()),
            "stats": d.stats(),
            "components": d.components(),
        }),
    }))
}

/// A level of the memory debugger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DebuggerLevel {
    /// A pass-through.
    Off,
    /// Counts allocations.
    Counting,
    /// Records each block's site (leak reports).
    Tracking,
    /// Tracking, guard bytes and a quarantine.
    Full,
}

impl From<DebuggerLevel> for DebugLevel {
    fn from(l: DebuggerLevel) -> Self {
        match l {
            DebuggerLevel::Off => DebugLevel::Off,
            DebuggerLevel::Counting => DebugLevel::Counting,
            DebuggerLevel::Tracking => DebugLevel::Tracking,
            DebuggerLevel::Full => DebugLevel::Full,
        }
    }
}

/// `PUT /api/v1/memory/debugger` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebuggerRequest {
    /// The new level.
    pub level: DebuggerLevel,
}

/// Changes the debugger's level for allocations from now on.
#[utoipa::path(put, path = "/api/v1/memory/debugger", tag = "memory", security(("bearer" = [])),
    request_body = DebuggerRequest,
    responses((status = 200, description = "{previous, level}", body = Object),
              (status = 400, description = "Not a DebuggerRequest"),
              (status = 409, description = "No memory debugger is attached")))]
pub async fn set_debugger(req: Req) -> Result<Resp, Problem> {
    let b: DebuggerRequest = http::parse_object(&req.body)?;
    let l = DebugLevel::from(b.level);
    let d = req
        .app
        .debugger
        .ok_or_else(|| Problem::conflict("no memory debugger is attached to this server"))?;
    let before = d.level();
    d.set_level(l);
    req.app.logs.warn(
        "memory",
        format!(
            "debugger level changed from {} to {}",
            level_name(before),
            level_name(l)
        ),
    );
    Ok(http::ok(
        &json!({"previous": level_name(before), "level": level_name(l)}),
    ))
}

fn event_json(e: &rustydb_memory::pressure::PressureEvent) -> Value {
    json!({
        "seq": e.seq,
        "at": http::rfc3339(e.unix_ms),
        "unix_ms": e.unix_ms,
        "from": e.from.as_str(),
        "to": e.to.as_str(),
        "usage_bytes": e.usage,
        "budget_bytes": e.budget,
        "released_bytes": e.released,
        "callbacks": e.callbacks,
    })
}

/// The pressure manager as JSON (`history` newest last, at most `limit`).
pub fn pressure_json(a: &App, limit: usize) -> Value {
    let pm = a.mm.pressure();
    let s = pm.stats();
    let t = pm.thresholds();
    let h = pm.history();
    let skip = h.len().saturating_sub(limit);
    let mon = pm.monitor_info();
    json!({
        "level": s.level.as_str(),
        "usage_bytes": s.usage,
        "budget_bytes": s.budget,
        "usage_percent": ratio(s.usage, s.budget) * 100.0,
        "thresholds": {
            "warning": t.warning, "critical": t.critical, "emergency": t.emergency, "hysteresis": t.hysteresis,
            "warning_bytes": t.bytes(PressureLevel::Warning, s.budget),
            "critical_bytes": t.bytes(PressureLevel::Critical, s.budget),
            "emergency_bytes": t.bytes(PressureLevel::Emergency, s.budget),
        },
        "stats": s,
        "monitor": mon.map(|m| json!({"running": true, "allocator_signal": m.allocator_signal, "psi_trigger": m.psi_trigger}))
            .unwrap_or(json!({"running": false})),
        "psi": rustydb_memory::sys::memory_psi().map(|p| json!({"some_avg10_percent": p.some_avg10_centi as f64 / 100.0, "some_total_us": p.some_total_us})),
        "history": h[skip..].iter().map(event_json).collect::<Vec<_>>(),
        "history_total": h.len(),
        "callbacks": a.webhooks.all().iter().map(|w| w.info()).collect::<Vec<_>>(),
    })
}

/// Level, usage, budget, thresholds, counters, history and webhooks.
#[utoipa::path(get, path = "/api/v1/memory/pressure", tag = "memory", security(("bearer" = [])),
    params(("history_limit" = Option<u64>, Query, minimum = 0, maximum = 1024, description = "Events returned (default 100)")),
    responses((status = 200, description = "The pressure manager", body = Object),
              (status = 400, description = "`history_limit` out of range")))]
pub async fn pressure(req: Req) -> Result<Resp, Problem> {
    let n = req.query.int("history_limit", 100, 0..=1024)?;
    Ok(http::ok(&pressure_json(&req.app, n as usize)))
}

/// Samples usage now and runs reclaimers as the level requires.
#[utoipa::path(post, path = "/api/v1/memory/pressure/check", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "The pressure manager after the check", body = Object)))]
pub async fn pressure_check(req: Req) -> Result<Resp, Problem> {
    let a = req.app.clone();
    let level = tokio::task::spawn_blocking(move || a.mm.check_now())
        .await
        .map_err(|_| Problem::internal("the pressure check failed"))?;
    let mut v = pressure_json(&req.app, 10);
    v["checked_level"] = json!(level.as_str());
    Ok(http::ok(&v))
}

/// Registered webhooks.
#[utoipa::path(get, path = "/api/v1/memory/pressure/callbacks", tag = "memory", security(("bearer" = [])),
    responses((status = 200, body = Vec<crate::server::observe::alerts::WebhookInfo>)))]
pub async fn callbacks(req: Req) -> Result<Resp, Problem> {
    let v: Vec<_> = req.app.webhooks.all().iter().map(|w| w.info()).collect();
    Ok(http::ok(&v))
}

/// A pressure level, as webhooks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LevelName {
    /// Below the warning threshold.
    Normal,
    /// At least 80 % of the budget (by default).
    Warning,
    /// At least 90 %.
    Critical,
    /// At least 95 %.
    Emergency,
}

impl From<LevelName> for PressureLevel {
    fn from(l: LevelName) -> Self {
        match l {
            LevelName::Normal => PressureLevel::Normal,
            LevelName::Warning => PressureLevel::Warning,
            LevelName::Critical => PressureLevel::Critical,
            LevelName::Emergency => PressureLevel::Emergency,
        }
    }
}

/// `POST /api/v1/memory/pressure/callbacks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// `http://` to a loopback address (`127.x.y.z`, `[::1]` or `localhost`),
    /// an optional port and path (the document carries the exact pattern,
    /// `alerts::WEBHOOK_URL_PATTERN`).
    pub url: String,
    /// Called when either side of a transition is at least this level (default `warning`).
    pub min_level: Option<LevelName>,
}

/// Registers a webhook, POSTed a JSON event on every pressure level change.
#[utoipa::path(post, path = "/api/v1/memory/pressure/callbacks", tag = "memory", security(("bearer" = [])),
    request_body = CallbackRequest,
    responses((status = 201, body = crate::server::observe::alerts::WebhookInfo),
              (status = 400, description = "Not a CallbackRequest (the URL not loopback http)"),
              (status = 409, description = "32 webhooks are registered already")))]
pub async fn add_callback(req: Req) -> Result<Resp, Problem> {
    let b: CallbackRequest = http::parse_object(&req.body)?;
    let min = b
        .min_level
        .map_or(PressureLevel::Warning, PressureLevel::from);
    let w = req.app.webhooks.add(&b.url, min)?;
    req.app.logs.info(
        "pressure",
        format!("webhook {} registered: {} from {}", w.id, w.url, min),
    );
    Ok(http::json(StatusCode::CREATED, &w.info()))
}

/// Unregisters a webhook.
#[utoipa::path(delete, path = "/api/v1/memory/pressure/callbacks/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = u64, Path)),
    responses((status = 200, description = "Removed", body = Object), (status = 404, description = "No such webhook")))]
pub async fn remove_callback(req: Req) -> Result<Resp, Problem> {
    let id: u64 = req.param(0).parse().unwrap_or(0);
    if req.app.webhooks.remove(id) {
        Ok(http::ok(&json!({"id": id, "removed": true})))
    } else {
        Err(Problem::not_found(format!(
            "webhook `{}` not found",
            req.param(0)
        )))
    }
}

/// The live memory-context tree (sessions, transactions, queries, pools, ballast).
#[utoipa::path(get, path = "/api/v1/memory/contexts", tag = "memory", security(("bearer" = [])),
    params(("name" = Option<String>, Query, description = "Only contexts whose name starts with this")),
    responses((status = 200, description = "The contexts, depth first", body = Object)))]
pub async fn contexts(req: Req) -> Result<Resp, Problem> {
    let all = rustydb_memory::arena::contexts();
    let prefix = req.query.get("name").unwrap_or("");
    // Indexes first, so the walk is linear in the number of contexts.
    let by_id: std::collections::HashMap<u64, usize> =
        all.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let mut kids: std::collections::HashMap<u64, Vec<u64>> = Default::default();
    for c in &all {
        if let Some(p) = c.parent.filter(|p| by_id.contains_key(p)) {
            kids.entry(p).or_default().push(c.id);
        }
    }
    // Depth-first order from the roots (contexts whose parent is gone count
    // as roots); children in id order.
    let mut out = Vec::with_capacity(all.len());
    let mut stack: Vec<(u64, usize)> = all
        .iter()
        .filter(|c| c.parent.is_none_or(|p| !by_id.contains_key(&p)))
        .map(|c| (c.id, 0))
        .collect();
    stack.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    let mut visited = 0usize;
    while let Some((id, depth)) = stack.pop() {
        // A racy snapshot cannot make a cycle longer than the registry.
        visited += 1;
        if visited > all.len() {
            break;
        }
        if let Some(c) = by_id.get(&id).map(|&i| &all[i]) {
            if c.name.starts_with(prefix) {
                out.push(json!({
                    "id": c.id,
                    "name": c.name,
                    "parent_id": c.parent,
                    "depth": depth,
                    "used_bytes": c.used,
                    "reserved_bytes": c.reserved,
                    "peak_bytes": c.peak,
                    "chunks": c.chunks,
                    "children": c.children,
                    "limit_bytes": c.limit,
                    "charged_bytes": c.charged,
                }));
            }
            if let Some(mut k) = kids.remove(&id) {
                k.sort_unstable_by(|a, b| b.cmp(a));
                stack.extend(k.into_iter().map(|k| (k, depth + 1)));
            }
        }
    }
    Ok(http::ok(&json!({
        "count": out.len(),
        "total_used_bytes": all.iter().map(|c| c.used as u64).sum::<u64>(),
        "total_reserved_bytes": all.iter().map(|c| c.reserved as u64).sum::<u64>(),
        "contexts": out,
    })))
}

/// Buffer pools registered with the memory manager.
#[utoipa::path(get, path = "/api/v1/memory/buffer-pool", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "Configured size and attached pools", body = Object)))]
pub async fn buffer_pool(req: Req) -> Result<Resp, Problem> {
    let a = &req.app;
    let pools = a.mm.stats().pools;
    Ok(http::ok(&json!({
        "attached": !pools.is_empty(),
        "configured": {
            "pages": a.cfg.buffer_pool_pages,
            "page_size": a.cfg.page_size,
            "bytes": a.cfg.buffer_pool_pages as u64 * a.cfg.page_size as u64,
        },
        "pools": pools.iter().map(|p| json!({"name": p.name, "held_bytes": p.held_bytes})).collect::<Vec<_>>(),
        "message": if pools.is_empty() { Some("no buffer pool is attached to the memory manager yet") } else { None },
    })))
}

/// Returns free memory to the OS now: allocator caches and spare context chunks.
#[utoipa::path(post, path = "/api/v1/memory/purge", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "Bytes released and RSS before and after", body = Object)))]
pub async fn purge(req: Req) -> Result<Resp, Problem> {
    let r = tokio::task::spawn_blocking(|| {
        let before = rustydb_memory::sys::process_rss().unwrap_or(0);
        let spare = rustydb_memory::arena::release_spare_chunks() as u64;
        let alloc = RustyAlloc.purge();
        let after = rustydb_memory::sys::process_rss().unwrap_or(0);
        json!({
            "context_spare_released_bytes": spare,
            "allocator_released_bytes": alloc,
            "rss_before_bytes": before,
            "rss_after_bytes": after,
        })
    })
    .await
    .map_err(|_| Problem::internal("purge failed"))?;
    req.app.logs.info("memory", format!("purge requested: {r}"));
    Ok(http::ok(&r))
}

fn ballast_json(b: Option<&Ballast>) -> Value {
    match b {
        None => json!({"bytes": 0, "context_id": null}),
        Some(b) => {
            json!({"bytes": b.bytes, "context_id": b.ctx.id(), "created_at_ms": b.created_ms})
        }
    }
}

/// Memory held on purpose (to exercise pressure handling).
#[utoipa::path(get, path = "/api/v1/memory/ballast", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "The ballast held", body = Object)))]
pub async fn ballast(req: Req) -> Result<Resp, Problem> {
    let g = req.app.ballast.lock().unwrap_or_else(|e| e.into_inner());
    Ok(http::ok(&ballast_json(g.as_ref())))
}

/// `POST /api/v1/memory/ballast` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BallastRequest {
    /// Bytes to hold (resident: every page is written), 1 up to twice the
    /// memory budget within `--max-ballast` (the document's maximum).
    #[serde(deserialize_with = "http::whole_u64")]
    #[schema(minimum = 1)]
    pub bytes: u64,
}

/// Holds `bytes` of resident memory in a memory context named `ballast`
/// (replacing any previous ballast), so pressure levels, reclaimers, alerts and
/// webhooks can be exercised on a live server.
#[utoipa::path(post, path = "/api/v1/memory/ballast", tag = "memory", security(("bearer" = [])),
    request_body = BallastRequest,
    responses((status = 201, description = "The ballast held", body = Object),
              (status = 400, description = "`bytes` out of range"),
              (status = 503, description = "The system cannot hold that much now (more than 90 % of available memory, or the allocation failed)")))]
pub async fn set_ballast(req: Req) -> Result<Resp, Problem> {
    let b: BallastRequest = http::parse_object(&req.body)?;
    // Up to twice the budget (to push past it on purpose) within
    // --max-ballast: the document's maximum.
    let max = crate::server::api::openapi::complete::ballast_max(&req.app);
    if b.bytes == 0 || b.bytes > max {
        return Err(Problem::bad_request(format!(
            "bytes must be 1 to {max} (twice the memory budget, within --max-ballast)"
        ))
        .with("parameter", "bytes"));
    }
    // Never more than 90 % of the memory the system has available now.
    let avail = rustydb_memory::sys::meminfo().map_or(u64::MAX, |m| m.available / 10 * 9);
    if b.bytes > avail {
        return Err(Problem::unavailable(
            "ballast-refused",
            "Ballast refused",
            format!(
                "{} bytes is more than 90 % of the memory available now ({avail} bytes)",
                b.bytes
            ),
            1,
        ));
    }
    let old = req
        .app
        .ballast
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    drop(old);
    let bytes = b.bytes;
    let made = tokio::task::spawn_blocking(move || {
        let ctx = MemoryContext::builder("ballast").build();
        let layout = Layout::from_size_align(bytes as usize, 4096).map_err(|e| e.to_string())?;
        let p = ctx.try_alloc_layout(layout).map_err(|e| e.to_string())?;
        // SAFETY: `p` is `bytes` fresh bytes owned by `ctx`; writing makes them resident.
        unsafe { std::ptr::write_bytes(p.as_ptr(), 0x5a, bytes as usize) };
        Ok::<_, String>(ctx)
    })
    .await
    .map_err(|_| Problem::internal("ballast allocation failed"))?
    .map_err(|e| {
        Problem::unavailable(
            "ballast-refused",
            "Ballast refused",
            format!("could not hold {bytes} bytes: {e}"),
            1,
        )
    })?;
    let ballast = Ballast {
        ctx: made,
        bytes,
        created_ms: unix_ms(),
    };
    let body = ballast_json(Some(&ballast));
    *req.app.ballast.lock().unwrap_or_else(|e| e.into_inner()) = Some(ballast);
    req.app
        .logs
        .warn("memory", format!("ballast of {bytes} bytes held"));
    Ok(http::json(StatusCode::CREATED, &body))
}

/// Frees the ballast.
#[utoipa::path(delete, path = "/api/v1/memory/ballast", tag = "memory", security(("bearer" = [])),
    responses((status = 200, description = "{freed_bytes}", body = Object)))]
pub async fn drop_ballast(req: Req) -> Result<Resp, Problem> {
    let old = req
        .app
        .ballast
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let freed = old.as_ref().map_or(0, |b| b.bytes);
    drop(old);
    if freed > 0 {
        req.app
            .logs
            .info("memory", format!("ballast of {freed} bytes freed"));
    }
    Ok(http::ok(&json!({"freed_bytes": freed})))
}
