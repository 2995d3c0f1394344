//! `/api/v1/alerts` and `/api/v1/logs`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::server::api::http::I64_MAX;

use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::observe::alerts::Alert;
use crate::server::observe::log_ring::{Level, Record};

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

/// Which alerts `GET /api/v1/alerts` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AlertState {
    /// Every alert (the default).
    All,
    /// Active alerts only.
    Active,
}

/// Minimum level of `GET /api/v1/logs` (`warning` is `warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// The default.
    Info,
    /// Warnings and errors.
    Warn,
    /// The same as `warn`.
    Warning,
    /// Errors.
    Error,
}

/// Alerts from memory pressure, emergency releases and the memory debugger.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring", security(("bearer" = [])),
    params(("state" = Option<AlertState>, Query, description = "`active` for active alerts only (default `all`)")),
    responses((status = 200, body = AlertsResponse), (status = 400, description = "An unknown `state`")))]
pub async fn alerts(req: Req) -> Result<Resp, Problem> {
    let active_only = match req.query.get("state") {
        None | Some("all") => false,
        Some("active") => true,
        Some(x) => {
            return Err(
                Problem::bad_request(format!("state must be active or all, got `{x}`"))
                    .with("parameter", "state"),
            );
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
    params(("id" = u64, Path)), responses((status = 200, body = Alert), (status = 404, description = "No such alert")))]
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
    params(("level" = Option<LogLevel>, Query, description = "Minimum level (default info)"),
           ("limit" = Option<u64>, Query, minimum = 1, maximum = 10_000, description = "Records returned (default 100)"),
           ("after" = Option<u64>, Query, minimum = 0, maximum = 9_223_372_036_854_775_807_i64, description = "Only records with a larger seq")),
    responses((status = 200, body = LogsResponse), (status = 400, description = "A parameter out of its range")))]
pub async fn logs(req: Req) -> Result<Resp, Problem> {
    let level = match req.query.get("level") {
        None => Level::Info,
        Some(l) => Level::parse(l).ok_or_else(|| {
            Problem::bad_request(format!(
                "level must be debug, info, warn, warning or error, got `{l}`"
            ))
            .with("parameter", "level")
        })?,
    };
    let limit = req.query.int("limit", 100, 1..=10_000)?;
    let after = req.query.int("after", 0, 0..=I64_MAX)?;
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
