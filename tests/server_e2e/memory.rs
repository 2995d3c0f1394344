//! The memory endpoints on live state.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_endpoints_on_live_state() {
    let srv = start(config(), MemoryManager::global()).await;
    let mut c = Client::connect(srv.addr).await;
    let ro = Some(RO);
    let a = Some(ADMIN);

    let v = c.get("/api/v1/memory/stats", ro).await.json();
    let slab = &v["allocators"]["slab"];
    assert!(slab["bytes_in_use"].as_u64().unwrap() > 0, "{v}");
    assert!(slab["fragmentation_ratio"].as_f64().unwrap() >= 1.0);
    assert!(!slab["size_classes"].as_array().unwrap().is_empty());
    assert!(v["fragmentation_ratio"].as_f64().unwrap() > 0.0);
    for k in ["large", "arena", "buffer_pools"] {
        assert!(v["allocators"].get(k).is_some(), "{k}");
    }
    assert_eq!(v["pressure"]["level"], "normal");

    // Leaks: a clear message while the debugger is off, a report once tracking.
    let v = c.get("/api/v1/memory/leaks", a).await.json();
    assert_eq!(v["enabled"], false);
    assert!(v["message"].as_str().unwrap().contains("RUSTYDB_MEM_DEBUG"));
    let r = c
        .raw(
            "PUT",
            "/api/v1/memory/debugger",
            a,
            Some("application/json"),
            br#"{"level":"tracking"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The level is spelled the same way in the request, the answer and the
    // library's serialised statistics.
    let v = c.get("/api/v1/memory/debugger", a).await.json();
    assert_eq!(v["level"], "tracking", "{v}");
    assert_eq!(v["stats"]["level"], "tracking", "{v}");
    let mark = c
        .post("/api/v1/memory/leaks/marks", a, json!({}))
        .await
        .json()["mark_id"]
        .as_u64()
        .unwrap();
    let t = c.post("/api/v1/transactions", a, json!({})).await.json();
    let v = c
        .get(&format!("/api/v1/memory/leaks?mark={mark}"), a)
        .await
        .json();
    assert_eq!(v["enabled"], true);
    assert!(
        v["count"].as_u64().unwrap() > 0,
        "the open transaction's records are live: {v}"
    );
    assert!(!v["groups"].as_array().unwrap().is_empty());
    c.get("/api/v1/memory/leaks?mark=999", a).await.problem(404);
    let r = c
        .raw(
            "PUT",
            "/api/v1/memory/debugger",
            a,
            Some("application/json"),
            br#"{"level":"off"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .raw(
            "PUT",
            "/api/v1/memory/debugger",
            a,
            Some("application/json"),
            br#"{"level":"loud"}"#.to_vec(),
        )
        .await;
    r.problem(400);
    c.post(
        &format!("/api/v1/transactions/{}/rollback", t["transaction_id"]),
        a,
        json!({}),
    )
    .await;

    // Pressure: level, budget, history; webhooks to loopback only.
    let v = c.get("/api/v1/memory/pressure", ro).await.json();
    assert_eq!(v["level"], "normal");
    assert!(v["budget_bytes"].as_u64().unwrap() > 0);
    assert!(v["usage_bytes"].as_u64().unwrap() > 0);
    assert!(v["history"].is_array());
    assert_eq!(v["thresholds"]["warning"], 0.8);
    for bad in [
        "http://10.1.2.3:80/x",
        "https://127.0.0.1/",
        "http://example.com/",
        "nonsense",
    ] {
        c.post(
            "/api/v1/memory/pressure/callbacks",
            a,
            json!({ "url": bad }),
        )
        .await
        .problem(400);
    }
    c.post(
        "/api/v1/memory/pressure/callbacks",
        ro,
        json!({ "url": "http://127.0.0.1:9/" }),
    )
    .await
    .problem(403);
    let w = c
        .post(
            "/api/v1/memory/pressure/callbacks",
            a,
            json!({ "url": "http://127.0.0.1:9/hook", "min_level": "critical" }),
        )
        .await;
    assert_eq!(w.status, 201, "{}", w.text());
    let wid = w.json()["id"].as_u64().unwrap();
    let v = c.get("/api/v1/memory/pressure/callbacks", ro).await.json();
    assert_eq!(v[0]["min_level"], "critical");
    assert_eq!(
        c.raw(
            "DELETE",
            &format!("/api/v1/memory/pressure/callbacks/{wid}"),
            a,
            None,
            vec![]
        )
        .await
        .status,
        200
    );
    c.raw(
        "DELETE",
        &format!("/api/v1/memory/pressure/callbacks/{wid}"),
        a,
        None,
        vec![],
    )
    .await
    .problem(404);
    let v = c
        .post("/api/v1/memory/pressure/check", a, json!({}))
        .await
        .json();
    assert_eq!(v["checked_level"], "normal");

    // Contexts, buffer pool, purge.
    let v = c.get("/api/v1/memory/contexts", ro).await.json();
    assert!(
        context_ids(&v)
            .iter()
            .any(|(_, n, _)| n.starts_with("session:"))
    );
    let v = c.get("/api/v1/memory/buffer-pool", ro).await.json();
    assert_eq!(v["configured"]["pages"], 1024);
    assert_eq!(v["configured"]["page_size"], 4096);
    let v = c.post("/api/v1/memory/purge", a, json!({})).await.json();
    assert!(v["rss_after_bytes"].as_u64().unwrap() > 0);

    // OpenAPI 3.1 describing the REST endpoints.
    let r = c.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let d = r.json();
    assert!(
        d["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        d["openapi"]
    );
    for p in [
        "/api/v1/admin/health",
        "/api/v1/memory/stats",
        "/api/v1/pools/{id}/stats",
        "/api/v1/transactions/{id}/commit",
        "/graphql",
    ] {
        assert!(d["paths"].get(p).is_some(), "missing {p}");
    }
    assert!(d["components"]["securitySchemes"].get("bearer").is_some());

    // Minted tokens work and can be revoked.
    let m = c
        .post(
            "/api/v1/admin/tokens",
            a,
            json!({"role": "readwrite", "label": "ci"}),
        )
        .await;
    assert_eq!(m.status, 201);
    let m = m.json();
    let tok = m["token"].as_str().unwrap().to_string();
    assert_eq!(
        c.post("/api/v1/transactions", Some(tok.as_str()), json!({}))
            .await
            .status,
        201
    );
    let r = c
        .raw(
            "DELETE",
            &format!("/api/v1/admin/tokens/{}", m["token_id"]),
            a,
            None,
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    c.get("/api/v1/metrics", Some(tok.as_str()))
        .await
        .problem(401);

    srv.stop().await;
}
