//! `/`, `/api/v1/admin/*` and the OpenAPI document.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use hyper::StatusCode;
use rustydb_memory::PressureLevel;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::server::api::auth::{Role, TokenInfo};
use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::state::VERSION;

/// One health check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    /// `healthy`, `degraded`, `unhealthy` (or `not_configured`, which does not count).
    pub status: &'static str,
    /// What was found.
    #[schema(value_type = String)]
    pub message: Cow<'static, str>,
}

/// The checks, by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Checks {
    /// The engine reads its catalog (and its log has not failed).
    pub database: Check,
    /// The data directory is writable.
    pub storage: Check,
    /// The memory pressure level.
    pub memory: Check,
    /// Whether an SQL engine is plugged in.
    pub sql_engine: Check,
}

/// `GET /api/v1/admin/health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthResponse {
    /// The worst of the checks.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// The checks.
    pub checks: Checks,
}

/// `GET /`.
#[utoipa::path(get, path = "/", tag = "admin", responses((status = 200, description = "Where to start", body = Object)))]
pub async fn index(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&json!({
        "name": "rustydb_server",
        "version": VERSION,
        "uptime_seconds": req.app.uptime_secs(),
        "health": "/api/v1/admin/health",
        "openapi": "/api/v1/openapi.json",
        "graphql": "/graphql",
    })))
}

fn writable(p: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    p.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0
}

/// `GET /api/v1/admin/health` (no token needed; 503 when unhealthy).
#[utoipa::path(get, path = "/api/v1/admin/health", tag = "admin",
    responses((status = 200, description = "Healthy or degraded", body = HealthResponse),
              (status = 503, description = "Unhealthy", body = HealthResponse)))]
pub async fn health(req: Req) -> Result<Resp, Problem> {
    let app = &req.app;
    let stopping = app.shutting_down.load(Ordering::Relaxed);
    let database = if stopping {
        Check {
            status: "unhealthy",
            message: Cow::Borrowed("Database is shutting down"),
        }
    } else {
        // Read through the engine: the catalog, and the log's state.
        match app.engine.check() {
            Ok(m) => Check {
                status: "healthy",
                message: format!("Database is operational: {m}").into(),
            },
            Err(m) => Check {
                status: "unhealthy",
                message: m.into(),
            },
        }
    };
    let dir = &app.cfg.data_dir;
    let ok = {
        let mut c = app.storage_check.lock().unwrap_or_else(|e| e.into_inner());
        match *c {
            Some((at, ok)) if at.elapsed() < std::time::Duration::from_secs(1) => ok,
            _ => {
                let ok = writable(dir);
                *c = Some((std::time::Instant::now(), ok));
                ok
            }
        }
    };
    let storage = if ok {
        Check {
            status: "healthy",
            message: format!("data directory {} is writable", dir.display()).into(),
        }
    } else {
        Check {
            status: "unhealthy",
            message: format!(
                "data directory {} is missing or not writable",
                dir.display()
            )
            .into(),
        }
    };
    let pm = app.mm.pressure();
    let (level, usage, budget) = (pm.level(), pm.usage(), pm.budget());
    let pct = if budget == 0 {
        0.0
    } else {
        usage as f64 * 100.0 / budget as f64
    };
    let memory = Check {
        status: match level {
            PressureLevel::Normal => "healthy",
            PressureLevel::Warning => "degraded",
            _ => "unhealthy",
        },
        message: format!("pressure {level}: {usage} of {budget} bytes ({pct:.1} %)").into(),
    };
    let sql_engine = if app.engine.available() {
        Check {
            status: "healthy",
            message: format!("engine `{}`", app.engine.name()).into(),
        }
    } else {
        Check {
            status: "not_configured",
            message: Cow::Borrowed("no SQL engine is plugged in; SQL endpoints answer 501"),
        }
    };
    let rank = |s: &str| match s {
        "unhealthy" => 2,
        "degraded" => 1,
        _ => 0,
    };
    let worst = [&database, &storage, &memory, &sql_engine]
        .iter()
        .map(|c| rank(c.status))
        .max()
        .unwrap_or(0);
    let body = HealthResponse {
        status: ["healthy", "degraded", "unhealthy"][worst],
        version: VERSION,
        uptime_seconds: app.uptime_secs(),
        checks: Checks {
            database,
            storage,
            memory,
            sql_engine,
        },
    };
    let code = if worst == 2 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(http::json(code, &body))
}

/// `GET /api/v1/admin/config`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigResponse {
    /// The running settings.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Server version.
    pub version: &'static str,
}

/// The running configuration (tokens never included).
#[utoipa::path(get, path = "/api/v1/admin/config", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ConfigResponse)))]
pub async fn config(req: Req) -> Result<Resp, Problem> {
    let a = &req.app;
    let c = &a.cfg;
    let t = a.mm.pressure().thresholds();
    let settings = json!({
        "buffer_pool_size": c.buffer_pool_pages,
        "page_size": c.page_size,
        "buffer_pool_bytes": c.buffer_pool_pages as u64 * c.page_size as u64,
        "max_connections": c.max_connections,
        "wal_enabled": a.engine.available(),
        "checkpoint_interval_secs": c.checkpoint_interval.as_secs(),
        "checkpoint_wal_bytes": c.checkpoint_wal_bytes,
        "listen_address": c.addr.to_string(),
        "data_dir": c.data_dir.display().to_string(),
        "memory_budget_bytes": a.mm.pressure().budget(),
        "memory_budget_source": if c.memory_budget.is_some() { "flag" } else { "cgroup memory.max or MemTotal" },
        "query_memory_limit_bytes": c.query_memory_limit,
        "txn_memory_limit_bytes": c.txn_memory_limit,
        "max_body_bytes": c.max_body_bytes,
        "allow_anonymous_reads": c.allow_anonymous_reads,
        "log_capacity": c.log_capacity,
        "slow_query_ms": c.slow_query_ms,
        "txn_idle_timeout_secs": c.txn_idle_timeout.as_secs(),
        "session_idle_timeout_secs": c.session_idle_timeout.as_secs(),
        "shutdown_grace_secs": c.shutdown_grace.as_secs(),
        "pressure_interval_ms": c.pressure_interval.as_millis() as u64,
        "pressure_thresholds": {"warning": t.warning, "critical": t.critical, "emergency": t.emergency, "hysteresis": t.hysteresis},
        "memory_debug_level": format!("{:?}", a.debug_level()).to_ascii_lowercase(),
        "sql_engine": a.engine.name(),
        "pools": a.pools.all.iter().map(|p| &p.cfg).collect::<Vec<_>>(),
        "roles": {
            "admin": true,
            "readwrite": c.readwrite_token.is_some(),
            "readonly": c.readonly_token.is_some(),
        },
    });
    Ok(http::ok(&ConfigResponse {
        settings,
        version: VERSION,
    }))
}

/// `POST /api/v1/admin/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// The token's role.
    pub role: Role,
    /// A label for listings (default: the role): 1 to 64 characters, none of
    /// them a control character.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub label: Option<String>,
}

/// A new token: the secret is shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintResponse {
    /// The token.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret, shown only here.
    pub token: String,
}

/// Lists tokens (without secrets).
#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenInfo>)))]
pub async fn tokens(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&req.app.auth.list()))
}

/// Mints a token for a role.
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "admin", security(("bearer" = [])),
    request_body = MintRequest,
    responses((status = 201, body = MintResponse),
              (status = 400, description = "Not JSON, not a MintRequest, or a label that is empty, too long or holds a control character"),
              (status = 409, description = "1024 tokens exist already, or the token could not be generated")))]
pub async fn mint_token(req: Req) -> Result<Resp, Problem> {
    let m: MintRequest = http::parse_object(&req.body)?;
    let role = m.role;
    let label = m.label.unwrap_or_else(|| role.as_str().to_string());
    let chars = label.chars().count();
    if chars == 0 || chars > 64 || label.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "label must be 1 to 64 printable characters",
        ));
    }
    let (info, token) = req
        .app
        .auth
        .mint(role, &label)
        .map_err(|e| Problem::conflict(format!("cannot mint a token: {e}")))?;
    req.app.logs.info(
        "auth",
        format!(
            "token {} minted for role {} ({label})",
            info.token_id,
            role.as_str()
        ),
    );
    Ok(http::json(
        StatusCode::CREATED,
        &MintResponse { info, token },
    ))
}

/// Revokes a minted token.
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = u32, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = Object),
              (status = 404, description = "No such token"),
              (status = 409, description = "A token given at start cannot be revoked")))]
pub async fn revoke_token(req: Req) -> Result<Resp, Problem> {
    let id: u32 = req
        .param(0)
        .parse()
        .map_err(|_| Problem::not_found(format!("token `{}` not found", req.param(0))))?;
    if req.app.auth.revoke(id)? {
        req.app.logs.info("auth", format!("token {id} revoked"));
        Ok(http::ok(&json!({"token_id": id, "revoked": true})))
    } else {
        Err(Problem::not_found(format!("token {id} not found")))
    }
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "admin", responses((status = 200, description = "This document")))]
pub async fn openapi(req: Req) -> Result<Resp, Problem> {
    Ok(http::bytes_response(
        StatusCode::OK,
        "application/json",
        crate::server::api::openapi::document(&req.app)
            .as_bytes()
            .to_vec(),
    ))
}
