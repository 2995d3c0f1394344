//! Background tasks: the pressure watcher (alerts, webhooks, log records from
//! pressure events), the debugger watcher, the CPU sampler, the history
//! sampler (one sample a second for the dashboard), and the reapers
//! (pool slots, idle sessions, idle transactions). They hold a weak reference
//! and end with the server.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rustydb_memory::PressureLevel;
use rustydb_memory::pressure::PressureEvent;
use serde_json::json;

use crate::server::sql::txn::Outcome;
use crate::server::state::App;

/// Starts the tasks.
pub fn spawn(app: &Arc<App>) {
    tokio::spawn(pressure_watch(Arc::downgrade(app)));
    tokio::spawn(housekeeping(Arc::downgrade(app)));
    tokio::spawn(crate::server::observe::history::run(Arc::downgrade(app)));
}

fn alive(w: &Weak<App>) -> Option<Arc<App>> {
    w.upgrade()
        .filter(|a| !a.shutting_down.load(Ordering::Relaxed))
}

/// Reacts to new pressure events: log, alert, webhooks.
pub fn on_event(app: &App, e: &PressureEvent) {
    let pct = if e.budget == 0 {
        0.0
    } else {
        e.usage as f64 * 100.0 / e.budget as f64
    };
    let details = json!({
        "seq": e.seq,
        "from": e.from.as_str(),
        "to": e.to.as_str(),
        "usage_bytes": e.usage,
        "budget_bytes": e.budget,
        "usage_percent": pct,
        "released_bytes": e.released,
        "callbacks": e.callbacks,
    });
    if e.from != e.to {
        let msg = format!(
            "memory pressure {} -> {}: {} of {} bytes ({pct:.1} %)",
            e.from, e.to, e.usage, e.budget
        );
        if e.to > e.from {
            app.logs.warn("pressure", msg.clone());
        } else {
            app.logs.info("pressure", msg.clone());
        }
        app.alerts.resolve_source("memory.pressure");
        if e.to > PressureLevel::Normal {
            app.alerts
                .raise(e.to.as_str(), "memory.pressure", msg, true, details.clone());
        }
        let payload = Arc::new(
            serde_json::to_vec(&json!({
                "event": "memory.pressure.level_changed",
                "at": crate::server::api::http::rfc3339(e.unix_ms),
                "seq": e.seq,
                "from": e.from.as_str(),
                "to": e.to.as_str(),
                "usage_bytes": e.usage,
                "budget_bytes": e.budget,
                "usage_percent": pct,
                "released_bytes": e.released,
                "callbacks": e.callbacks.iter().map(|c| &c.name).collect::<Vec<_>>(),
            }))
            .unwrap_or_default(),
        );
        for w in app.webhooks.all() {
            if e.from.max(e.to) >= w.min_level {
                w.enqueue(payload.clone());
            }
        }
    }
    if !e.callbacks.is_empty() {
        let names: Vec<&str> = e.callbacks.iter().map(|c| c.name.as_str()).collect();
        let level = e.from.max(e.to);
        let msg = format!(
            "reclaimers released {} bytes at level {level}: {}",
            e.released,
            names.join(", ")
        );
        app.logs.warn("pressure", msg.clone());
        let severity = if level >= PressureLevel::Emergency {
            "critical"
        } else {
            "info"
        };
        app.alerts
            .raise(severity, "memory.release", msg, false, details);
    }
}

async fn pressure_watch(w: Weak<App>) {
    let mut last_seq = 0u64;
    let mut last_counts = (u64::MAX, u64::MAX);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(app) = alive(&w) else { return };
        let s = app.mm.pressure().stats();
        if (s.transitions, s.releases) == last_counts {
            continue;
        }
        last_counts = (s.transitions, s.releases);
        let history = app.mm.history();
        for e in history.iter().filter(|e| e.seq > last_seq) {
            on_event(&app, e);
        }
        last_seq = history.last().map_or(last_seq, |e| e.seq.max(last_seq));
    }
}

async fn housekeeping(w: Weak<App>) {
    let mut last_reports = 0u64;
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tick += 1;
        let Some(app) = alive(&w) else { return };
        app.cpu.sample();
        let now = Instant::now();
        for p in &app.pools.all {
            let n = p.reap(now);
            if n > 0 {
                app.logs.debug(
                    "pool",
                    format!("pool {}: {n} idle slot(s) destroyed", p.cfg.pool_id),
                );
            }
        }
        let closed = app.sessions.reap(app.cfg.session_idle_timeout);
        if closed > 0 {
            app.logs
                .info("session", format!("{closed} idle session(s) closed"));
        }
        for t in app.txns.take_where(Some(app.cfg.txn_idle_timeout), None) {
            let id = t.id;
            let _ = crate::server::sql::exec::end_txn(&app, id, false).await;
            app.txns.finish(t, Outcome::TimedOut);
            app.logs.warn(
                "txn",
                format!(
                    "transaction {id} rolled back after {:?} idle",
                    app.cfg.txn_idle_timeout
                ),
            );
        }
        if tick.is_multiple_of(2) {
            check_debugger(&app, &mut last_reports).await;
        }
    }
}

/// Raises an alert for the debugger's new findings (double/invalid frees,
/// overflows, writes after free).
async fn check_debugger(app: &Arc<App>, last_reports: &mut u64) {
    let Some(d) = app.debugger else { return };
    if d.level() < rustydb_memory::DebugLevel::Tracking {
        return;
    }
    let st = tokio::task::spawn_blocking(move || {
        let s = d.stats();
        let reports = if s.reports > 0 {
            d.reports()
        } else {
            Vec::new()
        };
        (s.reports, reports)
    })
    .await;
    let Ok((n, reports)) = st else { return };
    if n <= *last_reports {
        return;
    }
    let new = (n - *last_reports) as usize;
    let kinds: Vec<String> = reports
        .iter()
        .rev()
        .take(new.min(8))
        .map(|r| format!("{:?} of {} bytes ({})", r.kind, r.size, r.component))
        .collect();
    let msg = format!(
        "memory debugger reported {new} new finding(s): {}",
        kinds.join("; ")
    );
    app.logs.error("memory", msg.clone());
    app.alerts.raise(
        "critical",
        "memory.debugger",
        msg,
        true,
        json!({"reports_total": n, "new": new}),
    );
    *last_reports = n;
}
