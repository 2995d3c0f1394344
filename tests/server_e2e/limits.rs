//! Connection and transaction limits, anonymous reads, and pressure with real resident memory.

use super::*;

/// `--max-connections` refuses the connection beyond the limit with a 503;
/// idle transactions are rolled back by the reaper; anonymous reads when enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_timeouts_and_anonymous_reads() {
    let mut cfg = config();
    cfg.max_connections = 2;
    cfg.txn_idle_timeout = Duration::from_secs(1);
    cfg.allow_anonymous_reads = true;
    let srv = start(cfg, MemoryManager::global()).await;
    let mut c1 = Client::connect(srv.addr).await;
    let mut c2 = Client::connect(srv.addr).await;
    assert_eq!(c1.get("/api/v1/admin/health", None).await.status, 200);
    assert_eq!(c2.get("/api/v1/admin/health", None).await.status, 200);
    let mut c3 = Client::connect(srv.addr).await;
    let r = c3.get("/api/v1/admin/health", None).await;
    let p = r.problem(503);
    assert_eq!(p["type"], "urn:rustydb:problem:too-many-connections");
    assert_eq!(r.header("connection"), "close");
    drop(c2);

    // Anonymous reads get the readonly role; writes still need a token.
    let r = c1.get("/api/v1/pools", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    c1.post("/api/v1/transactions", None, json!({}))
        .await
        .problem(401);

    let t = c1
        .post("/api/v1/transactions", Some(RW), json!({}))
        .await
        .json();
    let id = t["transaction_id"].as_u64().unwrap();
    let t0 = Instant::now();
    loop {
        let r = c1
            .get(&format!("/api/v1/transactions/{id}"), Some(RW))
            .await;
        if r.status == 409 {
            assert!(r.json()["detail"].as_str().unwrap().contains("timed_out"));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not rolled back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;
}

/// A loopback HTTP listener collecting POST bodies (the webhook receiver).
async fn webhook_sink() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let b = req.into_body().collect().await.unwrap().to_bytes();
                            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                                let _ = tx.send(v);
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

async fn wait_for<F: FnMut(&Value) -> bool>(
    c: &mut Client,
    path: &str,
    token: &str,
    mut f: F,
) -> Value {
    let t0 = Instant::now();
    loop {
        let v = c.get(path, Some(token)).await.json();
        if f(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "timed out waiting on {path}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Real resident memory pushes the pressure level up: an alert, a webhook
/// call, refused work; freeing it brings the level back down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressure_alerts_and_webhooks() {
    const BALLAST: u64 = 192 << 20;
    // The ballast alone is over the emergency threshold: no reclaimer can help.
    let budget = vm_rss() + BALLAST * 5 / 6;
    let mm: &'static MemoryManager = Box::leak(Box::new(
        MemoryManager::builder()
            .budget(budget)
            .interval(Duration::from_millis(20))
            .build()
            .unwrap(),
    ));
    let srv = start(config(), mm).await;
    let mut c = Client::connect(srv.addr).await;
    let a = Some(ADMIN);
    let (hook, mut calls) = webhook_sink().await;
    let r = c
        .post(
            "/api/v1/memory/pressure/callbacks",
            a,
            json!({"url": format!("http://{hook}/pressure")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    let r = c
        .post("/api/v1/memory/ballast", a, json!({"bytes": BALLAST}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = wait_for(&mut c, "/api/v1/alerts?state=active", ADMIN, |v| {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["source"] == "memory.pressure")
    })
    .await;
    let alert = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "memory.pressure")
        .unwrap()
        .clone();
    assert_ne!(alert["severity"], "normal");
    // The event records usage after the reclaimers ran, which may be lower.
    assert!(alert["details"]["usage_bytes"].as_u64().unwrap() >= budget / 2);
    assert_ne!(alert["details"]["to"], "normal");
    let call = tokio::time::timeout(Duration::from_secs(10), calls.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call["event"], "memory.pressure.level_changed");
    assert_eq!(call["from"], "normal");
    assert_eq!(call["budget_bytes"], budget);

    // At the emergency level new work is refused (the ballast is real, so it stays).
    wait_for(&mut c, "/api/v1/memory/pressure", ADMIN, |v| {
        v["level"] == "emergency"
    })
    .await;
    let p = c
        .post("/api/v1/transactions", a, json!({}))
        .await
        .problem(503);
    assert_eq!(p["type"], "urn:rustydb:problem:memory-pressure");
    c.post("/api/v1/query", a, json!({"sql": "SELECT 1"}))
        .await
        .problem(503);
    // The watcher turns the event into an alert within its 50 ms poll.
    wait_for(&mut c, "/api/v1/alerts?state=active", ADMIN, |v| {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["source"] == "memory.pressure" && x["severity"] == "emergency")
    })
    .await;
    let v = c.get("/api/v1/admin/health", None).await;
    assert_ne!(v.json()["checks"]["memory"]["status"], "healthy");
    let h = c
        .get("/api/v1/memory/pressure?history_limit=5", a)
        .await
        .json();
    assert!(!h["history"].as_array().unwrap().is_empty());
    assert!(h["callbacks"][0]["deliveries"].as_u64().unwrap() >= 1);

    // Free it: back to normal, the alert resolves, the webhook hears it.
    let r = c
        .raw("DELETE", "/api/v1/memory/ballast", a, None, vec![])
        .await;
    assert_eq!(r.json()["freed_bytes"], BALLAST);
    wait_for(&mut c, "/api/v1/memory/pressure", ADMIN, |v| {
        v["level"] == "normal"
    })
    .await;
    wait_for(&mut c, "/api/v1/alerts?state=active", ADMIN, |v| {
        !v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["source"] == "memory.pressure")
    })
    .await;
    let t0 = Instant::now();
    loop {
        let call = tokio::time::timeout(Duration::from_secs(10), calls.recv())
            .await
            .unwrap()
            .unwrap();
        if call["to"] == "normal" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    assert_eq!(
        c.post("/api/v1/transactions", a, json!({})).await.status,
        201
    );
    srv.stop().await;
}
