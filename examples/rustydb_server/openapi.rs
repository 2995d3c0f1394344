//! `GET /api/v1/openapi.json`: the REST API as OpenAPI 3.1 (utoipa).

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{graphql, rest};

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
        rest::memory::stats, rest::memory::leaks, rest::memory::leak_mark, rest::memory::debugger,
        rest::memory::set_debugger, rest::memory::pressure, rest::memory::pressure_check,
        rest::memory::callbacks, rest::memory::add_callback, rest::memory::remove_callback,
        rest::memory::contexts, rest::memory::buffer_pool, rest::memory::purge, rest::memory::ballast,
        rest::memory::set_ballast, rest::memory::drop_ballast,
        graphql::http_get, graphql::http_post,
    ),
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
    )
)]
struct ApiDoc;

/// The document, rendered once.
pub fn document() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut d = ApiDoc::openapi();
        d.info.version = super::state::VERSION.to_string();
        d.to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
    .clone()
}
