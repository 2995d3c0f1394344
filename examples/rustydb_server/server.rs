//! The rustydb server, everything but `main`: built into the example binary,
//! included by `tests/server_e2e/` (`#[path]`) and by the `server_request`
//! fuzz target through [`oneshot`].
//!
//! A request goes: route → auth (401/403) → session → admission pool (503) →
//! bounded body (413) → handler, with a caught panic answered as a 500
//! problem; every answer is counted (metrics, route, connection, session).
//!
//! The parts, each a folder: `api/` (routing, auth, admission, REST handlers,
//! GraphQL, OpenAPI), `sql/` (the engine seam, statement execution,
//! transactions, and the GlueSQL storage over buffer-pool pages in `sql/glue/`),
//! `memory/` (sessions and their memory contexts), `observe/` (metrics, logs,
//! query statistics, alerts, background tasks); `config.rs` and `state.rs` tie
//! them together.
//!
//! Each user of this module uses a different part of it.
#![allow(dead_code)]

pub mod api;
pub mod config;
pub mod memory;
pub mod observe;
pub mod sql;
pub mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::body::{Body, Bytes};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use self::api::auth::{self, Access};
use self::api::conns::Conn;
use self::api::http::Resp;
use self::api::problem::Problem;
use self::api::routes::{Req, Resolved};
use self::api::{http, routes};
use self::observe::tasks;
use self::sql::{engine, exec, glue, txn};
pub use self::state::App;

/// Handles one request (with or without a socket).
pub async fn handle<B>(
    app: Arc<App>,
    req: Request<B>,
    conn: Option<Arc<Conn>>,
    peer: Option<SocketAddr>,
) -> Resp
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let t0 = Instant::now();
    app.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    if let Some(c) = &conn {
        c.in_flight.fetch_add(1, Ordering::Relaxed);
        c.last_request_ms.store(http::unix_ms(), Ordering::Relaxed);
    }
    let method = req.method().clone();
    let uri = req.uri().clone(); // shares the request's bytes
    let path = uri.path();
    let fut = process(app.clone(), req, path, conn.clone(), peer);
    let (mut resp, route) = match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            app.metrics.panics.fetch_add(1, Ordering::Relaxed);
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            app.logs.error(
                "http",
                format!("handler panicked on {method} {path}: {msg}"),
            );
            (
                Problem::internal("the handler failed unexpectedly; the error was logged")
                    .into_response(Some(path)),
                "panic",
            )
        }
    };
    let h = resp.headers_mut();
    h.insert(
        hyper::header::SERVER,
        hyper::header::HeaderValue::from_static("rustydb"),
    );
    // Answers are not stored unless the handler says how (the dashboard's
    // assets are).
    h.entry(hyper::header::CACHE_CONTROL)
        .or_insert(hyper::header::HeaderValue::from_static("no-store"));
    let el = t0.elapsed();
    let status = resp.status().as_u16();
    app.metrics.record(&method, route, status, el);
    app.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    if let Some(c) = &conn {
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
        c.requests.fetch_add(1, Ordering::Relaxed);
    }
    if status >= 500 {
        let line = format!("{method} {path} {status} {} us", el.as_micros());
        app.logs.error("http", line);
    } else if app.cfg.access_log {
        let line = format!("{method} {path} {status} {} us", el.as_micros());
        app.logs.debug("http", line);
    }
    resp
}

async fn process<B>(
    app: Arc<App>,
    req: Request<B>,
    path: &str,
    conn: Option<Arc<Conn>>,
    peer: Option<SocketAddr>,
) -> (Resp, &'static str)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let method = req.method().clone();
    let resolved = match routes::resolve(&method, path) {
        Ok(r) => r,
        Err(p) => return (p.into_response(Some(path)), "unmatched"),
    };
    match resolved {
        Resolved::NotFound => (
            Problem::not_found(format!(
                "no endpoint at {path}; see GET /api/v1/openapi.json"
            ))
            .into_response(Some(path)),
            "unmatched",
        ),
        Resolved::WrongMethod(r) => (
            Problem::method_not_allowed(method.as_str(), path, &routes::allowed(r))
                .into_response(Some(path)),
            r.pattern,
        ),
        Resolved::Found(h, access, pattern, params) => {
            match run(app, req, h, access, params, conn, peer).await {
                Ok(r) => (r, pattern),
                Err(p) => (p.into_response(Some(path)), pattern),
            }
        }
    }
}

async fn run<B>(
    app: Arc<App>,
    req: Request<B>,
    h: routes::H,
    access: Access,
    params: Vec<String>,
    conn: Option<Arc<Conn>>,
    peer: Option<SocketAddr>,
) -> Result<Resp, Problem>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    let principal = app.auth.check(&parts.headers, access)?;
    let guarded = access != Access::Open;
    if guarded && app.shutting_down.load(Ordering::Relaxed) {
        return Err(Problem::unavailable(
            "shutting-down",
            "Shutting down",
            "the server is shutting down",
            5,
        ));
    }
    let session = match (&principal, guarded) {
        (Some(p), true) => {
            let name = parts
                .headers
                .get("x-session-id")
                .map(|v| v.to_str().unwrap_or("\u{1}"));
            let g = app.sessions.enter(p, name, peer)?;
            if let Some(c) = &conn {
                c.session_id.store(g.0.id, Ordering::Relaxed);
                c.token_id.store(u64::from(p.token_id), Ordering::Relaxed);
            }
            Some(g)
        }
        _ => None,
    };
    let read = matches!(parts.method, Method::GET | Method::HEAD);
    let _slot = match (guarded, app.pools.for_method(read)) {
        (true, Some(pool)) => Some(pool.acquire().await?),
        _ => None,
    };
    let body = http::collect_body(&parts.headers, body, app.cfg.max_body_bytes).await?;
    if !body.is_empty() {
        http::require_json_content(&parts.headers)?;
    }
    let query = http::Query::parse(parts.uri.query())?;
    let method = if parts.method == Method::HEAD {
        Method::GET
    } else {
        parts.method
    };
    let r = Req {
        app,
        method,
        query,
        headers: parts.headers,
        body,
        params,
        principal,
        session: session.as_ref().map(|g| g.0.clone()),
        conn,
        peer,
    };
    routes::dispatch(h, r).await
}

/// A response without a socket (for fuzzing and tests).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Builds a request from parts and handles it without a socket: the entry
/// point of the `server_request` fuzz target. An unparsable method or target
/// is answered 400, as hyper would before routing.
pub async fn oneshot(
    app: &Arc<App>,
    method: &[u8],
    target: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
) -> RawResponse {
    use http_body_util::{BodyExt, Full};
    let mut b = Request::builder();
    match Method::from_bytes(method) {
        Ok(m) => b = b.method(m),
        Err(_) => return raw(Problem::bad_request("invalid method").into_response(None)).await,
    }
    match hyper::Uri::try_from(target) {
        Ok(u) if u.path().starts_with('/') => b = b.uri(u),
        _ => return raw(Problem::bad_request("invalid request target").into_response(None)).await,
    }
    for (k, v) in headers {
        let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k),
            hyper::header::HeaderValue::from_bytes(v),
        ) else {
            return raw(Problem::bad_request("invalid header").into_response(None)).await;
        };
        b = b.header(k, v);
    }
    let req = match b.body(Full::new(Bytes::copy_from_slice(body))) {
        Ok(r) => r,
        Err(_) => return raw(Problem::bad_request("invalid request").into_response(None)).await,
    };
    let resp = handle(app.clone(), req, None, None).await;
    async fn raw(r: Resp) -> RawResponse {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = r
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default();
        RawResponse {
            status,
            headers,
            body,
        }
    }
    raw(resp).await
}

/// Tokens of the app behind [`fuzz_request`].
pub const FUZZ_TOKENS: [(&str, &str); 3] = [
    ("admin", "fuzz-admin-token-0123456789"),
    ("readwrite", "fuzz-readwrite-token-0123456789"),
    ("readonly", "fuzz-readonly-token-0123456789"),
];

/// [`oneshot`] on a process-wide app with fixed tokens ([`FUZZ_TOKENS`]), no
/// listener, no background tasks, no debugger, a 16 MiB ballast cap — the
/// entry point of the `server_request` fuzz target:
///
/// ```ignore
/// let r = server::fuzz_request(b"GET", b"/api/v1/pools", &[], b"");
/// assert_eq!(r.status, 401);
/// ```
pub fn fuzz_request(
    method: &[u8],
    target: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
) -> RawResponse {
    static APP: std::sync::OnceLock<(tokio::runtime::Runtime, Arc<App>)> =
        std::sync::OnceLock::new();
    let (rt, app) = APP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let data_dir = std::env::temp_dir().join(format!("rustydb-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&data_dir);
        let cfg = config::Config {
            data_dir,
            admin_token: Some(FUZZ_TOKENS[0].1.into()),
            readwrite_token: Some(FUZZ_TOKENS[1].1.into()),
            readonly_token: Some(FUZZ_TOKENS[2].1.into()),
            log_stderr: false,
            max_ballast: Some(16 << 20),
            ..Default::default()
        };
        // A small pool, so fuzzed statements exercise eviction too.
        let engine: engine::Engine =
            match glue::GlueEngine::open(&cfg.data_dir, 64, cfg.page_size, None) {
                Ok(e) => Arc::new(e),
                Err(_) => Arc::new(engine::Unavailable),
            };
        let app = App::new(cfg, rustydb_memory::MemoryManager::global(), None, engine)
            .expect("the fuzz app");
        (rt, app)
    });
    rt.block_on(oneshot(app, method, target, headers, body))
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The state.
    pub app: Arc<App>,
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open connections finish (up to the grace period),
    /// rolls back open transactions.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds `app.cfg.addr`, starts the background tasks and serves.
pub async fn start(app: Arc<App>) -> std::io::Result<Running> {
    let listener = TcpListener::bind(app.cfg.addr).await?;
    let addr = listener.local_addr()?;
    tasks::spawn(&app);
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve(app.clone(), listener, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        app,
        addr,
        stop: Some(tx),
        task,
    })
}

async fn refuse(stream: tokio::net::TcpStream, max: usize) {
    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
        let mut r = Problem::unavailable(
            "too-many-connections",
            "Too many connections",
            format!("{max} connections are open (--max-connections)"),
            1,
        )
        .into_response(None);
        r.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        Ok::<_, Infallible>(r)
    });
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), svc),
    )
    .await;
}

async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        app.logs.warn("http", format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().unwrap_or(peer);
                let Some(guard) = app.conns.open(peer, local, app.cfg.max_connections) else {
                    tokio::spawn(refuse(stream, app.cfg.max_connections));
                    continue;
                };
                let app2 = app.clone();
                let c = guard.conn.clone();
                let svc = service_fn(move |req| {
                    let app = app2.clone();
                    let c = c.clone();
                    async move { Ok::<_, Infallible>(handle(app, req, Some(c), Some(peer)).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = fut.await;
                    drop(guard);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    app.shutting_down.store(true, Ordering::Relaxed);
    let open = app.conns.count();
    app.logs.info(
        "server",
        format!(
            "shutting down: {open} connection(s) open, grace {:?}",
            app.cfg.shutdown_grace
        ),
    );
    tokio::select! {
        _ = graceful.shutdown() => app.logs.info("server", "all connections closed"),
        _ = tokio::time::sleep(app.cfg.shutdown_grace) => {
            app.logs.warn("server", format!("grace period over with {} connection(s) still open", app.conns.count()));
        }
    }
    let open_txns = app.txns.take_all();
    let n = open_txns.len();
    for t in open_txns {
        let _ = exec::end_txn(&app, t.id, false).await;
        app.txns.finish(t, txn::Outcome::Aborted);
    }
    app.logs.info(
        "server",
        format!("stopped; {n} open transaction(s) rolled back"),
    );
}

/// Makes sure `cfg.admin_token` is set: given, or generated, printed once and
/// written to `<data-dir>/admin.token` (mode 0600). Returns whether it was generated.
pub fn resolve_admin_token(cfg: &mut config::Config) -> Result<bool, String> {
    if cfg.admin_token.is_some() {
        return Ok(false);
    }
    let t = auth::generate_token().map_err(|e| format!("cannot generate a token: {e}"))?;
    let path = cfg.data_dir.join("admin.token");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        writeln!(f, "{t}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("admin token (shown once; also in {}): {t}", path.display());
    cfg.admin_token = Some(t);
    Ok(true)
}

/// What `main` runs: parse, set up, serve until Ctrl-C or SIGTERM.
pub fn run_main(
    args: Vec<String>,
    debugger: Option<&'static state::Debugger>,
) -> std::process::ExitCode {
    std::process::ExitCode::from(run_main_status(args, debugger))
}

/// [`run_main`] with the exit status as a number: 0 after a clean stop, 1 on
/// a failure to start, 2 for bad flags or a data directory in use.
pub fn run_main_status(args: Vec<String>, debugger: Option<&'static state::Debugger>) -> u8 {
    let mut cfg = match config::Config::parse(args, |k| std::env::var(k).ok()) {
        Ok(config::Parsed::Run(c)) => *c,
        Ok(config::Parsed::Help) => {
            print!("{}", config::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("rustydb_server: {e}");
            return 2;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&cfg.data_dir) {
        eprintln!(
            "rustydb_server: cannot create {}: {e}",
            cfg.data_dir.display()
        );
        return 1;
    }
    // The data directory's lock first: a second server on the same
    // directory stops here, before it touches anything (status 2).
    let lock = match glue::GlueEngine::lock_dir(&cfg.data_dir) {
        Ok(l) => l,
        Err(e @ sql::storage::lockfile::LockError::Busy { .. }) => {
            eprintln!("rustydb_server: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("rustydb_server: {e}");
            return 1;
        }
    };
    if let Err(e) = resolve_admin_token(&mut cfg) {
        eprintln!("rustydb_server: {e}");
        return 1;
    }
    let mut b = rustydb_memory::MemoryManager::builder().interval(cfg.pressure_interval);
    if let Some(budget) = cfg.memory_budget {
        b = b.budget(budget);
    }
    let mm = match rustydb_memory::MemoryManager::install(b) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("rustydb_server: memory manager: {e}");
            return 1;
        }
    };
    if let Some(d) = debugger {
        mm.set_debugger(d);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rustydb_server: cannot start the runtime: {e}");
            return 1;
        }
    };
    let opts = glue::DbOptions {
        frames: cfg.buffer_pool_pages,
        page_size: cfg.page_size,
        checkpoint_every: cfg.checkpoint_interval,
        checkpoint_bytes: cfg.checkpoint_wal_bytes,
        mm: Some(mm),
        ..Default::default()
    };
    let engine: engine::Engine = match glue::GlueEngine::open_with(&cfg.data_dir, opts, Some(lock))
    {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("rustydb_server: SQL engine: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let app = match App::new(cfg, mm, debugger, engine) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("rustydb_server: {e}");
                return 1;
            }
        };
        let running = match start(app.clone()).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("rustydb_server: cannot listen on {}: {e}", app.cfg.addr);
                return 1;
            }
        };
        app.logs.info(
            "server",
            format!(
                "listening on http://{} (memory budget {} B, debugger {:?}, SQL engine `{}`)",
                running.addr,
                mm.pressure().budget(),
                app.debug_level(),
                app.engine.name()
            ),
        );
        shutdown_signal().await;
        app.logs.info("server", "signal received");
        running.stop().await;
        0
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
