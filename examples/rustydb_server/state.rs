//! The application state shared by every request and background task.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rustydb_memory::debug::Mark;
use rustydb_memory::{DebugAlloc, DebugLevel, MemoryContext, MemoryManager, RustyAlloc};

use crate::server::api::auth::Auth;
use crate::server::api::conns::Connections;
use crate::server::api::graphql::{self, AppSchema};
use crate::server::api::pools::{self, Pools};
use crate::server::config::Config;
use crate::server::memory::sessions::Sessions;
use crate::server::observe::alerts::{Alerts, Webhooks};
use crate::server::observe::history::History;
use crate::server::observe::log_ring::LogRing;
use crate::server::observe::metrics::Metrics;
use crate::server::observe::querystats::QueryStats;
use crate::server::observe::sysinfo::CpuSampler;
use crate::server::sql::engine::Engine;
use crate::server::sql::txn::Transactions;

/// The server's version (the seed's API reports 1.0.0; this is the crate's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The memory debugger the server runs under.
pub type Debugger = DebugAlloc<RustyAlloc>;

/// Memory held on purpose by `POST /api/v1/memory/ballast`, to exercise the
/// pressure manager with real resident memory.
pub struct Ballast {
    /// The context holding it (named `ballast`).
    pub ctx: MemoryContext<'static>,
    /// Bytes held.
    pub bytes: u64,
    /// Unix ms.
    pub created_ms: u64,
}

/// A leak-check mark (`POST /api/v1/memory/leaks/marks`).
#[derive(Debug, Clone, Copy)]
pub struct LeakMark {
    /// Id.
    pub id: u64,
    /// The debugger's mark.
    pub mark: Mark,
    /// Unix ms.
    pub at_ms: u64,
}

/// Everything.
pub struct App {
    /// The running configuration.
    pub cfg: Config,
    /// Start time.
    pub started: Instant,
    /// Start, Unix seconds.
    pub started_unix: u64,
    /// The memory manager (pressure, statistics, pools, debugger).
    pub mm: &'static MemoryManager,
    /// The global allocator's debugger, when the server runs under one.
    pub debugger: Option<&'static Debugger>,
    /// Tokens.
    pub auth: Auth,
    /// Request metrics.
    pub metrics: Metrics,
    /// Open connections.
    pub conns: Arc<Connections>,
    /// Admission pools.
    pub pools: Pools,
    /// Sessions.
    pub sessions: Sessions,
    /// Transactions.
    pub txns: Transactions,
    /// Query statistics.
    pub queries: QueryStats,
    /// Alerts.
    pub alerts: Alerts,
    /// Pressure webhooks.
    pub webhooks: Webhooks,
    /// The log ring.
    pub logs: LogRing,
    /// The SQL engine (or the placeholder).
    pub engine: Engine,
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// CPU sampler.
    pub cpu: CpuSampler,
    /// Leak marks, oldest first (at most 64).
    pub leak_marks: Mutex<Vec<LeakMark>>,
    /// The mark taken when the server started.
    pub start_mark: Option<Mark>,
    /// Ballast memory.
    pub ballast: Mutex<Option<Ballast>>,
    /// Set when shutdown begins.
    pub shutting_down: AtomicBool,
    /// The storage health check's last result and when it was taken (the
    /// check costs two path lookups; health probes reuse it for a second).
    pub storage_check: Mutex<Option<(Instant, bool)>>,
    /// `GET /api/v1/openapi.json`, rendered on first use (it carries limits
    /// of the configuration).
    pub openapi: OnceLock<String>,
    /// One sample a second for `/dashboard` and `GET /api/v1/memory/history`
    /// (`--history-seconds` of them, in a memory context of their own).
    pub history: History,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the state. `cfg.admin_token` must be set (see `server::resolve_admin_token`).
    pub fn new(
        cfg: Config,
        mm: &'static MemoryManager,
        debugger: Option<&'static Debugger>,
        engine: Engine,
    ) -> Result<Arc<App>, String> {
        let admin = cfg
            .admin_token
            .clone()
            .ok_or_else(|| "an admin token is required".to_string())?;
        let auth = Auth::new(
            &admin,
            cfg.readwrite_token.as_deref(),
            cfg.readonly_token.as_deref(),
            cfg.allow_anonymous_reads,
        );
        let start_mark = debugger.map(|d| d.mark());
        Ok(Arc::new(App {
            logs: LogRing::new(cfg.log_capacity, cfg.log_stderr),
            started: Instant::now(),
            started_unix: crate::server::api::http::unix_now(),
            mm,
            debugger,
            auth,
            metrics: Metrics::new(Some(mm)),
            conns: Arc::new(Connections::default()),
            pools: Pools::new(pools::default_configs()),
            sessions: Sessions::default(),
            txns: Transactions::default(),
            queries: QueryStats::default(),
            alerts: Alerts::default(),
            webhooks: Webhooks::default(),
            engine,
            schema: graphql::build_schema(),
            cpu: CpuSampler::default(),
            leak_marks: Mutex::new(Vec::new()),
            start_mark,
            ballast: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            storage_check: Mutex::new(None),
            openapi: OnceLock::new(),
            history: History::new(cfg.history_seconds)?,
            cfg,
        }))
    }

    /// The debugger's level (`Off` without a debugger).
    pub fn debug_level(&self) -> DebugLevel {
        self.debugger.map_or(DebugLevel::Off, |d| d.level())
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
