//! The dashboard over real sockets: the page and its embedded assets with
//! their types and caching headers, the GraphQL playground's token field, the
//! history ring as JSON, and the Server-Sent Events stream resumed with
//! `Last-Event-ID`. (The page drawing in a browser is `.ci/browser.sh`.)

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustydb_memory::{DebugAlloc, MemoryManager, RustyAlloc};
use serde_json::Value;

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "../examples/rustydb_server/server.rs"]
mod server;

#[path = "common/server.rs"]
mod harness;

use harness::Client;

const ADMIN: &str = "admin-token-dash-0123456789";
const RW: &str = "readwrite-token-dash-0123456789";
const RO: &str = "readonly-token-dash-0123456789";

async fn start() -> server::Running {
    let tokens = harness::Tokens {
        admin: ADMIN,
        readwrite: RW,
        readonly: RO,
    };
    let cfg = server::config::Config {
        history_seconds: 20,
        ..harness::config(&harness::temp_dir("dash", "run"), tokens)
    };
    harness::start(cfg, MemoryManager::global(), Some(&GLOBAL)).await
}

/// The history once it holds at least `n` samples (one a second).
async fn history_with(c: &mut Client, n: u64) -> Value {
    let t0 = Instant::now();
    loop {
        let h = c.get("/api/v1/memory/history", RO).await.ok();
        if h["count"].as_u64().unwrap() >= n {
            return h;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no samples: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_types_and_caching() {
    let s = start().await;
    let mut c = Client::connect(s.addr).await;
    // Open: no token needed for the page (it holds no data).
    let p = c.get("/dashboard", None).await;
    assert_eq!(p.status, 200);
    assert_eq!(p.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(p.header("cache-control"), "no-cache");
    let etag = p.header("etag");
    assert!(etag.starts_with('"') && etag.len() > 4, "{etag}");
    let page = p.text();
    // The sign-in field; the token itself never appears in a URL.
    assert!(page.contains("id=\"token\""));
    assert!(!page.contains("?token=") && !page.contains("&token="));
    // Revalidation.
    let r = c
        .get_with("/dashboard", None, &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // Every asset the page names: its type, immutable under its hash.
    let mut seen = 0;
    let mut weight = page.len();
    for part in page.split("\"/dashboard/assets/").skip(1) {
        let path = format!("/dashboard/assets/{}", &part[..part.find('"').unwrap()]);
        let a = c.get(&path, None).await;
        assert_eq!(a.status, 200, "{path}");
        let want = if path.contains(".js?") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(a.header("content-type"), want, "{path}");
        assert_eq!(
            a.header("cache-control"),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        weight += a.body.len();
        // Without the hash: revalidated, and 304 on a matching ETag.
        let bare = path.split('?').next().unwrap();
        let b = c.get(bare, None).await;
        assert_eq!(b.header("cache-control"), "no-cache", "{bare}");
        let tag = b.header("etag");
        let r = c
            .get_with(bare, None, &[("if-none-match", tag.as_str())])
            .await;
        assert_eq!(r.status, 304, "{bare}");
        seen += 1;
    }
    assert_eq!(seen, 4, "uPlot's script and stylesheet, the page's own two");
    assert!(weight <= 200 << 10, "page weight {weight} bytes");
    let l = c.get("/dashboard/assets/uPlot.LICENSE.txt", None).await;
    assert_eq!(l.status, 200);
    assert!(l.text().contains("MIT License"));
    c.get("/dashboard/assets/nope.js", None).await.problem(404);
    // API answers stay uncached.
    let h = c.get("/api/v1/memory/history?limit=1", RO).await;
    assert_eq!(h.header("cache-control"), "no-store");
    // The playground is open and carries a token field kept in the tab.
    let g = c.get("/graphql/playground", None).await;
    assert_eq!(g.status, 200);
    let g = g.text();
    assert!(g.contains("id=\"rustydb-token\""), "{g}");
    assert!(g.contains(r#"sessionStorage.getItem("rustydb.token")"#));
    assert!(!g.contains("rustydb-token-slot"), "the slot is replaced");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_ring_and_its_stream_resume_after_the_last_event() {
    let s = start().await;
    let mut c = Client::connect(s.addr).await;
    c.get("/api/v1/memory/history", None).await.problem(401);
    let h = history_with(&mut c, 3).await;
    assert_eq!(h["capacity"], 20);
    assert_eq!(h["interval_ms"], 1000);
    assert_eq!(h["role"], "readonly");
    let cols = &h["columns"];
    let seq: Vec<u64> = cols["seq"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(seq.len() as u64, h["count"].as_u64().unwrap());
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");
    assert!(cols["rss_bytes"][0].as_u64().unwrap() > 0);
    assert_eq!(cols["rss_bytes"].as_array().unwrap().len(), seq.len());
    // The ring's memory is a context of its own, listed with the others.
    let m = &h["memory"];
    assert!(m["used_bytes"].as_u64().unwrap() >= 20 * m["sample_bytes"].as_u64().unwrap());
    let ctxs = c.get("/api/v1/memory/contexts", RO).await.ok();
    assert!(
        ctxs["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == m["context_id"] && x["name"] == "history"),
        "{ctxs}"
    );
    // `after` and `limit`.
    let last = h["last_seq"].as_u64().unwrap();
    let one = c.get("/api/v1/memory/history?limit=1", RO).await.ok();
    assert_eq!(one["count"], 1);
    let none = c
        .get(&format!("/api/v1/memory/history?after={}", u32::MAX), RO)
        .await
        .ok();
    assert_eq!(none["count"], 0);
    c.get("/api/v1/memory/history?limit=0", RO)
        .await
        .problem(400);

    // The stream, resumed after `last - 2`: the two samples missed come
    // first, in order, then live ones.
    let events = sse(s.addr, Some(last - 2), 4).await;
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(ids[..2], [last - 1, last], "{ids:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    for (id, data) in &events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["seq"], *id);
    }
    // Without Last-Event-ID: the newest sample first.
    let events = sse(s.addr, None, 1).await;
    assert!(events[0].0 >= last);
    // A bad Last-Event-ID is refused.
    let r = c
        .get_with(
            "/api/v1/memory/history/stream",
            Some(RO),
            &[("last-event-id", "x1")],
        )
        .await;
    r.problem(400);
    s.stop().await;
}

/// Reads `n` `sample` events (id, data) from the stream.
async fn sse(addr: std::net::SocketAddr, last: Option<u64>, n: usize) -> Vec<(u64, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = hyper::Request::builder()
        .uri("/api/v1/memory/history/stream")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {RO}"));
    if let Some(l) = last {
        b = b.header("last-event-id", l.to_string());
    }
    let r = send
        .send_request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.into_body();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = tokio::time::timeout(left, body.frame())
            .await
            .expect("events within 20 s")
            .expect("the stream stays open")
            .unwrap();
        let Ok(d) = f.into_data() else { continue };
        text.push_str(std::str::from_utf8(&d).unwrap());
        while let Some(i) = text.find("\n\n") {
            let block: String = text.drain(..i + 2).collect();
            let mut id = None;
            let mut data = String::new();
            let mut sample = false;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse::<u64>().unwrap());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                } else if line == "event: sample" {
                    sample = true;
                }
            }
            if sample {
                out.push((id.expect("every sample has an id"), data));
            }
        }
    }
    task.abort();
    out.truncate(n);
    out
}
