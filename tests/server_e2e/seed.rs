//! The seed's end-to-end checks on a live server.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_checks_on_real_state() {
    let mut cfg = config();
    cfg.access_log = true;
    let srv = start(cfg, MemoryManager::global()).await;
    let mut c = Client::connect(srv.addr).await;
    let a = Some(ADMIN);
    let ro = Some(RO);

    // MEMORY-001: health, open to all.
    let r = c.get("/api/v1/admin/health", None).await;
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime_seconds"].is_u64());
    assert_eq!(h["checks"]["database"]["status"], "healthy");
    assert!(
        h["checks"]["database"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Database is operational: catalog readable"),
        "{h}"
    );
    assert_eq!(h["checks"]["storage"]["status"], "healthy");
    assert_eq!(h["checks"]["memory"]["status"], "healthy");

    // MEMORY-002: metrics grow with requests.
    let m1 = c.get("/api/v1/metrics", ro).await.json();
    assert!(m1["timestamp"].as_u64().unwrap() > 1_700_000_000);
    for k in ["successful_requests", "avg_response_time", "total_requests"] {
        assert!(m1["metrics"][k]["value"].is_f64(), "{k}");
    }
    assert_eq!(m1["metrics"]["avg_response_time"]["unit"], "milliseconds");
    let total1 = metric(&m1, "total_requests");
    assert!(total1 >= 1.0);
    for _ in 0..3 {
        c.get("/api/v1/admin/health", None).await;
    }
    let m2 = c.get("/api/v1/metrics", ro).await.json();
    assert!(metric(&m2, "total_requests") >= total1 + 4.0, "{m2}");
    assert!(metric(&m2, "avg_response_time") > 0.0);

    // MEMORY-003: Prometheus, the seed's metrics and per-allocator ones.
    let r = c.get("/api/v1/metrics/prometheus", ro).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/plain"));
    let t = r.text();
    for l in [
        "# TYPE rustydb_total_requests counter",
        "# TYPE rustydb_successful_requests counter",
        "# TYPE rustydb_avg_response_time_ms gauge",
        "rustydb_memory_fragmentation_ratio",
        "rustydb_memory_slab_live_objects{",
        "rustydb_memory_context_used_bytes{",
        "rustydb_http_requests_total{",
        "rustydb_pool_active_connections{pool=\"readonly\"} 1",
    ] {
        assert!(t.contains(l), "missing {l}");
    }
    let total_line = t
        .lines()
        .find(|l| l.starts_with("rustydb_total_requests "))
        .unwrap();
    let n: f64 = total_line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(n >= total1 + 5.0);

    // MEMORY-004: measured performance; RSS within 20 % of VmRSS.
    let p = c.get("/api/v1/stats/performance", ro).await.json();
    let rss = p["memory_usage_bytes"]
        .as_f64()
        .expect("/proc is readable here");
    let vm = vm_rss() as f64;
    assert!((rss - vm).abs() <= 0.2 * vm, "reported {rss}, VmRSS {vm}");
    let pct = p["memory_usage_percent"].as_f64().unwrap();
    assert!(pct > 0.0 && pct < 100.0);
    for k in ["cpu_usage_percent", "transactions_per_second"] {
        assert!(p[k].as_f64().unwrap() >= 0.0, "{k}");
    }
    for k in ["disk_io_read_bytes", "disk_io_write_bytes", "threads"] {
        assert!(p[k].is_u64(), "{k}: readable from /proc here");
    }
    // Measured by the engine's writer lock: nobody holds or waits for it now.
    assert_eq!(p["locks_held"], 0, "{p}");
    assert_eq!(p["deadlocks"], 0);
    assert_eq!(p["lock_waiting"], 0);
    assert!(p["lock_waits"].is_u64() && p["lock_timeouts"].is_u64());
    assert!(p.as_object().unwrap().contains_key("cache_hit_ratio"));

    // MEMORY-005: session statistics (this request's session is active).
    let s = c.get("/api/v1/stats/sessions", ro).await.json();
    assert!(s["active_sessions"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["idle_sessions"].is_u64());
    assert!(s["total_connections"].as_u64().unwrap() >= 1);
    assert!(s["peak_connections"].as_u64().unwrap() >= 1);
    assert!(!s["sessions"].as_array().unwrap().is_empty());

    // MEMORY-006: query statistics count GraphQL operations.
    let q1 = c.get("/api/v1/stats/queries", ro).await.json();
    for k in [
        "total_queries",
        "queries_per_second",
        "avg_execution_time_ms",
        "slow_queries",
        "top_queries",
    ] {
        assert!(q1.get(k).is_some(), "{k}");
    }
    c.gql(RO, "{ schemas { name } }").await;
    let q2 = c.get("/api/v1/stats/queries", ro).await.json();
    assert_eq!(
        q2["total_queries"].as_u64().unwrap(),
        q1["total_queries"].as_u64().unwrap() + 1
    );
    assert!(
        q2["top_queries"][0]["query"]
            .as_str()
            .unwrap()
            .contains("schemas")
    );

    // MEMORY-007: introspection, 40+ types.
    let v = c.gql(RO, "{ __schema { types { name } } }").await;
    let names: Vec<&str> = v["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 40, "{} types: {names:?}", names.len());
    for t in [
        "AggregateInput",
        "QueryRoot",
        "MutationRoot",
        "DatabaseSchema",
        "TableType",
        "ColumnType",
        "TransactionInfo",
        "MutationError",
    ] {
        assert!(names.contains(&t), "missing {t}");
    }
    // The full introspection query passes the depth and complexity limits.
    let full = include_str!("../server_introspection.graphql");
    let v = c.gql(RO, full).await;
    assert!(v.get("errors").is_none(), "{v}");

    // MEMORY-008: QueryRoot's fields.
    let v = c
        .gql(RO, "{ __type(name: \"QueryRoot\") { fields { name } } }")
        .await;
    let fields: Vec<&str> = v["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for f in [
        "schemas",
        "schema",
        "tables",
        "table",
        "queryTable",
        "queryTables",
        "queryTableConnection",
        "row",
        "aggregate",
        "count",
        "executeSql",
        "search",
        "explain",
        "executeUnion",
    ] {
        assert!(fields.contains(&f), "missing {f}");
    }

    // MEMORY-009: connections, paginated; a second open connection appears.
    let mut c2 = Client::connect(srv.addr).await;
    assert_eq!(c2.get("/api/v1/admin/health", None).await.status, 200);
    let v = c.get("/api/v1/connections", ro).await.json();
    assert_eq!(v["page"], 1);
    assert_eq!(v["page_size"], 50);
    assert!(v["total_count"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["total_pages"].as_u64().unwrap() >= 1);
    let addrs: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["client_address"].as_str().unwrap())
        .collect();
    assert!(addrs.contains(&c.local.to_string().as_str()));
    assert!(addrs.contains(&c2.local.to_string().as_str()), "{addrs:?}");
    let me = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["client_address"] == c.local.to_string())
        .unwrap();
    assert_eq!(me["state"], "active");
    let v = c
        .get("/api/v1/connections?page=2&page_size=1", ro)
        .await
        .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    drop(c2);

    // MEMORY-010: sessions with their memory contexts.
    let v = c.get("/api/v1/sessions", ro).await.json();
    let sess = v["data"].as_array().unwrap();
    assert!(
        sess.iter()
            .any(|s| s["role"] == "readonly" && s["memory"]["context_id"].as_u64().unwrap() > 0)
    );

    // MEMORY-011/012: the seed's pools.
    let v = c.get("/api/v1/pools", ro).await.json();
    assert_eq!(
        v,
        json!([
            {"pool_id": "default", "min_connections": 10, "max_connections": 100, "connection_timeout_secs": 30, "idle_timeout_secs": 600},
            {"pool_id": "readonly", "min_connections": 5, "max_connections": 50, "connection_timeout_secs": 15, "idle_timeout_secs": 300}
        ])
    );
    assert_eq!(
        c.get("/api/v1/pools/default", ro).await.json()["max_connections"],
        100
    );
    c.get("/api/v1/pools/nope", ro).await.problem(404);

    // MEMORY-013: pool counters count real acquisitions.
    let s1 = c.get("/api/v1/pools/default/stats", ro).await.json();
    for k in [
        "active_connections",
        "idle_connections",
        "total_connections",
        "waiting_requests",
        "total_acquired",
        "total_created",
        "total_destroyed",
    ] {
        assert!(s1[k].is_u64(), "{k}");
    }
    assert_eq!(
        s1["total_created"], 10,
        "min_connections are created at start"
    );
    let ro1 = c.get("/api/v1/pools/readonly/stats", ro).await.json();
    assert_eq!(
        ro1["active_connections"], 1,
        "this very request holds a readonly slot"
    );
    c.post("/api/v1/transactions", Some(RW), json!({})).await;
    c.post("/api/v1/transactions", Some(RW), json!({})).await;
    let s2 = c.get("/api/v1/pools/default/stats", ro).await.json();
    assert_eq!(
        s2["total_acquired"].as_u64().unwrap(),
        s1["total_acquired"].as_u64().unwrap() + 2
    );
    let ro2 = c.get("/api/v1/pools/readonly/stats", ro).await.json();
    assert!(ro2["total_acquired"].as_u64().unwrap() >= ro1["total_acquired"].as_u64().unwrap() + 2);

    // MEMORY-014/021/022/037/038: the seed's SQL on the GlueSQL engine, each
    // counted as a query.
    let q1 = c.get("/api/v1/stats/queries", ro).await.json();
    for sql in [
        "SELECT 1 as test",
        "VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)",
        "SELECT * FROM (VALUES (1),(2)) a CROSS JOIN (VALUES (3),(4)) b",
        "SELECT REPEAT('A', 1000)",
    ] {
        let r = c
            .post("/api/v1/query", Some(RW), json!({ "sql": sql }))
            .await;
        assert_eq!(r.status, 200, "{sql}: {}", r.text());
        assert!(!r.json()["rows"].as_array().unwrap().is_empty(), "{sql}");
    }
    for i in 0..5 {
        c.post(
            "/api/v1/query",
            Some(RW),
            json!({ "sql": format!("SELEC {i}") }),
        )
        .await
        .problem(400);
    }
    let q2 = c.get("/api/v1/stats/queries", ro).await.json();
    assert_eq!(
        q2["total_queries"].as_u64().unwrap(),
        q1["total_queries"].as_u64().unwrap() + 9
    );
    assert_eq!(
        q2["failed_queries"].as_u64().unwrap(),
        q1["failed_queries"].as_u64().unwrap() + 5,
        "the five misspelt statements"
    );
    c.post("/api/v1/query", Some(RW), json!({ "sql": "   " }))
        .await
        .problem(400);
    c.post(
        "/api/v1/query",
        Some(RW),
        json!({ "sql": "SELECT 1", "bogus": 1 }),
    )
    .await
    .problem(400);
    c.post(
        "/api/v1/query",
        Some(RW),
        json!({ "sql": "SELECT 1", "transaction_id": 999_999 }),
    )
    .await
    .problem(404);

    // MEMORY-023..025: concurrent queries on separate connections.
    let mut handles = Vec::new();
    for i in 0..3 {
        let addr = srv.addr;
        handles.push(tokio::spawn(async move {
            let mut k = Client::connect(addr).await;
            k.post(
                "/api/v1/query",
                Some(RW),
                json!({ "sql": format!("SELECT {i}") }),
            )
            .await
            .status
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }

    // MEMORY-015: table creation (admin; validated; engine seam).
    let spec = json!({"columns": [{"name": "id", "type": "INTEGER", "nullable": false, "primary_key": true}, {"name": "name", "type": "TEXT"}]});
    let r = c
        .post("/api/v1/tables/test_memory_table", a, spec.clone())
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    c.post("/api/v1/tables/test_memory_table", Some(RW), spec.clone())
        .await
        .problem(403);
    c.post(
        "/api/v1/tables/test_memory_table",
        a,
        json!({"columns": [{"name": "x", "type": "BLOB; DROP"}]}),
    )
    .await
    .problem(400);
    c.post("/api/v1/tables/bad-name", a, spec)
        .await
        .problem(400);

    // MEMORY-016/039: batches run in one transaction that is rolled back on failure.
    let before = c
        .get("/api/v1/transactions", ro)
        .await
        .json()
        .as_array()
        .unwrap()
        .len();
    let p = c
        .post("/api/v1/batch", Some(RW), json!({"statements": ["CREATE TABLE t1 (a INT)", "INSERT INTO t1 VALUES (1)", "SELECT * FROM t1", "UPDATE t1 SET a = 2", "DELETE FROM t1"]}))
        .await
        .problem(403);
    assert_eq!(p["failed_index"], 0, "DDL needs the admin role");
    assert_eq!(p["transaction_status"], "rolled_back");
    assert_eq!(
        c.get("/api/v1/transactions", ro)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        before
    );
    c.post("/api/v1/batch", Some(RW), json!({"statements": []}))
        .await
        .problem(400);
    let v = c
        .post(
            "/api/v1/batch",
            Some(RW),
            json!({"statements": ["SELECT 1"], "transaction": false}),
        )
        .await;
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["results"][0]["result"]["rows"], json!([[1]]));

    // MEMORY-017/026: begin; the transaction's memory context is a child of the session's.
    let t = c
        .post(
            "/api/v1/transactions",
            Some(RW),
            json!({"isolation_level": "SERIALIZABLE"}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    let t = t.json();
    let id = t["transaction_id"].as_u64().unwrap();
    assert_eq!(t["isolation_level"], "SERIALIZABLE");
    assert_eq!(t["status"], "active");
    let now = server::api::http::unix_now();
    assert!(t["started_at"].as_u64().unwrap().abs_diff(now) <= 5);
    let t2 = c
        .post("/api/v1/transactions", Some(RW), json!({}))
        .await
        .json();
    let id2 = t2["transaction_id"].as_u64().unwrap();
    assert_eq!(id2, id + 1);
    // Transactions run one at a time: whatever was asked, they are serializable.
    assert_eq!(t2["isolation_level"], "SERIALIZABLE");
    let ctxs = c.get("/api/v1/memory/contexts", ro).await.json();
    let list = context_ids(&ctxs);
    let ctx_id = t["memory"]["context_id"].as_u64().unwrap();
    let (_, name, parent) = list
        .iter()
        .find(|(i, _, _)| *i == ctx_id)
        .expect("txn context listed")
        .clone();
    assert_eq!(name, format!("txn:{id}"));
    let (_, pname, _) = list.iter().find(|(i, _, _)| Some(*i) == parent).unwrap();
    assert!(pname.starts_with("session:"), "{pname}");

    // MEMORY-027: commit drops the context; a second commit is a conflict.
    let r = c
        .post(
            &format!("/api/v1/transactions/{id}/commit"),
            Some(RW),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["transaction_id"], id);
    assert_eq!(v["status"], "committed");
    let list = context_ids(&c.get("/api/v1/memory/contexts", ro).await.json());
    assert!(
        !list.iter().any(|(i, _, _)| *i == ctx_id),
        "context gone after commit"
    );
    c.post(
        &format!("/api/v1/transactions/{id}/commit"),
        Some(RW),
        json!({}),
    )
    .await
    .problem(409);
    c.post(
        &format!("/api/v1/transactions/{id}/commit"),
        Some(ADMIN),
        json!({}),
    )
    .await
    .problem(409);

    // MEMORY-028: the seed's id is not a transaction; a real one rolls back.
    let p = c
        .post(
            "/api/v1/transactions/test_txn_2/rollback",
            Some(RW),
            json!({}),
        )
        .await
        .problem(404);
    assert_eq!(p["transaction_id"], "test_txn_2");
    c.post("/api/v1/transactions/424242/rollback", Some(RW), json!({}))
        .await
        .problem(404);
    let r = c
        .post(
            &format!("/api/v1/transactions/{id2}/rollback"),
            Some(RW),
            json!({}),
        )
        .await
        .json();
    assert_eq!(r["status"], "rolled_back");
    let perf = c.get("/api/v1/stats/performance", ro).await.json();
    assert!(
        perf["transactions_per_second"].as_f64().unwrap() > 0.0,
        "{perf}"
    );

    // MEMORY-018..020, 029, 030: GraphQL.
    assert_eq!(
        c.gql(RO, "{ schemas { name } }").await,
        json!({"data": {"schemas": [{"name": "public"}]}})
    );
    assert_eq!(
        c.gql(RO, "{ tables(limit: 10) { name rowCount } }").await,
        json!({"data": {"tables": [{"name": "test_memory_table", "rowCount": "0"}]}})
    );
    let v = c.gql(RO, "{ executeSql(sql: \"SELECT 1 as num\") }").await;
    assert_eq!(gql_code(&v), "PERMISSION_DENIED", "{v}");
    let v = c
        .gql(ADMIN, "{ executeSql(sql: \"SELECT 1 as num\") }")
        .await;
    assert_eq!(v["data"]["executeSql"]["rows"], json!([[1]]), "{v}");
    let v = c.gql(RO, "{ count(table: \"test_table\") }").await;
    assert_eq!(gql_code(&v), "NOT_FOUND", "{v}");
    let v = c.gql(RO, "{ explain(table: \"test_memory_table\") }").await;
    assert!(
        v["data"]["explain"]
            .as_str()
            .unwrap()
            .contains("test_memory_table"),
        "{v}"
    );
    let v = c.gql(RO, "{ count(table: \"x; DROP TABLE y\") }").await;
    assert_eq!(gql_code(&v), "BAD_USER_INPUT", "{v}");
    let v = c
        .gql(RO, "mutation { beginTransaction { transactionId } }")
        .await;
    assert_eq!(gql_code(&v), "PERMISSION_DENIED", "{v}");
    let v = c.gql(RW, "mutation { beginTransaction(isolationLevel: REPEATABLE_READ) { transactionId status isolationLevel } }").await;
    let tid = v["data"]["beginTransaction"]["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["data"]["beginTransaction"]["status"], "ACTIVE");
    let v = c
        .gql(
            RW,
            &format!("mutation {{ commitTransaction(id: \"{tid}\") {{ status }} }}"),
        )
        .await;
    assert_eq!(v["data"]["commitTransaction"]["status"], "COMMITTED", "{v}");
    let v = c.gql(RW, "mutation { insertOne(table: \"t\", data: {a: 1}) { __typename ... on MutationError { code } } }").await;
    assert_eq!(v["data"]["insertOne"]["code"], "NOT_FOUND", "{v}");
    let v = c.gql(RO, "{ memoryStats { rssBytes inUseBytes fragmentationRatio pressureLevel contexts { name } } }").await;
    assert!(
        v["data"]["memoryStats"]["rssBytes"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(v["data"]["memoryStats"]["pressureLevel"], "normal");

    // MEMORY-031..034: a single node, truthfully.
    let v = c.get("/api/v1/cluster/nodes", ro).await.json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["node_id"], "node-local");
    assert_eq!(v[0]["role"], "leader");
    assert_eq!(v[0]["status"], "healthy");
    assert!(v[0]["uptime_seconds"].is_u64());
    assert_eq!(
        c.get("/api/v1/cluster/topology", ro).await.json()["node_count"],
        1
    );
    assert_eq!(
        c.get("/api/v1/cluster/replication", ro).await.json(),
        json!({"primary_node": "node-local", "replicas": [], "replication_lag_ms": null, "sync_state": "single_node"})
    );
    assert_eq!(
        c.get("/api/v1/cluster/config", ro).await.json()["replication_factor"],
        1
    );

    // MEMORY-035: alerts (none without pressure).
    let v = c.get("/api/v1/alerts", ro).await.json();
    assert!(v["alerts"].is_array());
    assert!(v["active_count"].is_u64());
    c.get("/api/v1/alerts?state=bogus", ro).await.problem(400);

    // MEMORY-036: the log ring holds the server's records (admin only).
    let v = c.get("/api/v1/logs?level=info&limit=500", a).await.json();
    let msgs: Vec<&str> = v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains(&format!("transaction {id} committed"))),
        "{msgs:?}"
    );
    assert!(v["capacity"].as_u64().unwrap() >= 16);
    let dbg = c.get("/api/v1/logs?level=debug&limit=5", a).await.json();
    assert!(
        dbg["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["target"] == "http")
    );
    c.get("/api/v1/logs", ro).await.problem(403);
    c.get("/api/v1/logs?level=loud", a).await.problem(400);

    // MEMORY-040: the running configuration.
    let v = c.get("/api/v1/admin/config", a).await.json();
    assert_eq!(v["settings"]["buffer_pool_size"], 1024);
    assert_eq!(v["settings"]["max_connections"], 1000);
    assert!(v["settings"]["wal_enabled"].is_boolean());
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        !v.to_string().contains(ADMIN),
        "no secrets in the configuration"
    );

    srv.stop().await;
}
