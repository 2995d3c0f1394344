//! `GET /api/v1/openapi.json`: the REST API as OpenAPI 3.1 — utoipa's
//! derive over the handlers' `utoipa::path` annotations, completed from the
//! route table and the running configuration (`complete.rs`).

pub mod complete;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{graphql, rest};
use crate::server::state::App;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, o: &mut utoipa::openapi::OpenApi) {
        let c = o.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RustyDB server",
        description = "REST and GraphQL over rustydb-memory. Errors are RFC 9457 `application/problem+json`. \
                       Every endpoint but health and this document needs `Authorization: Bearer <token>` \
                       (roles readonly < readwrite < admin).",
    ),
    paths(
        rest::admin::index, rest::admin::health, rest::admin::config, rest::admin::tokens,
        rest::admin::mint_token, rest::admin::revoke_token, rest::admin::openapi,
        rest::stats::metrics, rest::stats::prometheus, rest::stats::performance, rest::stats::session_stats,
        rest::stats::query_stats, rest::stats::connections, rest::stats::sessions, rest::stats::session,
        rest::stats::close_session,
        rest::pools::list, rest::pools::get, rest::pools::stats,
        rest::sql::query, rest::sql::batch, rest::sql::tables, rest::sql::table, rest::sql::create_table,
        rest::sql::drop_table,
        rest::txns::list, rest::txns::begin, rest::txns::get, rest::txns::commit, rest::txns::rollback,
        rest::cluster::nodes, rest::cluster::topology, rest::cluster::replication, rest::cluster::config,
        rest::monitor::alerts, rest::monitor::acknowledge, rest::monitor::logs,
        rest::memory::stats, rest::memory::leaks, rest::memory::leak_mark, rest::memory::profile, rest::memory::debugger,
        rest::memory::set_debugger, rest::memory::pressure, rest::memory::pressure_check,
        rest::memory::callbacks, rest::memory::add_callback, rest::memory::remove_callback,
        rest::memory::contexts, rest::memory::buffer_pool, rest::memory::purge, rest::memory::ballast,
        rest::memory::set_ballast, rest::memory::drop_ballast,
        graphql::http::http_get, graphql::http::http_post, graphql::http::playground,
        rest::history::history, rest::history::stream,
        crate::server::observe::dashboard::index, crate::server::observe::dashboard::asset,
    ),
    components(schemas(rest::monitor::AlertState, rest::monitor::LogLevel, rest::memory::ProfileFormatParam, crate::server::observe::dashboard::AssetName)),
    modifiers(&BearerAuth),
    tags(
        (name = "admin", description = "Health, configuration, tokens"),
        (name = "metrics", description = "Counters and Prometheus"),
        (name = "stats", description = "Measured performance, sessions, queries"),
        (name = "sessions", description = "Connections and sessions"),
        (name = "pools", description = "Admission pools"),
        (name = "sql", description = "Statements and tables (through the SQL engine seam)"),
        (name = "transactions", description = "Transactions and their memory contexts"),
        (name = "cluster", description = "A single node"),
        (name = "monitoring", description = "Alerts and logs"),
        (name = "memory", description = "Allocators, leaks, pressure, contexts, buffer pools"),
        (name = "graphql", description = "GraphQL endpoint"),
        (name = "dashboard", description = "The page plotting the history live (open: it holds no data)"),
    )
)]
struct ApiDoc;

/// The document for `app` as JSON.
pub fn document_value(app: &App) -> serde_json::Value {
    let mut d = ApiDoc::openapi();
    d.info.version = crate::server::state::VERSION.to_string();
    let mut v = serde_json::to_value(&d).unwrap_or_default();
    complete::complete(&mut v, app);
    v
}

/// The document for `app`, rendered once per app.
pub fn document(app: &App) -> &str {
    app.openapi.get_or_init(|| {
        serde_json::to_string_pretty(&document_value(app))
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::complete::{document_operations, route_operations};
    use super::*;
    use crate::server::config::Config;
    use crate::server::sql::engine;

    fn app() -> Arc<App> {
        let cfg = Config {
            admin_token: Some("openapi-test-token-0123456789".into()),
            log_stderr: false,
            max_ballast: Some(64 << 20),
            ..Default::default()
        };
        App::new(
            cfg,
            rustydb_memory::MemoryManager::global(),
            None,
            Arc::new(engine::Unavailable),
        )
        .unwrap()
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_covers_the_route_table_exactly() {
        let d = document_value(&app());
        let mut routes = route_operations();
        let mut ops = document_operations(&d);
        routes.retain(|(p, _)| !p.starts_with("/api/v1/__test"));
        routes.sort();
        ops.sort();
        assert_eq!(routes, ops, "routes and documented operations differ");
        // Operation ids are unique, and every link names one.
        let mut ids = Vec::new();
        for (p, m) in &ops {
            ids.push(
                d["paths"][p][m]["operationId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate operation ids");
        for (p, m) in &ops {
            for r in d["paths"][p][m]["responses"].as_object().unwrap().values() {
                for l in r["links"].as_object().into_iter().flat_map(|l| l.values()) {
                    let id = l["operationId"].as_str().unwrap();
                    assert!(ids.iter().any(|x| x == id), "link to unknown {id}");
                }
            }
        }
        // Every reference resolves.
        let mut r = Vec::new();
        refs(&d, &mut r);
        for x in r {
            let name = x.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                d["components"]["schemas"].get(name).is_some(),
                "unresolved {x}"
            );
        }
    }

    #[test]
    fn pipeline_statuses_follow_access() {
        let d = document_value(&app());
        let status = |p: &str, m: &str, s: &str| d["paths"][p][m]["responses"].get(s).is_some();
        // Open routes: no 401; guarded ones: 401, 503 and the bearer scheme.
        assert!(!status("/api/v1/admin/health", "get", "401"));
        assert!(status("/api/v1/admin/health", "get", "400"));
        assert!(status("/api/v1/metrics", "get", "401"));
        assert!(status("/api/v1/metrics", "get", "503"));
        assert_eq!(
            d["paths"]["/api/v1/metrics"]["get"]["security"][0]["bearer"],
            serde_json::json!([])
        );
        // 403 only where the route needs more than readonly (or the handler says so).
        assert!(!status("/api/v1/metrics", "get", "403"));
        assert!(status("/api/v1/admin/config", "get", "403"));
        // Errors are problems; 401 carries its challenge header.
        let r = &d["paths"]["/api/v1/metrics"]["get"]["responses"]["401"];
        assert!(r["content"].get("application/problem+json").is_some());
        assert!(r["headers"].get("WWW-Authenticate").is_some());
        // Limits of the configuration are in the schemas.
        let s = &d["components"]["schemas"];
        assert_eq!(
            s["BallastRequest"]["properties"]["bytes"]["maximum"],
            64 << 20
        );
        assert_eq!(
            s["BeginRequest"]["properties"]["memory_limit_bytes"]["maximum"],
            256 << 20
        );
        assert!(s["CallbackRequest"]["properties"]["url"]["pattern"].is_string());
    }
}
