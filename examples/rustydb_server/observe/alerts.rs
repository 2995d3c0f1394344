//! Alerts (from pressure transitions, emergency releases and debugger
//! findings) and the pressure webhooks registered through
//! `POST /api/v1/memory/pressure/callbacks`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustydb_memory::PressureLevel;
use serde::Serialize;
use serde_json::Value;

use crate::server::api::http::unix_ms;
use crate::server::api::problem::Problem;

/// Alerts kept (oldest dropped first).
const ALERTS_KEPT: usize = 256;
/// Webhooks at most.
pub const MAX_WEBHOOKS: usize = 32;

/// One alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// Id, increasing from 1.
    pub id: u64,
    /// `info`, `warning`, `critical`, `emergency`.
    pub severity: String,
    /// `memory.pressure`, `memory.release`, `memory.debugger`.
    pub source: &'static str,
    /// What happened.
    pub message: String,
    /// `active` or `resolved`.
    pub state: &'static str,
    /// Unix ms.
    pub raised_at_ms: u64,
    /// Unix ms, once resolved.
    pub resolved_at_ms: Option<u64>,
    /// Figures behind it.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The alert list.
#[derive(Debug, Default)]
pub struct Alerts {
    list: Mutex<VecDeque<Alert>>,
    next: AtomicU64,
    /// Alerts raised since start.
    pub raised: AtomicU64,
}

impl Alerts {
    /// Raises an alert; returns its id.
    pub fn raise(
        &self,
        severity: &str,
        source: &'static str,
        message: String,
        active: bool,
        details: Value,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let now = unix_ms();
        let a = Alert {
            id,
            severity: severity.to_string(),
            source,
            message,
            state: if active { "active" } else { "resolved" },
            raised_at_ms: now,
            resolved_at_ms: (!active).then_some(now),
            details,
        };
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == ALERTS_KEPT {
            // Drop the oldest resolved alert, else the oldest.
            let i = l.iter().position(|a| a.state == "resolved").unwrap_or(0);
            l.remove(i);
        }
        l.push_back(a);
        self.raised.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// Resolves the active alerts of `source`; returns how many.
    pub fn resolve_source(&self, source: &str) -> usize {
        let now = unix_ms();
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for a in l
            .iter_mut()
            .filter(|a| a.source == source && a.state == "active")
        {
            a.state = "resolved";
            a.resolved_at_ms = Some(now);
            n += 1;
        }
        n
    }

    /// Resolves alert `id`: `Some(alert)` if it exists.
    pub fn acknowledge(&self, id: u64) -> Option<Alert> {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let a = l.iter_mut().find(|a| a.id == id)?;
        if a.state == "active" {
            a.state = "resolved";
            a.resolved_at_ms = Some(unix_ms());
        }
        Some(a.clone())
    }

    /// Alerts, newest first; only active ones if `active_only`.
    pub fn list(&self, active_only: bool) -> Vec<Alert> {
        let l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.iter()
            .rev()
            .filter(|a| !active_only || a.state == "active")
            .cloned()
            .collect()
    }

    /// Active alerts.
    pub fn active_count(&self) -> usize {
        let l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().filter(|a| a.state == "active").count()
    }
}

/// A registered webhook.
#[derive(Debug)]
pub struct Webhook {
    /// Id.
    pub id: u64,
    /// The URL as given.
    pub url: String,
    /// Where it connects.
    pub target: SocketAddr,
    /// `Host` header.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Called when either side of a transition is at least this level.
    pub min_level: PressureLevel,
    /// Unix ms.
    pub created_ms: u64,
    /// Calls made.
    pub deliveries: AtomicU64,
    /// Calls that failed (connect error, timeout, non-2xx).
    pub failures: AtomicU64,
    /// Outcome of the last call.
    pub last_result: Mutex<Option<String>>,
    /// Events not delivered because 64 were already waiting.
    pub dropped: AtomicU64,
    /// Events waiting, delivered in order by one task per webhook.
    queue: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
}

impl Webhook {
    /// Queues `payload` for delivery (in order; dropped and counted when 64 wait).
    pub fn enqueue(&self, payload: Arc<Vec<u8>>) {
        let ok = self
            .queue
            .as_ref()
            .is_some_and(|q| q.try_send(payload).is_ok());
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn delivery_worker(
    w: std::sync::Weak<Webhook>,
    mut rx: tokio::sync::mpsc::Receiver<Arc<Vec<u8>>>,
) {
    // Ends when the webhook is unregistered (its sender goes with it).
    while let Some(p) = rx.recv().await {
        let Some(w) = w.upgrade() else { return };
        let _ = deliver(w, p).await;
    }
}

/// A webhook as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// Id.
    pub id: u64,
    /// URL.
    pub url: String,
    /// `normal`, `warning`, `critical`, `emergency`.
    pub min_level: String,
    /// Unix ms.
    pub created_at_ms: u64,
    /// Calls made.
    pub deliveries: u64,
    /// Calls failed.
    pub failures: u64,
    /// Outcome of the last call (`200`, `error: …`).
    pub last_result: Option<String>,
    /// Events dropped because the queue was full.
    pub dropped: u64,
}

impl Webhook {
    /// Listing form.
    pub fn info(&self) -> WebhookInfo {
        WebhookInfo {
            id: self.id,
            url: self.url.clone(),
            min_level: self.min_level.as_str().into(),
            created_at_ms: self.created_ms,
            deliveries: self.deliveries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            last_result: self
                .last_result
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// The webhook URLs accepted, as the document states them: `http://`, a
/// loopback host (`localhost`, `127.x.y.z`, `[::1]`), an optional port
/// (1 to 65535), an optional path and query of URL characters. The handler
/// checks this very pattern, so the document and the server agree.
pub const WEBHOOK_URL_PATTERN: &str = concat!(
    r"^http://(localhost|127(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|\[::1\])",
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$",
);

/// Longest webhook URL accepted.
pub const WEBHOOK_URL_MAX: usize = 2048;

/// Parses a webhook URL: `http://` to a loopback address only (127.0.0.0/8,
/// `::1` or `localhost`, which is taken as 127.0.0.1 without a DNS lookup),
/// of the form [`WEBHOOK_URL_PATTERN`] states.
pub fn parse_loopback_url(url: &str) -> Result<(SocketAddr, String, String), Problem> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern =
        PATTERN.get_or_init(|| regex::Regex::new(WEBHOOK_URL_PATTERN).expect("a valid pattern"));
    if url.len() > WEBHOOK_URL_MAX || !pattern.is_match(url) {
        return Err(Problem::bad_request(format!(
            "`url` must be http:// to 127.x.y.z, [::1] or localhost, with an optional port and path, \
             at most {WEBHOOK_URL_MAX} characters (pattern {WEBHOOK_URL_PATTERN})"
        ))
        .with("parameter", "url"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| Problem::bad_request(format!("`url` is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Problem::bad_request(
            "webhook URLs must use http:// (to a loopback address)",
        ));
    }
    let auth = uri
        .authority()
        .ok_or_else(|| Problem::bad_request("the webhook URL has no host"))?;
    if auth.as_str().contains('@') {
        return Err(Problem::bad_request(
            "webhook URLs may not carry credentials",
        ));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| {
            Problem::bad_request(format!(
                "webhook host `{host}` is not allowed: use 127.0.0.1, [::1] or localhost"
            ))
        })?
    };
    if !ip.is_loopback() {
        return Err(Problem::bad_request(format!(
            "webhook host {ip} is not a loopback address; only loopback URLs are allowed"
        )));
    }
    let port = auth.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    Ok((SocketAddr::new(ip, port), auth.as_str().to_string(), path))
}

/// The registered webhooks.
#[derive(Debug, Default)]
pub struct Webhooks {
    list: RwLock<Vec<Arc<Webhook>>>,
    next: AtomicU64,
}

impl Webhooks {
    /// Registers a webhook.
    pub fn add(&self, url: &str, min_level: PressureLevel) -> Result<Arc<Webhook>, Problem> {
        let (target, host, path) = parse_loopback_url(url)?;
        let mut l = self.list.write().unwrap_or_else(|e| e.into_inner());
        if l.len() >= MAX_WEBHOOKS {
            return Err(Problem::conflict(format!(
                "{MAX_WEBHOOKS} webhooks are registered already; delete one first"
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let w = Arc::new(Webhook {
            queue: runtime.is_some().then_some(tx),
            dropped: AtomicU64::new(0),
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            url: url.to_string(),
            target,
            host,
            path,
            min_level,
            created_ms: unix_ms(),
            deliveries: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_result: Mutex::new(None),
        });
        if let Some(rt) = runtime {
            rt.spawn(delivery_worker(Arc::downgrade(&w), rx));
        }
        l.push(w.clone());
        Ok(w)
    }

    /// Unregisters webhook `id`.
    pub fn remove(&self, id: u64) -> bool {
        let mut l = self.list.write().unwrap_or_else(|e| e.into_inner());
        let n = l.len();
        l.retain(|w| w.id != id);
        l.len() != n
    }

    /// All webhooks.
    pub fn all(&self) -> Vec<Arc<Webhook>> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// POSTs `payload` to `w` (2 s timeout); records the outcome.
pub async fn deliver(w: Arc<Webhook>, payload: Arc<Vec<u8>>) -> Result<u16, String> {
    let r = tokio::time::timeout(Duration::from_secs(2), post(&w, payload)).await;
    let r = match r {
        Ok(r) => r,
        Err(_) => Err("timed out after 2 s".to_string()),
    };
    w.deliveries.fetch_add(1, Ordering::Relaxed);
    let text = match &r {
        Ok(s) if (200..300).contains(s) => s.to_string(),
        Ok(s) => {
            w.failures.fetch_add(1, Ordering::Relaxed);
            s.to_string()
        }
        Err(e) => {
            w.failures.fetch_add(1, Ordering::Relaxed);
            format!("error: {e}")
        }
    };
    *w.last_result.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    r
}

async fn post(w: &Webhook, payload: Arc<Vec<u8>>) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(w.target)
        .await
        .map_err(|e| format!("connect {}: {e}", w.target))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(w.path.as_str())
        .header(hyper::header::HOST, w.host.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "rustydb-server-webhook/1")
        .body(Full::new(Bytes::from(payload.as_ref().clone())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_urls() {
        assert!(parse_loopback_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(parse_loopback_url("http://127.8.9.10/x?y=1").is_ok());
        assert!(parse_loopback_url("http://[::1]:8081/").is_ok());
        assert!(parse_loopback_url("http://127.0.0.1:65535").is_ok());
        assert!(parse_loopback_url("http://localhost?x=/y").is_ok());
        let (a, _, p) = parse_loopback_url("http://localhost:1234/a/b").unwrap();
        assert_eq!(
            (a.to_string().as_str(), p.as_str()),
            ("127.0.0.1:1234", "/a/b")
        );
        for bad in [
            "https://127.0.0.1/",
            "http://10.0.0.1/",
            "http://example.com/",
            "http://user:pw@127.0.0.1/",
            "http://0.0.0.0/",
            "ftp://127.0.0.1/",
            "not a url",
            "http://169.254.169.254/latest",
            "http://LOCALHOST/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:65536/",
            "http://127.0.0.256/",
            "http://127.0.0.1/a b",
            "http://127.0.0.1/#frag",
        ] {
            assert!(parse_loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alerts_raise_resolve_and_stay_bounded() {
        let a = Alerts::default();
        let id = a.raise("warning", "memory.pressure", "x".into(), true, Value::Null);
        assert_eq!(a.active_count(), 1);
        assert_eq!(a.resolve_source("memory.pressure"), 1);
        assert_eq!(a.active_count(), 0);
        assert_eq!(a.acknowledge(id).unwrap().state, "resolved");
        for _ in 0..(ALERTS_KEPT + 10) {
            a.raise("info", "memory.release", "y".into(), false, Value::Null);
        }
        assert_eq!(a.list(false).len(), ALERTS_KEPT);
    }
}
