//! `/api/v1/alerts` and `/api/v1/logs`.

use serde::Serialize;
use utoipa::ToSchema;

use super::super::alerts::Alert;
use super::super::http::{self, Resp};
use super::super::log_ring::{Level, Record};
use super::super::problem::Problem;
use super::super::routes::Req;

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertsResponse {
    /// Alerts, newest first (only active ones with `?state=active`).
    pub alerts: Vec<Alert>,
    /// Active alerts.
    pub active_count: u64,
    /// Raised since start.
    pub total_raised: u64,
}

/// Alerts from memory pressure, emergency releases and the memory debugger.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring", security(("bearer" = [])),
    params(("state" = Option<String>, Query, description = "`active` for active alerts only")),
    responses((status = 200, body = AlertsResponse), (status = 400)))]
pub async fn alerts(req: Req) -> Result<Resp, Problem> {
    let active_only = match req.query.get("state") {
        None | Some("all") => false,
        Some("active") => true,
        Some(x) => {
            return Err(Problem::bad_request(format!(
                "state must be active or all, got `{x}`"
            )));
        }
    };
    let a = &req.app.alerts;
    Ok(http::ok(&AlertsResponse {
        alerts: a.list(active_only),
        active_count: a.active_count() as u64,
        total_raised: a.raised.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

/// Resolves an alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "monitoring", security(("bearer" = [])),
    params(("id" = u64, Path)), responses((status = 200, body = Alert), (status = 404)))]
pub async fn acknowledge(req: Req) -> Result<Resp, Problem> {
    let id: u64 = req
        .param(0)
        .parse()
        .map_err(|_| Problem::not_found(format!("alert `{}` not found", req.param(0))))?;
    let a = req
        .app
        .alerts
        .acknowledge(id)
        .ok_or_else(|| Problem::not_found(format!("alert {id} not found")))?;
    Ok(http::ok(&a))
}

/// `GET /api/v1/logs`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogsResponse {
    /// Records, oldest first.
    pub logs: Vec<Record>,
    /// Records returned.
    pub count: u64,
    /// Records the ring holds now.
    pub held: u64,
    /// Records written since start.
    pub total_written: u64,
    /// The ring's capacity (`--log-capacity`).
    pub capacity: u64,
}

/// The server's log ring.
#[utoipa::path(get, path = "/api/v1/logs", tag = "monitoring", security(("bearer" = [])),
    params(("level" = Option<String>, Query, description = "debug, info (default), warn, error"),
           ("limit" = Option<u64>, Query, description = "1 to 10000, default 100"),
           ("after" = Option<u64>, Query, description = "only records with a larger seq")),
    responses((status = 200, body = LogsResponse), (status = 400)))]
pub async fn logs(req: Req) -> Result<Resp, Problem> {
    let level = match req.query.get("level") {
        None => Level::Info,
        Some(l) => Level::parse(l).ok_or_else(|| {
            Problem::bad_request(format!(
                "level must be debug, info, warn or error, got `{l}`"
            ))
        })?,
    };
    let limit = req.query.int("limit", 100, 1..=10_000)?;
    let after = req.query.int("after", 0, 0..=u64::MAX)?;
    let r = &req.app.logs;
    let logs = r.query(level, after, limit as usize);
    let (held, total) = r.counts();
    Ok(http::ok(&LogsResponse {
        count: logs.len() as u64,
        logs,
        held: held as u64,
        total_written: total,
        capacity: r.capacity() as u64,
    }))
}
