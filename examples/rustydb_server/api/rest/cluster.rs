//! `/api/v1/cluster/*`: this server is a single node, and says so.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::state::VERSION;

/// A node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Node {
    /// Id.
    pub node_id: &'static str,
    /// The address it serves on.
    pub address: String,
    /// `leader` (the only node).
    pub role: &'static str,
    /// From the health checks' memory pressure: `healthy` or `degraded`.
    pub status: &'static str,
    /// Version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

fn node(req: &Req) -> Node {
    let level = req.app.mm.pressure().level();
    Node {
        node_id: "node-local",
        address: req.app.cfg.addr.to_string(),
        role: "leader",
        status: if level == rustydb_memory::PressureLevel::Normal {
            "healthy"
        } else {
            "degraded"
        },
        version: VERSION,
        uptime_seconds: req.app.uptime_secs(),
    }
}

/// The nodes: this one.
#[utoipa::path(get, path = "/api/v1/cluster/nodes", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = Vec<Node>)))]
pub async fn nodes(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&[node(&req)]))
}

/// The topology of a single node.
#[utoipa::path(get, path = "/api/v1/cluster/topology", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, description = "Single-node topology")))]
pub async fn topology(req: Req) -> Result<Resp, Problem> {
    let n = node(&req);
    Ok(http::ok(&json!({
        "cluster_id": "rustydb-single-node",
        "mode": "single_node",
        "leader": n.node_id,
        "node_count": 1,
        "nodes": [n],
        "shards": [],
        "quorum": 1,
    })))
}

/// Replication: none (`replication_lag_ms` is `null`: there is no replica
/// to lag).
#[utoipa::path(get, path = "/api/v1/cluster/replication", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, description = "No replicas; `replication_lag_ms` is null")))]
pub async fn replication(_req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&json!({
        "primary_node": "node-local",
        "replicas": [],
        // No replica: there is no lag to measure.
        "replication_lag_ms": null,
        "sync_state": "single_node",
    })))
}

/// Cluster settings of a single node.
#[utoipa::path(get, path = "/api/v1/cluster/config", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, description = "Cluster settings")))]
pub async fn config(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&json!({
        "cluster_name": "rustydb",
        "mode": "single_node",
        "node_id": "node-local",
        "listen_address": req.app.cfg.addr.to_string(),
        "replication_factor": 1,
        "replication_mode": "none",
        "auto_failover": false,
        "heartbeat_interval_ms": null,
        "election_timeout_ms": null,
    })))
}
