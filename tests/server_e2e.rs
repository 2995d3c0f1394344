//! End to end: the example server on an ephemeral port, driven over real TCP
//! connections — the seed's 40 checks, the memory endpoints, bad input and
//! auth, and a pressure run with real resident memory.
//!
//! The server's modules are compiled in (`#[path]`), so their unit tests run
//! here too, and this process is the server: its RSS is what
//! `/api/v1/stats/performance` must report.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustydb_memory::{DebugAlloc, MemoryManager, RustyAlloc};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "../examples/rustydb_server/server.rs"]
mod server;

#[path = "common/server.rs"]
mod harness;

use harness::Client;

const ADMIN: &str = "admin-token-e2e-0123456789";
const RW: &str = "readwrite-token-e2e-0123456789";
const RO: &str = "readonly-token-e2e-0123456789";

fn config() -> server::config::Config {
    let tokens = harness::Tokens {
        admin: ADMIN,
        readwrite: RW,
        readonly: RO,
    };
    server::config::Config {
        max_body_bytes: 64 << 10,
        ..harness::config(&harness::temp_dir("e2e", "run"), tokens)
    }
}

async fn start(cfg: server::config::Config, mm: &'static MemoryManager) -> server::Running {
    harness::start(cfg, mm, Some(&GLOBAL)).await
}

fn vm_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

fn gql_code(v: &Value) -> String {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn metric(v: &Value, name: &str) -> f64 {
    v["metrics"][name]["value"].as_f64().unwrap()
}

fn context_ids(v: &Value) -> Vec<(u64, String, Option<u64>)> {
    v["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
                c["parent_id"].as_u64(),
            )
        })
        .collect()
}

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
    let full = include_str!("server_introspection.graphql");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_auth() {
    let srv = start(config(), MemoryManager::global()).await;
    let mut c = Client::connect(srv.addr).await;
    let ro = Some(RO);

    // Auth: none, wrong, insufficient.
    let r = c.get("/api/v1/metrics", None).await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), r#"Bearer realm="rustydb""#);
    let r = c
        .get("/api/v1/metrics", Some("not-a-real-token-at-all"))
        .await;
    r.problem(401);
    assert!(r.header("www-authenticate").contains("invalid_token"));
    let r = c.raw("GET", "/api/v1/metrics", None, None, vec![]).await;
    r.problem(401);
    let r = c.post("/api/v1/transactions", ro, json!({})).await;
    let p = r.problem(403);
    assert_eq!(p["required_role"], "readwrite");
    c.post("/graphql", None, json!({"query": "{ schemas { name } }"}))
        .await
        .problem(401);
    c.get("/api/v1/admin/config", Some(RW)).await.problem(403);
    // A transaction belongs to its owner (admins may finish any).
    let t = c
        .post("/api/v1/transactions", Some(RW), json!({}))
        .await
        .json()["transaction_id"]
        .as_u64()
        .unwrap();
    let m = c
        .post(
            "/api/v1/admin/tokens",
            Some(ADMIN),
            json!({"role": "readwrite"}),
        )
        .await
        .json();
    let other = m["token"].as_str().unwrap().to_string();
    c.post(
        &format!("/api/v1/transactions/{t}/commit"),
        Some(other.as_str()),
        json!({}),
    )
    .await
    .problem(403);
    assert_eq!(
        c.post(
            &format!("/api/v1/transactions/{t}/commit"),
            Some(ADMIN),
            json!({})
        )
        .await
        .status,
        200
    );

    // Malformed JSON, wrong shapes, empty bodies.
    let r = c
        .raw(
            "POST",
            "/api/v1/transactions",
            Some(RW),
            Some("application/json"),
            b"{bad json".to_vec(),
        )
        .await;
    let p = r.problem(400);
    assert_eq!(p["type"], "urn:rustydb:problem:malformed-json");
    c.raw(
        "POST",
        "/api/v1/query",
        Some(RW),
        Some("application/json"),
        b"[1,2]".to_vec(),
    )
    .await
    .problem(400);
    c.raw(
        "POST",
        "/api/v1/query",
        Some(RW),
        Some("application/json"),
        vec![],
    )
    .await
    .problem(400);
    c.post(
        "/api/v1/transactions",
        Some(RW),
        json!({"isolation_level": "CHAOTIC"}),
    )
    .await
    .problem(400);
    c.post(
        "/api/v1/transactions",
        Some(RW),
        json!({"memory_limit_bytes": 1}),
    )
    .await
    .problem(400);
    c.raw(
        "POST",
        "/graphql",
        Some(RW),
        Some("application/json"),
        b"{\"query\": 12}".to_vec(),
    )
    .await
    .problem(400);
    c.raw(
        "POST",
        "/api/v1/query",
        Some(RW),
        Some("text/plain"),
        b"SELECT 1".to_vec(),
    )
    .await
    .problem(415);

    // Unknown route, wrong method.
    c.get("/api/v1/nothing/here", ro).await.problem(404);
    c.get("/", None).await;
    let r = c.raw("DELETE", "/api/v1/metrics", ro, None, vec![]).await;
    r.problem(405);
    assert_eq!(r.header("allow"), "GET, HEAD");
    let r = c
        .raw("PATCH", "/api/v1/transactions", Some(RW), None, vec![])
        .await;
    r.problem(405);
    assert_eq!(r.header("allow"), "GET, POST, HEAD");

    // Body over the limit (64 KiB here).
    let big = vec![b' '; 100 << 10];
    let r = c
        .raw(
            "POST",
            "/api/v1/query",
            Some(RW),
            Some("application/json"),
            big,
        )
        .await;
    r.problem(413);
    assert_eq!(r.header("connection"), "close");
    let mut c = Client::connect(srv.addr).await;

    // Bad parameters.
    c.get("/api/v1/connections?page=0", ro).await.problem(400);
    c.get("/api/v1/connections?page_size=abc", ro)
        .await
        .problem(400);
    c.get("/api/v1/connections?page_size=100000", ro)
        .await
        .problem(400);
    c.get("/api/v1/logs?limit=%zz", Some(ADMIN))
        .await
        .problem(400);
    let r = c
        .raw("GET", "/api/v1/stats/sessions", Some(RW), None, vec![])
        .await;
    assert_eq!(r.status, 200);
    let mut s = Client::connect(srv.addr).await;
    let mut b = hyper::Request::builder()
        .uri("/api/v1/metrics")
        .header("authorization", format!("Bearer {RO}"));
    b = b.header("x-session-id", "bad id with spaces");
    s.send.ready().await.unwrap();
    let resp = s
        .send
        .send_request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // GraphQL: limits, GET without mutations, syntax errors.
    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(14),
        "} ".repeat(14)
    );
    let v = c.gql(RO, &deep).await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("too deep"),
        "{v}"
    );
    let v = c.gql(RO, "{ schemas { name ").await;
    assert!(v["errors"].is_array());
    let r = c
        .get(
            "/graphql?query=mutation%20%7B%20beginTransaction%20%7B%20status%20%7D%20%7D",
            Some(RW),
        )
        .await;
    r.problem(405);
    let r = c
        .get("/graphql?query=%7B%20schemas%20%7B%20name%20%7D%20%7D", ro)
        .await;
    assert_eq!(r.json()["data"]["schemas"][0]["name"], "public");
    let r = c.get("/graphql", ro).await;
    assert!(r.header("content-type").starts_with("text/html"));

    // A handler panic is a 500 problem; the connection and server live on.
    let r = c.get("/api/v1/__test/panic", None).await;
    let p = r.problem(500);
    assert!(
        !p["detail"].as_str().unwrap().contains("test panic"),
        "no internals leak"
    );
    assert_eq!(c.get("/api/v1/admin/health", None).await.status, 200);
    let m = c.get("/api/v1/metrics", ro).await.json();
    assert!(metric(&m, "handler_panics") >= 1.0);
    assert!(metric(&m, "client_errors") >= 20.0);

    // The socket-less entry point (for the fuzz target) answers the same way.
    let r = server::oneshot(
        &srv.app,
        b"GET",
        b"/api/v1/pools",
        &[(
            b"authorization".to_vec(),
            format!("Bearer {RO}").into_bytes(),
        )],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = server::oneshot(&srv.app, b"G\0T", b"/", &[], b"").await;
    assert_eq!(r.status, 400);
    let r = server::oneshot(&srv.app, b"GET", b"no-slash", &[], b"").await;
    assert_eq!(r.status, 400);
    let r = server::oneshot(
        &srv.app,
        b"POST",
        b"/graphql",
        &[(
            b"authorization".to_vec(),
            format!("Bearer {RO}").into_bytes(),
        )],
        b"{\"query\":\"{ __typename }\"}",
    )
    .await;
    assert_eq!(r.status, 200);

    srv.stop().await;
}

/// The fuzz target's entry point: no socket, its own app and runtime.
#[test]
fn fuzz_entry_point_answers() {
    let auth = |t: &str| {
        vec![(
            b"authorization".to_vec(),
            format!("Bearer {t}").into_bytes(),
        )]
    };
    assert_eq!(
        server::fuzz_request(b"GET", b"/api/v1/admin/health", &[], b"").status,
        200
    );
    assert_eq!(
        server::fuzz_request(b"GET", b"/api/v1/pools", &[], b"").status,
        401
    );
    let ro = auth(server::FUZZ_TOKENS[2].1);
    let r = server::fuzz_request(b"GET", b"/api/v1/pools/default/stats", &ro, b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ad = auth(server::FUZZ_TOKENS[0].1);
    let r = server::fuzz_request(
        b"POST",
        b"/api/v1/memory/ballast",
        &ad,
        br#"{"bytes": 1073741824}"#,
    );
    assert_eq!(r.status, 400, "the fuzz app caps ballast");
    let r = server::fuzz_request(
        b"POST",
        b"/api/v1/transactions",
        &auth(server::FUZZ_TOKENS[1].1),
        b"{}",
    );
    assert_eq!(r.status, 201);
    for (m, t, b) in [
        (
            &b"POST"[..],
            &b"/graphql"[..],
            &b"{\"query\": \"{ __typename }\"}"[..],
        ),
        (b"\xff", b"/", b""),
        (b"GET", b"/%ff%fe", b""),
        (b"PUT", b"/api/v1/memory/debugger", b"{\"level\":\"full\"}"),
    ] {
        let r = server::fuzz_request(m, t, &ad, b);
        assert!((200..600).contains(&r.status));
    }
}

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
