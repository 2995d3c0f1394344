//! The shared harness of the example server's integration tests
//! (`server_e2e/`, `server_sql/`, …): a scratch data directory, a base
//! configuration, a server on an ephemeral port, and a keep-alive HTTP/1.1
//! client over a real TCP connection.
//!
//! A test crate compiles the server in first and this file after it:
//!
//! ```ignore
//! #[path = "../examples/rustydb_server/server.rs"]
//! mod server;
//! #[path = "common/server.rs"]
//! mod harness;
//! ```
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustydb_memory::MemoryManager;
use serde_json::{Value, json};

use crate::server;

/// A fresh directory under the system's temporary directory,
/// `rustydb-<prefix>-<tag>-<pid>-<nanos>`.
pub fn temp_dir(prefix: &str, tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("rustydb-{prefix}-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tokens of the three roles a test server is started with.
#[derive(Debug, Clone, Copy)]
pub struct Tokens {
    /// Admin.
    pub admin: &'static str,
    /// Readwrite.
    pub readwrite: &'static str,
    /// Readonly.
    pub readonly: &'static str,
}

/// A configuration on `127.0.0.1:0` with `dir` as data directory, the three
/// tokens and no log output; the rest default (tests adjust with `..`).
pub fn config(dir: &Path, t: Tokens) -> server::config::Config {
    server::config::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        admin_token: Some(t.admin.into()),
        readwrite_token: Some(t.readwrite.into()),
        readonly_token: Some(t.readonly.into()),
        log_stderr: false,
        ..Default::default()
    }
}

/// Opens the GlueSQL engine on `cfg.data_dir` (no memory manager attached to
/// its pool), builds the app and serves it.
pub async fn start(
    cfg: server::config::Config,
    mm: &'static MemoryManager,
    debugger: Option<&'static server::state::Debugger>,
) -> server::Running {
    let engine = server::sql::glue::GlueEngine::open(
        &cfg.data_dir,
        cfg.buffer_pool_pages,
        cfg.page_size,
        None,
    )
    .expect("the engine opens");
    let app = server::App::new(cfg, mm, debugger, Arc::new(engine)).unwrap();
    server::start(app).await.unwrap()
}

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    /// The connection's sender (for requests the helpers do not build).
    pub send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The connection's local address.
    pub local: SocketAddr,
}

/// An answer.
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics with the text otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Header `k`, or "" when absent.
    pub fn header(&self, k: &str) -> String {
        self.headers
            .get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Asserts a 2xx and returns the JSON body.
    pub fn ok(&self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "{}: {}",
            self.status,
            self.text()
        );
        self.json()
    }

    /// Asserts an RFC 9457 problem with `status`.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), "application/problem+json");
        let v = self.json();
        assert_eq!(v["status"], status);
        assert!(
            v["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:rustydb:problem:")
        );
        assert!(!v["title"].as_str().unwrap().is_empty());
        assert!(!v["detail"].as_str().unwrap().is_empty());
        v
    }
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let local = s.local_addr().unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Client { send, local }
    }

    /// Sends `method path` with an optional bearer token and content type.
    pub async fn raw(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.raw_with(method, path, token, ctype, body, &[]).await
    }

    /// `GET path` with more headers.
    pub async fn get_with(
        &mut self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.raw_with("GET", path, token, None, Vec::new(), headers)
            .await
    }

    /// [`raw`](Self::raw) with more headers.
    pub async fn raw_with(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(c) = ctype {
            b = b.header("content-type", c);
        }
        self.send.ready().await.unwrap();
        let r = self
            .send
            .send_request(b.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method path` with `body` as JSON, if any.
    pub async fn req<'t>(
        &mut self,
        method: &str,
        path: &str,
        token: impl Into<Option<&'t str>>,
        body: Option<Value>,
    ) -> Reply {
        let token = token.into();
        match body {
            Some(v) => {
                let bytes = serde_json::to_vec(&v).unwrap();
                self.raw(method, path, token, Some("application/json"), bytes)
                    .await
            }
            None => self.raw(method, path, token, None, Vec::new()).await,
        }
    }

    /// `GET path`.
    pub async fn get<'t>(&mut self, path: &str, token: impl Into<Option<&'t str>>) -> Reply {
        self.req("GET", path, token, None).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post<'t>(
        &mut self,
        path: &str,
        token: impl Into<Option<&'t str>>,
        body: Value,
    ) -> Reply {
        self.req("POST", path, token, Some(body)).await
    }

    /// A GraphQL request that must answer 200.
    pub async fn gql(&mut self, token: &str, query: &str) -> Value {
        let r = self
            .post("/graphql", token, json!({ "query": query }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}
