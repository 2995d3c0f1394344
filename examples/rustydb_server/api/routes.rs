//! The route table: path patterns, the methods each allows with the access
//! they need, and the dispatch to handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::HeaderMap;

use crate::server::api::auth::{Access, Principal, Role};
use crate::server::api::conns::Conn;
use crate::server::api::http::{Query, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::rest;
use crate::server::memory::sessions::Session;
use crate::server::state::App;

/// A request as handlers see it.
pub struct Req {
    /// The state.
    pub app: Arc<App>,
    /// Method (HEAD is answered as GET).
    pub method: Method,
    /// Query string, decoded.
    pub query: Query,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (within `--max-body-bytes`).
    pub body: Bytes,
    /// Path parameters, in pattern order, decoded.
    pub params: Vec<String>,
    /// The caller (None on open routes called without a token).
    pub principal: Option<Principal>,
    /// The caller's session.
    pub session: Option<Arc<Session>>,
    /// The connection, when served over a socket.
    pub conn: Option<Arc<Conn>>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

impl Req {
    /// The caller (handlers of non-open routes always have one).
    pub fn who(&self) -> Result<&Principal, Problem> {
        self.principal
            .as_ref()
            .ok_or_else(|| Problem::unauthorized("this endpoint needs a bearer token", false))
    }

    /// The caller's session.
    pub fn sess(&self) -> Result<&Arc<Session>, Problem> {
        self.session
            .as_ref()
            .ok_or_else(|| Problem::unauthorized("this endpoint needs a bearer token", false))
    }

    /// Path parameter `i`.
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

/// Handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum H {
    Index,
    Health,
    Config,
    Tokens,
    TokenMint,
    TokenRevoke,
    Metrics,
    Prometheus,
    Performance,
    StatsSessions,
    StatsQueries,
    Connections,
    Sessions,
    Session,
    SessionClose,
    Pools,
    Pool,
    PoolStats,
    Query,
    Batch,
    Tables,
    Table,
    TableCreate,
    TableDrop,
    Txns,
    TxnBegin,
    Txn,
    TxnCommit,
    TxnRollback,
    ClusterNodes,
    ClusterTopology,
    ClusterReplication,
    ClusterConfig,
    Alerts,
    AlertAck,
    Logs,
    MemStats,
    MemLeaks,
    MemLeakMark,
    MemProfile,
    MemDebugger,
    MemDebuggerSet,
    Pressure,
    PressureCheck,
    Callbacks,
    CallbackAdd,
    CallbackRemove,
    Contexts,
    BufferPool,
    Purge,
    Ballast,
    BallastSet,
    BallastDrop,
    OpenApi,
    GraphqlGet,
    GraphqlPost,
    GraphqlPlayground,
    MemHistory,
    MemHistoryStream,
    Dashboard,
    DashboardAsset,
    #[cfg(test)]
    Panic,
}

/// A path pattern and what it serves.
#[derive(Debug)]
pub struct Route {
    /// `/api/v1/pools/{id}`.
    pub pattern: &'static str,
    /// (method, handler, access).
    pub methods: &'static [(&'static str, H, Access)],
}

const OPEN: Access = Access::Open;
const RO: Access = Access::Role(Role::Readonly);
const RW: Access = Access::Role(Role::Readwrite);
const ADMIN: Access = Access::Role(Role::Admin);

/// Every route.
pub static ROUTES: &[Route] = &[
    Route {
        pattern: "/",
        methods: &[("GET", H::Index, OPEN)],
    },
    Route {
        pattern: "/api/v1/admin/health",
        methods: &[("GET", H::Health, OPEN)],
    },
    Route {
        pattern: "/api/v1/admin/config",
        methods: &[("GET", H::Config, ADMIN)],
    },
    Route {
        pattern: "/api/v1/admin/tokens",
        methods: &[("GET", H::Tokens, ADMIN), ("POST", H::TokenMint, ADMIN)],
    },
    Route {
        pattern: "/api/v1/admin/tokens/{id}",
        methods: &[("DELETE", H::TokenRevoke, ADMIN)],
    },
    Route {
        pattern: "/api/v1/metrics",
        methods: &[("GET", H::Metrics, RO)],
    },
    Route {
        pattern: "/api/v1/metrics/prometheus",
        methods: &[("GET", H::Prometheus, RO)],
    },
    Route {
        pattern: "/api/v1/stats/performance",
        methods: &[("GET", H::Performance, RO)],
    },
    Route {
        pattern: "/api/v1/stats/sessions",
        methods: &[("GET", H::StatsSessions, RO)],
    },
    Route {
        pattern: "/api/v1/stats/queries",
        methods: &[("GET", H::StatsQueries, RO)],
    },
    Route {
        pattern: "/api/v1/connections",
        methods: &[("GET", H::Connections, RO)],
    },
    Route {
        pattern: "/api/v1/sessions",
        methods: &[("GET", H::Sessions, RO)],
    },
    Route {
        pattern: "/api/v1/sessions/{id}",
        methods: &[("GET", H::Session, RO), ("DELETE", H::SessionClose, ADMIN)],
    },
    Route {
        pattern: "/api/v1/pools",
        methods: &[("GET", H::Pools, RO)],
    },
    Route {
        pattern: "/api/v1/pools/{id}",
        methods: &[("GET", H::Pool, RO)],
    },
    Route {
        pattern: "/api/v1/pools/{id}/stats",
        methods: &[("GET", H::PoolStats, RO)],
    },
    Route {
        pattern: "/api/v1/query",
        methods: &[("POST", H::Query, RO)],
    },
    Route {
        pattern: "/api/v1/batch",
        methods: &[("POST", H::Batch, RW)],
    },
    Route {
        pattern: "/api/v1/tables",
        methods: &[("GET", H::Tables, RO)],
    },
    Route {
        pattern: "/api/v1/tables/{name}",
        methods: &[
            ("GET", H::Table, RO),
            ("POST", H::TableCreate, ADMIN),
            ("DELETE", H::TableDrop, ADMIN),
        ],
    },
    Route {
        pattern: "/api/v1/transactions",
        methods: &[("GET", H::Txns, RO), ("POST", H::TxnBegin, RW)],
    },
    Route {
        pattern: "/api/v1/transactions/{id}",
        methods: &[("GET", H::Txn, RO)],
    },
    Route {
        pattern: "/api/v1/transactions/{id}/commit",
        methods: &[("POST", H::TxnCommit, RW)],
    },
    Route {
        pattern: "/api/v1/transactions/{id}/rollback",
        methods: &[("POST", H::TxnRollback, RW)],
    },
    Route {
        pattern: "/api/v1/cluster/nodes",
        methods: &[("GET", H::ClusterNodes, RO)],
    },
    Route {
        pattern: "/api/v1/cluster/topology",
        methods: &[("GET", H::ClusterTopology, RO)],
    },
    Route {
        pattern: "/api/v1/cluster/replication",
        methods: &[("GET", H::ClusterReplication, RO)],
    },
    Route {
        pattern: "/api/v1/cluster/config",
        methods: &[("GET", H::ClusterConfig, RO)],
    },
    Route {
        pattern: "/api/v1/alerts",
        methods: &[("GET", H::Alerts, RO)],
    },
    Route {
        pattern: "/api/v1/alerts/{id}/acknowledge",
        methods: &[("POST", H::AlertAck, RW)],
    },
    Route {
        pattern: "/api/v1/logs",
        methods: &[("GET", H::Logs, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/stats",
        methods: &[("GET", H::MemStats, RO)],
    },
    Route {
        pattern: "/api/v1/memory/leaks",
        methods: &[("GET", H::MemLeaks, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/leaks/marks",
        methods: &[("POST", H::MemLeakMark, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/profile",
        methods: &[("GET", H::MemProfile, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/debugger",
        methods: &[
            ("GET", H::MemDebugger, RO),
            ("PUT", H::MemDebuggerSet, ADMIN),
        ],
    },
    Route {
        pattern: "/api/v1/memory/pressure",
        methods: &[("GET", H::Pressure, RO)],
    },
    Route {
        pattern: "/api/v1/memory/pressure/check",
        methods: &[("POST", H::PressureCheck, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/pressure/callbacks",
        methods: &[("GET", H::Callbacks, RO), ("POST", H::CallbackAdd, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/pressure/callbacks/{id}",
        methods: &[("DELETE", H::CallbackRemove, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/contexts",
        methods: &[("GET", H::Contexts, RO)],
    },
    Route {
        pattern: "/api/v1/memory/buffer-pool",
        methods: &[("GET", H::BufferPool, RO)],
    },
    Route {
        pattern: "/api/v1/memory/purge",
        methods: &[("POST", H::Purge, ADMIN)],
    },
    Route {
        pattern: "/api/v1/memory/ballast",
        methods: &[
            ("GET", H::Ballast, RO),
            ("POST", H::BallastSet, ADMIN),
            ("DELETE", H::BallastDrop, ADMIN),
        ],
    },
    Route {
        pattern: "/graphql/playground",
        methods: &[("GET", H::GraphqlPlayground, OPEN)],
    },
    Route {
        pattern: "/api/v1/memory/history",
        methods: &[("GET", H::MemHistory, RO)],
    },
    Route {
        pattern: "/api/v1/memory/history/stream",
        methods: &[("GET", H::MemHistoryStream, RO)],
    },
    Route {
        pattern: "/dashboard",
        methods: &[("GET", H::Dashboard, OPEN)],
    },
    Route {
        pattern: "/dashboard/assets/{name}",
        methods: &[("GET", H::DashboardAsset, OPEN)],
    },
    Route {
        pattern: "/api/v1/openapi.json",
        methods: &[("GET", H::OpenApi, OPEN)],
    },
    Route {
        pattern: "/graphql",
        methods: &[("GET", H::GraphqlGet, RO), ("POST", H::GraphqlPost, RO)],
    },
    #[cfg(test)]
    Route {
        pattern: "/api/v1/__test/panic",
        methods: &[("GET", H::Panic, OPEN)],
    },
];

/// The patterns of [`ROUTES`], split into segments once.
fn split_patterns() -> &'static [Vec<&'static str>] {
    static SPLIT: std::sync::OnceLock<Vec<Vec<&'static str>>> = std::sync::OnceLock::new();
    SPLIT.get_or_init(|| {
        ROUTES
            .iter()
            .map(|r| r.pattern.split('/').collect())
            .collect()
    })
}

/// What a path and method resolve to.
#[derive(Debug)]
pub enum Resolved {
    /// A handler, its access, the route pattern and the path parameters.
    Found(H, Access, &'static str, Vec<String>),
    /// The path exists, the method does not.
    WrongMethod(&'static Route),
    /// Nothing at this path.
    NotFound,
}

/// Resolves `method` on `path` (HEAD as GET; one trailing slash ignored).
pub fn resolve(method: &Method, path: &str) -> Result<Resolved, Problem> {
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    // Paths have at most 8 segments here; longer ones match nothing.
    let mut segs = [""; 8];
    let mut n = 0;
    for s in path.split('/') {
        if n == segs.len() {
            return Ok(Resolved::NotFound);
        }
        segs[n] = s;
        n += 1;
    }
    let segs = &segs[..n];
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    for (r, pat) in ROUTES.iter().zip(split_patterns()) {
        if pat.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut ok = true;
        for (p, s) in pat.iter().zip(segs) {
            if p.starts_with('{') {
                if s.is_empty() {
                    ok = false;
                    break;
                }
                params.push(s);
            } else if p != s {
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        return Ok(match r.methods.iter().find(|(x, _, _)| *x == m) {
            Some(&(_, h, a)) => {
                let params = params
                    .into_iter()
                    .map(|s| crate::server::api::http::percent_decode(s))
                    .collect::<Result<Vec<_>, _>>()?;
                Resolved::Found(h, a, r.pattern, params)
            }
            None => Resolved::WrongMethod(r),
        });
    }
    Ok(Resolved::NotFound)
}

/// The methods a route allows (HEAD with GET).
pub fn allowed(r: &Route) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = r.methods.iter().map(|(m, _, _)| *m).collect();
    if v.contains(&"GET") {
        v.push("HEAD");
    }
    v
}

/// Runs handler `h`.
pub async fn dispatch(h: H, req: Req) -> Result<Resp, Problem> {
    // Each handler's future is boxed: they differ in size by kilobytes (GraphQL,
    // SQL), and an unboxed `match` would make every request carry and copy the
    // largest through each layer of the call chain.
    use rest::*;
    match h {
        H::Index => Box::pin(admin::index(req)).await,
        H::Health => Box::pin(admin::health(req)).await,
        H::Config => Box::pin(admin::config(req)).await,
        H::Tokens => Box::pin(admin::tokens(req)).await,
        H::TokenMint => Box::pin(admin::mint_token(req)).await,
        H::TokenRevoke => Box::pin(admin::revoke_token(req)).await,
        H::Metrics => Box::pin(stats::metrics(req)).await,
        H::Prometheus => Box::pin(stats::prometheus(req)).await,
        H::Performance => Box::pin(stats::performance(req)).await,
        H::StatsSessions => Box::pin(stats::session_stats(req)).await,
        H::StatsQueries => Box::pin(stats::query_stats(req)).await,
        H::Connections => Box::pin(stats::connections(req)).await,
        H::Sessions => Box::pin(stats::sessions(req)).await,
        H::Session => Box::pin(stats::session(req)).await,
        H::SessionClose => Box::pin(stats::close_session(req)).await,
        H::Pools => Box::pin(pools::list(req)).await,
        H::Pool => Box::pin(pools::get(req)).await,
        H::PoolStats => Box::pin(pools::stats(req)).await,
        H::Query => Box::pin(sql::query(req)).await,
        H::Batch => Box::pin(sql::batch(req)).await,
        H::Tables => Box::pin(sql::tables(req)).await,
        H::Table => Box::pin(sql::table(req)).await,
        H::TableCreate => Box::pin(sql::create_table(req)).await,
        H::TableDrop => Box::pin(sql::drop_table(req)).await,
        H::Txns => Box::pin(txns::list(req)).await,
        H::TxnBegin => Box::pin(txns::begin(req)).await,
        H::Txn => Box::pin(txns::get(req)).await,
        H::TxnCommit => Box::pin(txns::commit(req)).await,
        H::TxnRollback => Box::pin(txns::rollback(req)).await,
        H::ClusterNodes => Box::pin(cluster::nodes(req)).await,
        H::ClusterTopology => Box::pin(cluster::topology(req)).await,
        H::ClusterReplication => Box::pin(cluster::replication(req)).await,
        H::ClusterConfig => Box::pin(cluster::config(req)).await,
        H::Alerts => Box::pin(monitor::alerts(req)).await,
        H::AlertAck => Box::pin(monitor::acknowledge(req)).await,
        H::Logs => Box::pin(monitor::logs(req)).await,
        H::MemStats => Box::pin(memory::stats(req)).await,
        H::MemLeaks => Box::pin(memory::leaks(req)).await,
        H::MemLeakMark => Box::pin(memory::leak_mark(req)).await,
        H::MemProfile => Box::pin(memory::profile(req)).await,
        H::MemDebugger => Box::pin(memory::debugger(req)).await,
        H::MemDebuggerSet => Box::pin(memory::set_debugger(req)).await,
        H::Pressure => Box::pin(memory::pressure(req)).await,
        H::PressureCheck => Box::pin(memory::pressure_check(req)).await,
        H::Callbacks => Box::pin(memory::callbacks(req)).await,
        H::CallbackAdd => Box::pin(memory::add_callback(req)).await,
        H::CallbackRemove => Box::pin(memory::remove_callback(req)).await,
        H::Contexts => Box::pin(memory::contexts(req)).await,
        H::BufferPool => Box::pin(memory::buffer_pool(req)).await,
        H::Purge => Box::pin(memory::purge(req)).await,
        H::Ballast => Box::pin(memory::ballast(req)).await,
        H::BallastSet => Box::pin(memory::set_ballast(req)).await,
        H::BallastDrop => Box::pin(memory::drop_ballast(req)).await,
        H::OpenApi => Box::pin(admin::openapi(req)).await,
        H::GraphqlGet => Box::pin(crate::server::api::graphql::http::http_get(req)).await,
        H::GraphqlPost => Box::pin(crate::server::api::graphql::http::http_post(req)).await,
        H::GraphqlPlayground => Box::pin(crate::server::api::graphql::http::playground(req)).await,
        H::MemHistory => Box::pin(history::history(req)).await,
        H::MemHistoryStream => Box::pin(history::stream(req)).await,
        H::Dashboard => Box::pin(crate::server::observe::dashboard::index(req)).await,
        H::DashboardAsset => Box::pin(crate::server::observe::dashboard::asset(req)).await,
        #[cfg(test)]
        H::Panic => panic!("test panic inside a handler"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_patterns_methods_and_params() {
        match resolve(&Method::GET, "/api/v1/pools/default/stats").unwrap() {
            Resolved::Found(h, _, pat, p) => {
                assert_eq!(h, H::PoolStats);
                assert_eq!(pat, "/api/v1/pools/{id}/stats");
                assert_eq!(p, vec!["default".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve(&Method::HEAD, "/api/v1/admin/health/").unwrap(),
            Resolved::Found(H::Health, ..)
        ));
        match resolve(&Method::DELETE, "/api/v1/metrics").unwrap() {
            Resolved::WrongMethod(r) => assert_eq!(allowed(r), vec!["GET", "HEAD"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve(&Method::GET, "/api/v1/nope").unwrap(),
            Resolved::NotFound
        ));
        assert!(matches!(
            resolve(&Method::GET, "/api/v1/pools//stats").unwrap(),
            Resolved::NotFound
        ));
        match resolve(&Method::POST, "/api/v1/transactions/test_txn_2/rollback").unwrap() {
            Resolved::Found(H::TxnRollback, _, _, p) => {
                assert_eq!(p, vec!["test_txn_2".to_string()])
            }
            other => panic!("{other:?}"),
        }
        // Every pattern is unique.
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.pattern, b.pattern);
            }
        }
    }
}
