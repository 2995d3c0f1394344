//! `/api/v1/pools*`: the admission pools' configuration and counters.

use crate::server::api::http::{self, Resp};
use crate::server::api::pools::{Pool, PoolConfig, PoolStats};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;

fn find(req: &Req) -> Result<&std::sync::Arc<Pool>, Problem> {
    let id = req.param(0);
    req.app.pools.get(id).ok_or_else(|| {
        Problem::not_found(format!(
            "pool `{id}` not found; pools are default and readonly"
        ))
    })
}

/// The pools' configurations.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools", security(("bearer" = [])),
    responses((status = 200, body = Vec<PoolConfig>)))]
pub async fn list(req: Req) -> Result<Resp, Problem> {
    let v: Vec<&PoolConfig> = req.app.pools.all.iter().map(|p| &p.cfg).collect();
    Ok(http::ok(&v))
}

/// One pool's configuration.
#[utoipa::path(get, path = "/api/v1/pools/{id}", tag = "pools", security(("bearer" = [])),
    params(("id" = String, Path, description = "default or readonly")),
    responses((status = 200, body = PoolConfig), (status = 404)))]
pub async fn get(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&find(&req)?.cfg))
}

/// One pool's counters (measured: this request holds a slot of the readonly pool).
#[utoipa::path(get, path = "/api/v1/pools/{id}/stats", tag = "pools", security(("bearer" = [])),
    params(("id" = String, Path, description = "default or readonly")),
    responses((status = 200, body = PoolStats), (status = 404)))]
pub async fn stats(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&find(&req)?.stats()))
}
