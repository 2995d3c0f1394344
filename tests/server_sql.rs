//! SQL end to end: the example server with its GlueSQL engine over the buffer
//! pool, on an ephemeral port — the seed's SQL cases, restart, transactions
//! and their memory contexts, the per-query memory limit, concurrent
//! clients, GraphQL data fields; and the storage on a 64-page pool directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustydb_memory::{DebugAlloc, MemoryContext, MemoryManager, RustyAlloc};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "../examples/rustydb_server/server.rs"]
mod server;

#[path = "common/server.rs"]
mod harness;

use harness::{Client, Reply};
use server::sql::engine::{Mode, QueryCall, SqlEngine, SqlError};
use server::sql::glue::GlueEngine;

const ADMIN: &str = "admin-token-sql-0123456789";
const RW: &str = "readwrite-token-sql-0123456789";
const RO: &str = "readonly-token-sql-0123456789";

fn temp_dir(tag: &str) -> PathBuf {
    harness::temp_dir("sql", tag)
}

fn config(dir: &Path) -> server::config::Config {
    let tokens = harness::Tokens {
        admin: ADMIN,
        readwrite: RW,
        readonly: RO,
    };
    server::config::Config {
        buffer_pool_pages: 128,
        ..harness::config(dir, tokens)
    }
}

async fn start(cfg: server::config::Config) -> server::Running {
    harness::start(cfg, MemoryManager::global(), Some(&GLOBAL)).await
}

/// The SQL calls these tests make, on the shared client.
trait Sql {
    async fn sql(&mut self, token: &str, sql: &str) -> Reply;
    async fn sql_in(&mut self, token: &str, sql: &str, txn: u64) -> Reply;
    async fn rows(&mut self, token: &str, sql: &str) -> Vec<Value>;
    async fn count(&mut self, table: &str) -> i64;
}

impl Sql for Client {
    async fn sql(&mut self, token: &str, sql: &str) -> Reply {
        self.post("/api/v1/query", token, json!({ "sql": sql }))
            .await
    }

    async fn sql_in(&mut self, token: &str, sql: &str, txn: u64) -> Reply {
        self.post(
            "/api/v1/query",
            token,
            json!({ "sql": sql, "transaction_id": txn }),
        )
        .await
    }

    async fn rows(&mut self, token: &str, sql: &str) -> Vec<Value> {
        let v = self.sql(token, sql).await.ok();
        v["rows"].as_array().unwrap().clone()
    }

    async fn count(&mut self, table: &str) -> i64 {
        let rows = self
            .rows(RO, &format!("SELECT COUNT(*) AS n FROM {table}"))
            .await;
        rows[0][0].as_i64().unwrap()
    }
}

fn context_ids(v: &Value) -> Vec<u64> {
    v["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_sql_cases() {
    let dir = temp_dir("seed");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;

    // SELECT without FROM.
    let v = c.sql(RO, "SELECT 1 as test").await.ok();
    assert_eq!(v["columns"][0]["name"], "test");
    assert_eq!(v["rows"], json!([[1]]));
    assert_eq!(v["statement"], "SELECT");
    assert!(v["memory"]["context_id"].as_u64().unwrap() > 0);

    // VALUES with 10 rows.
    let rows = c
        .rows(
            RO,
            "VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e'),(6,'f'),(7,'g'),(8,'h'),(9,'i'),(10,'j')",
        )
        .await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9], json!([10, "j"]));

    // CROSS JOIN: the product.
    let rows = c
        .rows(
            RO,
            "SELECT * FROM (VALUES (1),(2)) AS a CROSS JOIN (VALUES (3),(4),(5)) AS b",
        )
        .await;
    assert_eq!(rows.len(), 6);

    // REPEAT.
    let rows = c.rows(RO, "SELECT REPEAT('A', 1000) AS s").await;
    assert_eq!(rows[0][0].as_str().unwrap().len(), 1000);
    // The seed's exact text (MEMORY-038): double quotes, no FROM.
    let rows = c.rows(RO, r#"SELECT REPEAT("A", 1000)"#).await;
    assert_eq!(rows[0][0].as_str().unwrap(), "A".repeat(1000));

    // DDL and DML round trip.
    c.sql(
        ADMIN,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)",
    )
    .await
    .ok();
    let v = c
        .sql(
            RW,
            "INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', 17), (3, 'cy', 45)",
        )
        .await
        .ok();
    assert_eq!(v["rows_affected"], 3);
    assert_eq!(v["statement"], "INSERT");
    let v = c
        .sql(RW, "UPDATE users SET age = age + 1 WHERE id = 2")
        .await
        .ok();
    assert_eq!(v["rows_affected"], 1);
    let rows = c.rows(RO, "SELECT name, age FROM users WHERE id = 2").await;
    assert_eq!(rows, vec![json!(["bob", 18])]);
    let v = c.sql(RW, "DELETE FROM users WHERE age > 40").await.ok();
    assert_eq!(v["rows_affected"], 1);
    let rows = c.rows(RO, "SELECT id FROM users ORDER BY id").await;
    assert_eq!(rows, vec![json!([1]), json!([2])]);
    c.sql(ADMIN, "CREATE TABLE other (x INTEGER)").await.ok();
    c.sql(RW, "INSERT INTO other VALUES (10), (20), (30)")
        .await
        .ok();
    let rows = c
        .rows(RO, "SELECT COUNT(*) FROM users CROSS JOIN other")
        .await;
    assert_eq!(rows[0][0], 6);
    let rows = c.rows(RO, "SELECT COUNT(*) FROM users, other").await;
    assert_eq!(rows[0][0], 6);

    // Long strings: 1000 characters in a row; 20 000 span several pages.
    c.sql(
        ADMIN,
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)",
    )
    .await
    .ok();
    c.sql(RW, "INSERT INTO docs VALUES (1, REPEAT('x', 1000))")
        .await
        .ok();
    c.sql(RW, "INSERT INTO docs VALUES (2, REPEAT('y', 20000))")
        .await
        .ok();
    let rows = c
        .rows(RO, "SELECT id, LENGTH(body) FROM docs ORDER BY id")
        .await;
    assert_eq!(rows, vec![json!([1, 1000]), json!([2, 20000])]);
    c.sql(RW, "UPDATE docs SET body = 'short' WHERE id = 2")
        .await
        .ok();
    let rows = c.rows(RO, "SELECT body FROM docs WHERE id = 2").await;
    assert_eq!(rows, vec![json!(["short"])]);

    // UNION dedups, UNION ALL does not; over REST and GraphQL.
    let rows = c
        .rows(RO, "SELECT 1 AS a UNION SELECT 1 AS a UNION SELECT 2 AS a")
        .await;
    assert_eq!(rows, vec![json!([1]), json!([2])]);
    let rows = c
        .rows(RO, "SELECT id FROM users UNION ALL SELECT id FROM users")
        .await;
    assert_eq!(rows.len(), 4);
    let v = c
        .gql(
            RO,
            r#"{ executeUnion(queries: ["SELECT id FROM users", "SELECT x FROM other"], all: false) }"#,
        )
        .await;
    assert_eq!(
        v["data"]["executeUnion"]["rows"].as_array().unwrap().len(),
        5,
        "{v}"
    );

    // EXPLAIN: the plan as text.
    let rows = c
        .rows(
            RO,
            "EXPLAIN SELECT * FROM users CROSS JOIN other WHERE users.id = 1",
        )
        .await;
    let text: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert!(
        text.iter().any(|l| l.contains("Seq scan on other")),
        "{text:?}"
    );
    assert!(text.iter().any(|l| l.contains("cross product")), "{text:?}");
    let rows = c
        .rows(RO, "EXPLAIN SELECT name FROM users WHERE id = 2")
        .await;
    assert!(
        rows.iter().any(|r| r[0]
            .as_str()
            .unwrap()
            .contains("Primary key lookup on users")),
        "{rows:?}"
    );
    let v = c.gql(RO, r#"{ explain(table: "users") }"#).await;
    assert!(
        v["data"]["explain"].as_str().unwrap().contains("users"),
        "{v}"
    );

    // Errors: the parser's message (400), a missing table (404), roles (403).
    let p = c.sql(RO, "SELEC 1").await.problem(400);
    assert!(p["detail"].as_str().unwrap().contains("SELEC"), "{p}");
    c.sql(RO, "SELECT * FROM").await.problem(400);
    let p = c.sql(RO, "SELECT * FROM nowhere").await.problem(404);
    assert!(p["detail"].as_str().unwrap().contains("nowhere"), "{p}");
    c.sql(RO, "INSERT INTO users VALUES (9, 'z', 1)")
        .await
        .problem(403);
    c.sql(RW, "DROP TABLE users").await.problem(403);
    c.sql(RW, "INSERT INTO users VALUES (1, 'dup', 1)")
        .await
        .problem(409);
    c.sql(RO, "BEGIN").await.problem(403);
    assert_eq!(c.count("users").await, 2);

    // The catalog over REST and GraphQL.
    let v = c.get("/api/v1/tables/users", RO).await.ok();
    assert_eq!(v["row_count"], 2, "{v}");
    let v = c.gql(RO, "{ tables(limit: 10) { name rowCount } }").await;
    let names: Vec<&str> = v["data"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs", "other", "users"], "{v}");

    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_data_fields_and_rest_tables() {
    let dir = temp_dir("gql");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;

    let spec = json!({"columns": [
        {"name": "id", "type": "INTEGER", "nullable": false, "primary_key": true},
        {"name": "name", "type": "TEXT"},
        {"name": "score", "type": "INTEGER"}
    ]});
    c.post("/api/v1/tables/people", ADMIN, spec.clone())
        .await
        .ok();
    c.post("/api/v1/tables/people", ADMIN, spec)
        .await
        .problem(409);
    let v = c
        .gql(
            RW,
            r#"mutation { insertMany(table: "people", rows: [{id: 1, name: "ann", score: 5}, {id: 2, name: "bob", score: 7}, {id: 3, name: "cyd", score: 9}]) { __typename } }"#,
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    let v = c
        .gql(
            RO,
            r#"{ queryTable(table: "people", where: {condition: {column: "score", op: GT, value: 5}}, orderBy: [{column: "id", direction: DESC}], limit: 1) { rows rowCount } }"#,
        )
        .await;
    assert_eq!(v["data"]["queryTable"]["rowCount"], 1, "{v}");
    assert_eq!(v["data"]["queryTable"]["rows"][0]["name"], "cyd", "{v}");
    let v = c.gql(RO, r#"{ count(table: "people") }"#).await;
    assert_eq!(v["data"]["count"], "3", "{v}");
    let v = c
        .gql(
            RO,
            r#"{ aggregate(table: "people", aggregates: [{function: SUM, column: "score"}]) { values } }"#,
        )
        .await;
    assert_eq!(v["data"]["aggregate"]["values"]["sum_score"], 21, "{v}");
    let v = c
        .gql(RO, r#"{ row(table: "people", id: "2") { data } }"#)
        .await;
    assert_eq!(v["data"]["row"]["data"]["name"], "bob", "{v}");
    let v = c.gql(RO, r#"{ search(query: "an") { totalCount } }"#).await;
    assert_eq!(v["data"]["search"]["totalCount"], 1, "{v}");
    let v = c.gql(RO, r#"{ tables { name rowCount } }"#).await;
    assert_eq!(v["data"]["tables"][0]["rowCount"], "3", "{v}");
    let v = c
        .gql(
            ADMIN,
            r#"{ executeSql(sql: "SELECT name FROM people WHERE id = 1") }"#,
        )
        .await;
    assert_eq!(v["data"]["executeSql"]["rows"], json!([["ann"]]), "{v}");

    // Relay connection, row mutations, table mutations.
    let v = c
        .gql(
            RO,
            r#"{ queryTableConnection(table: "people", orderBy: [{column: "id"}], first: 2, after: "0") { totalCount pageInfo { hasNextPage hasPreviousPage } edges { node { id data } } } }"#,
        )
        .await;
    let conn = &v["data"]["queryTableConnection"];
    assert_eq!(conn["totalCount"], "3", "{v}");
    assert_eq!(conn["edges"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(conn["edges"][0]["node"]["data"]["name"], "bob", "{v}");
    assert_eq!(conn["pageInfo"]["hasPreviousPage"], true, "{v}");
    assert_eq!(conn["pageInfo"]["hasNextPage"], false, "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { updateOne(table: "people", id: "1", data: {score: 50}) { ... on MutationSuccess { affectedRows statement } } }"#,
        )
        .await;
    assert_eq!(v["data"]["updateOne"]["affectedRows"], "1", "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { insertOne(table: "people", data: {id: 9, name: "zed", score: 0}) { ... on MutationSuccess { affectedRows } } }"#,
        )
        .await;
    assert_eq!(v["data"]["insertOne"]["affectedRows"], "1", "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { deleteOne(table: "people", id: "9") { ... on MutationSuccess { affectedRows } } }"#,
        )
        .await;
    assert_eq!(v["data"]["deleteOne"]["affectedRows"], "1", "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { insertOne(table: "people", data: {id: 1, name: "again"}) { ... on MutationError { code } } }"#,
        )
        .await;
    assert_eq!(v["data"]["insertOne"]["code"], "CONFLICT", "{v}");
    let v = c
        .gql(
            ADMIN,
            r#"mutation { createTable(name: "tags", columns: [{name: "tag", dataType: "TEXT"}]) { ... on MutationSuccess { statement } } }"#,
        )
        .await;
    assert_eq!(v["data"]["createTable"]["statement"], "CREATE TABLE", "{v}");
    let v = c
        .gql(
            ADMIN,
            r#"mutation { dropTable(name: "tags") { ... on MutationSuccess { statement } } }"#,
        )
        .await;
    assert_eq!(v["data"]["dropTable"]["statement"], "DROP TABLE", "{v}");
    let rows = c.rows(RO, "SELECT score FROM people WHERE id = 1").await;
    assert_eq!(rows, vec![json!([50])]);

    // A batch is one transaction: a failing statement rolls all back.
    let p = c
        .post(
            "/api/v1/batch",
            RW,
            json!({"statements": ["INSERT INTO people VALUES (4, 'dee', 1)", "INSERT INTO nowhere VALUES (1)"]}),
        )
        .await
        .problem(404);
    assert_eq!(p["transaction_status"], "rolled_back", "{p}");
    assert_eq!(c.count("people").await, 3);
    let v = c
        .post(
            "/api/v1/batch",
            RW,
            json!({"statements": ["INSERT INTO people VALUES (4, 'dee', 1)", "SELECT COUNT(*) FROM people"]}),
        )
        .await
        .ok();
    assert_eq!(v["results"][1]["result"]["rows"], json!([[4]]), "{v}");
    assert_eq!(c.count("people").await, 4);

    c.req("DELETE", "/api/v1/tables/people", ADMIN, None)
        .await
        .ok();
    c.sql(RO, "SELECT * FROM people").await.problem(404);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let dir = temp_dir("restart");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(
        ADMIN,
        "CREATE TABLE kept (id INTEGER PRIMARY KEY, note TEXT)",
    )
    .await
    .ok();
    let values: Vec<String> = (0..500)
        .map(|i| format!("({i}, 'note number {i}')"))
        .collect();
    c.sql(
        RW,
        &format!("INSERT INTO kept VALUES {}", values.join(", ")),
    )
    .await
    .ok();
    c.sql(RW, "INSERT INTO kept VALUES (1000, REPEAT('z', 9000))")
        .await
        .ok();
    c.sql(RW, "DELETE FROM kept WHERE id < 100").await.ok();
    drop(c);
    srv.stop().await;

    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    assert_eq!(c.count("kept").await, 401);
    let rows = c.rows(RO, "SELECT note FROM kept WHERE id = 499").await;
    assert_eq!(rows, vec![json!(["note number 499"])]);
    let rows = c
        .rows(RO, "SELECT LENGTH(note) FROM kept WHERE id = 1000")
        .await;
    assert_eq!(rows, vec![json!([9000])]);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_and_commit_keeps() {
    let dir = temp_dir("txn");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(
        ADMIN,
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)",
    )
    .await
    .ok();
    c.sql(RW, "INSERT INTO acct VALUES (1, 100), (2, 50)")
        .await
        .ok();

    for commit in [false, true] {
        let t = c.post("/api/v1/transactions", RW, json!({})).await.ok();
        let id = t["transaction_id"].as_u64().unwrap();
        assert_eq!(t["isolation_level"], "SERIALIZABLE", "{t}");
        let ctx = t["memory"]["context_id"].as_u64().unwrap();
        c.sql_in(RW, "UPDATE acct SET bal = bal - 30 WHERE id = 1", id)
            .await
            .ok();
        c.sql_in(RW, "DELETE FROM acct WHERE id = 2", id).await.ok();
        c.sql_in(RW, "INSERT INTO acct VALUES (3, 7)", id)
            .await
            .ok();
        // A failing statement does not end the transaction.
        c.sql_in(RW, "INSERT INTO acct VALUES (3, 8)", id)
            .await
            .problem(409);
        let v = c
            .sql_in(RW, "SELECT id, bal FROM acct ORDER BY id", id)
            .await
            .ok();
        assert_eq!(v["rows"], json!([[1, 70], [3, 7]]));
        let list = context_ids(&c.get("/api/v1/memory/contexts", RO).await.ok());
        assert!(list.contains(&ctx));
        let what = if commit { "commit" } else { "rollback" };
        c.post(&format!("/api/v1/transactions/{id}/{what}"), RW, json!({}))
            .await
            .ok();
        let list = context_ids(&c.get("/api/v1/memory/contexts", RO).await.ok());
        assert!(!list.contains(&ctx), "context gone after {what}");
        let rows = c.rows(RO, "SELECT id, bal FROM acct ORDER BY id").await;
        if commit {
            assert_eq!(rows, vec![json!([1, 70]), json!([3, 7])]);
        } else {
            assert_eq!(rows, vec![json!([1, 100]), json!([2, 50])]);
        }
    }

    // DDL rolls back too.
    let t = c.post("/api/v1/transactions", ADMIN, json!({})).await.ok();
    let id = t["transaction_id"].as_u64().unwrap();
    c.sql_in(ADMIN, "DROP TABLE acct", id).await.ok();
    c.sql_in(ADMIN, "CREATE TABLE fresh (a INTEGER)", id)
        .await
        .ok();
    c.post(
        &format!("/api/v1/transactions/{id}/rollback"),
        ADMIN,
        json!({}),
    )
    .await
    .ok();
    assert_eq!(c.count("acct").await, 2);
    c.sql(RO, "SELECT * FROM fresh").await.problem(404);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A transaction holds the writer lock between its statements; readers on
/// other connections are answered meanwhile, from the committed state, and
/// see the transaction's rows once its commit is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_write_transaction_does_not_block_readers() {
    let dir = temp_dir("readers");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(
        ADMIN,
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)",
    )
    .await
    .ok();
    let vals: Vec<String> = (1..=300).map(|i| format!("({i}, 100)")).collect();
    c.sql(RW, &format!("INSERT INTO acct VALUES {}", vals.join(", ")))
        .await
        .ok();
    let t = c.post("/api/v1/transactions", RW, json!({})).await.ok();
    let id = t["transaction_id"].as_u64().unwrap();
    c.sql_in(RW, "UPDATE acct SET bal = bal - 60 WHERE id <= 150", id)
        .await
        .ok();
    c.sql_in(RW, "DELETE FROM acct WHERE id = 300", id)
        .await
        .ok();
    c.sql_in(RW, "INSERT INTO acct VALUES (301, 7)", id)
        .await
        .ok();
    // The writer's view.
    let v = c
        .sql_in(RW, "SELECT COUNT(*), SUM(bal) FROM acct", id)
        .await
        .ok();
    assert_eq!(v["rows"], json!([[300, 300 * 100 - 150 * 60 - 100 + 7]]));
    let p = c.get("/api/v1/stats/performance", RO).await.ok();
    assert_eq!(p["locks_held"], 1, "{p}");

    // Readers, while the transaction is open: answered (a reader that
    // waited would get a 409 after the lock's 10 s), with the committed rows.
    let mut r = Client::connect(srv.addr).await;
    let t0 = std::time::Instant::now();
    assert_eq!(
        r.rows(RO, "SELECT COUNT(*), SUM(bal) FROM acct").await,
        vec![json!([300, 30_000])]
    );
    assert_eq!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 1").await,
        vec![json!([100])]
    );
    assert_eq!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 300").await,
        vec![json!([100])]
    );
    assert!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 301")
            .await
            .is_empty()
    );
    // A transaction that only reads sees one state throughout (opening one
    // needs the readwrite role, like every POST).
    let rt = r.post("/api/v1/transactions", RW, json!({})).await.ok();
    let rid = rt["transaction_id"].as_u64().unwrap();
    let first = r.sql_in(RW, "SELECT SUM(bal) FROM acct", rid).await.ok();
    assert_eq!(first["rows"], json!([[30_000]]));
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );

    c.post(&format!("/api/v1/transactions/{id}/commit"), RW, json!({}))
        .await
        .ok();
    let after = 300 * 100 - 150 * 60 - 100 + 7;
    assert_eq!(
        r.rows(RO, "SELECT COUNT(*), SUM(bal) FROM acct").await,
        vec![json!([300, after])]
    );
    assert_eq!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 301").await,
        vec![json!([7])]
    );
    // The read-only transaction still sees its snapshot…
    let again = r.sql_in(RW, "SELECT SUM(bal) FROM acct", rid).await.ok();
    assert_eq!(again["rows"], first["rows"]);
    r.post(&format!("/api/v1/transactions/{rid}/commit"), RW, json!({}))
        .await
        .ok();
    // …and a transaction that read before that commit cannot write after
    // it: its reads are stale (409, roll back and retry).
    let wt = r.post("/api/v1/transactions", RW, json!({})).await.ok();
    let wid = wt["transaction_id"].as_u64().unwrap();
    r.sql_in(RW, "SELECT bal FROM acct WHERE id = 1", wid)
        .await
        .ok();
    c.sql(RW, "UPDATE acct SET bal = 1 WHERE id = 2").await.ok();
    r.sql_in(RW, "UPDATE acct SET bal = bal + 1 WHERE id = 1", wid)
        .await
        .problem(409);
    r.post(
        &format!("/api/v1/transactions/{wid}/rollback"),
        RW,
        json!({}),
    )
    .await
    .ok();
    let p = c.get("/api/v1/stats/performance", RO).await.ok();
    assert_eq!(p["locks_held"], 0, "{p}");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_written_as_sql() {
    let dir = temp_dir("sqltxn");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(ADMIN, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .ok();
    // BEGIN answers a transaction id and its isolation; ROLLBACK undoes.
    let b = c
        .sql(RW, "START TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .ok();
    assert_eq!(b["statement"], "BEGIN", "{b}");
    assert_eq!(b["isolation_level"], "SERIALIZABLE", "{b}");
    let id = b["transaction_id"].as_u64().unwrap();
    c.sql_in(RW, "INSERT INTO t VALUES (1)", id).await.ok();
    let r = c.sql_in(RW, "ROLLBACK", id).await.ok();
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert_eq!(c.count("t").await, 0);
    // BEGIN; … COMMIT keeps.
    let id = c.sql(RW, "BEGIN").await.ok()["transaction_id"]
        .as_u64()
        .unwrap();
    c.sql_in(RW, "INSERT INTO t VALUES (2)", id).await.ok();
    c.sql_in(RW, "COMMIT;", id).await.ok();
    assert_eq!(c.count("t").await, 1);
    // Misuse: COMMIT without an id, BEGIN inside a transaction, an unknown id.
    c.sql(RW, "COMMIT").await.problem(400);
    let id = c.sql(RW, "BEGIN").await.ok()["transaction_id"]
        .as_u64()
        .unwrap();
    c.sql_in(RW, "BEGIN", id).await.problem(409);
    c.sql_in(RW, "ROLLBACK", id).await.ok();
    c.sql_in(RW, "COMMIT", 999_999).await.problem(404);
    // A batch written as BEGIN; …; COMMIT is one transaction.
    let v = c
        .post(
            "/api/v1/batch",
            RW,
            json!({"statements": ["BEGIN", "INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)", "COMMIT"]}),
        )
        .await
        .ok();
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(c.count("t").await, 3);
    c.post(
        "/api/v1/batch",
        RW,
        json!({"statements": ["INSERT INTO t VALUES (5)", "ROLLBACK"]}),
    )
    .await
    .problem(400);
    assert_eq!(c.count("t").await, 3);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_memory_limit_fires_and_the_server_goes_on() {
    let dir = temp_dir("limit");
    let mut cfg = config(&dir);
    cfg.query_memory_limit = 1 << 20;
    let srv = start(cfg).await;
    let mut c = Client::connect(srv.addr).await;
    let p = c
        .sql(RO, "SELECT REPEAT('A', 5000000) AS big")
        .await
        .problem(413);
    assert_eq!(p["type"], "urn:rustydb:problem:query-memory-limit");
    assert_eq!(p["limit_bytes"], 1 << 20);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("--query-memory-limit"),
        "{p}"
    );
    // Refused before GlueSQL builds it: a string far over the limit, a
    // generated cross join.
    let p = c
        .sql(RO, "SELECT REPEAT('A', 100000000000) AS huge")
        .await
        .problem(413);
    assert_eq!(p["requested_bytes"], 100_000_000_000u64, "{p}");
    c.sql(
        RO,
        "SELECT COUNT(*) FROM SERIES(100000) a CROSS JOIN SERIES(100000) b",
    )
    .await
    .problem(413);
    // A cross join too large for the limit stops in the scan.
    c.sql(ADMIN, "CREATE TABLE wide (id INTEGER, pad TEXT)")
        .await
        .ok();
    let values: Vec<String> = (0..200)
        .map(|i| format!("({i}, REPEAT('p', 200))"))
        .collect();
    c.sql(
        RW,
        &format!("INSERT INTO wide VALUES {}", values.join(", ")),
    )
    .await
    .ok();
    c.sql(RO, "SELECT COUNT(*) FROM wide a CROSS JOIN wide b")
        .await
        .problem(413);
    let v = c.sql(RO, "SELECT 1 AS ok").await.ok();
    assert_eq!(v["rows"], json!([[1]]));
    assert_eq!(c.count("wide").await, 200);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_clients() {
    let dir = temp_dir("conc");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(ADMIN, "CREATE TABLE hits (client INTEGER, n INTEGER)")
        .await
        .ok();
    let mut tasks = Vec::new();
    for k in 0..8 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for n in 0..25 {
                c.sql(RW, &format!("INSERT INTO hits VALUES ({k}, {n})"))
                    .await
                    .ok();
                let rows = c
                    .rows(RO, &format!("SELECT COUNT(*) FROM hits WHERE client = {k}"))
                    .await;
                assert_eq!(rows[0][0], n + 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.count("hits").await, 200);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Engine options: `frames` frames, the data file in the directory or `disk`.
fn opts(
    frames: usize,
    disk: Option<Arc<dyn rustydb_memory::buffer_pool::DiskManager>>,
) -> server::sql::glue::DbOptions {
    server::sql::glue::DbOptions {
        frames,
        disk,
        ..Default::default()
    }
}

fn run(
    e: &GlueEngine,
    ctx: &MemoryContext<'static>,
    sql: &str,
) -> server::sql::engine::QueryOutput {
    e.execute(&QueryCall {
        sql,
        txn: None,
        mode: Mode::Admin,
        ctx,
    })
    .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

#[test]
fn a_64_page_pool_evicts_writes_back_and_reads_every_row() {
    let dir = temp_dir("pool");
    let open = || GlueEngine::open_with(&dir, opts(64, None), None).unwrap();
    let ctx = MemoryContext::root("test");
    let e = open();
    run(
        &e,
        &ctx,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)",
    );
    // Half the rows in one transaction: more dirty pages than frames, so
    // dirty pages are written back on eviction before the commit's flush.
    e.begin(1, server::sql::engine::IsolationLevel::ReadCommitted)
        .unwrap();
    for chunk in 0..20 {
        if chunk == 10 {
            let s = e.pool().stats();
            assert!(s.dirty_writebacks > 0, "{s:?}");
            e.commit(1).unwrap();
        }
        let values: Vec<String> = (0..500)
            .map(|i| {
                let id = chunk * 500 + i;
                format!("({id}, 'value {id} padded to make rows longer')")
            })
            .collect();
        let sql = format!("INSERT INTO big VALUES {}", values.join(", "));
        let out = e
            .execute(&QueryCall {
                sql: &sql,
                txn: (chunk < 10).then_some(1),
                mode: Mode::ReadWrite,
                ctx: &ctx,
            })
            .unwrap();
        assert_eq!(out.rows_affected, 500);
    }
    let stats = e.pool().stats();
    let pages = e.pool().disk().num_pages();
    assert!(pages > 64, "the table outgrows the pool: {pages} pages");
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.disk_writes > 0, "{stats:?}");
    let out = run(&e, &ctx, "SELECT COUNT(*), SUM(id) FROM big");
    assert_eq!(out.rows[0][0], 10_000);
    assert_eq!(out.rows[0][1], 10_000 * 9_999 / 2);
    let t = e.table("big").unwrap().unwrap();
    assert_eq!(t.row_count, 10_000);
    drop(e);

    // From the file alone.
    let e = open();
    let out = run(&e, &ctx, "SELECT id, v FROM big");
    assert_eq!(out.rows.len(), 10_000);
    let mut seen = vec![false; 10_000];
    for r in &out.rows {
        let id = r[0].as_u64().unwrap() as usize;
        assert_eq!(
            r[1].as_str().unwrap(),
            format!("value {id} padded to make rows longer")
        );
        seen[id] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert!(e.pool().stats().misses > 0);
    // Errors are values, not panics.
    let err = e
        .execute(&QueryCall {
            sql: "SELECT * FROM missing",
            txn: None,
            mode: Mode::ReadOnly,
            ctx: &ctx,
        })
        .unwrap_err();
    assert!(matches!(err, SqlError::NotFound(_)), "{err:?}");
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn long_rows_chain_pages_and_dropped_tables_give_pages_back() {
    let dir = temp_dir("small");
    let open = || GlueEngine::open_with(&dir, opts(16, None), None).unwrap();
    let ctx = MemoryContext::root("test");
    let e = open();
    run(&e, &ctx, "CREATE TABLE s (id INTEGER PRIMARY KEY, t TEXT)");
    for i in 0..20 {
        run(
            &e,
            &ctx,
            &format!("INSERT INTO s VALUES ({i}, REPEAT('{}', 10000))", i % 10),
        );
    }
    run(&e, &ctx, "DELETE FROM s WHERE id >= 10");
    let grown = e.pool().disk().num_pages();
    drop(e);
    let e = open();
    let out = run(&e, &ctx, "SELECT id, t FROM s ORDER BY id");
    assert_eq!(out.rows.len(), 10);
    for r in &out.rows {
        let id = r[0].as_u64().unwrap();
        assert_eq!(r[1].as_str().unwrap(), id.to_string().repeat(10000));
    }
    // Freed chain pages are reused: ten more long rows fit without growing much.
    for i in 10..20 {
        run(
            &e,
            &ctx,
            &format!("INSERT INTO s VALUES ({i}, REPEAT('x', 10000))"),
        );
    }
    assert!(e.pool().disk().num_pages() <= grown + 2, "{grown}");
    run(&e, &ctx, "DROP TABLE s");
    let before = e.pool().disk().num_pages();
    run(&e, &ctx, "CREATE TABLE s2 (id INTEGER, t TEXT)");
    for i in 0..20 {
        run(
            &e,
            &ctx,
            &format!("INSERT INTO s2 VALUES ({i}, REPEAT('y', 10000))"),
        );
    }
    assert_eq!(
        e.pool().disk().num_pages(),
        before,
        "the dropped table's pages"
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Random inserts, updates (growing, shrinking, into and out of page chains)
/// and deletes, in autocommit and in transactions that commit or roll back,
/// checked against a model after every step and after reopening.
#[test]
fn random_changes_match_a_model_through_rollbacks_and_reopen() {
    use std::collections::BTreeMap;
    let disk: Arc<dyn rustydb_memory::buffer_pool::DiskManager> =
        Arc::new(rustydb_memory::buffer_pool::MemDisk::new(4096));
    let dir = temp_dir("model");
    let open = || GlueEngine::open_with(&dir, opts(16, Some(disk.clone())), None).unwrap();
    let ctx = MemoryContext::root("test");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let check = |e: &GlueEngine, model: &BTreeMap<u64, (u64, char)>| {
        let out = run(
            e,
            &ctx,
            "SELECT id, LENGTH(s), SUBSTR(s, 1, 1) FROM r ORDER BY id",
        );
        let got: BTreeMap<u64, (u64, char)> = out
            .rows
            .iter()
            .map(|r| {
                let c = r[2].as_str().unwrap().chars().next().unwrap();
                (r[0].as_u64().unwrap(), (r[1].as_u64().unwrap(), c))
            })
            .collect();
        assert_eq!(&got, model);
    };
    let e = open();
    run(&e, &ctx, "CREATE TABLE r (id INTEGER PRIMARY KEY, s TEXT)");
    let mut model: BTreeMap<u64, (u64, char)> = BTreeMap::new();
    let mut txn_id = 100;
    for step in 0..300 {
        let in_txn = rand(4) == 0;
        let mut shadow = model.clone();
        if in_txn {
            txn_id += 1;
            e.begin(txn_id, server::sql::engine::IsolationLevel::Serializable)
                .unwrap();
        }
        for _ in 0..if in_txn { 1 + rand(6) } else { 1 } {
            let id = rand(60);
            let len = [1, 10, 300, 3000, 5000, 12000][rand(6) as usize];
            let c = (b'a' + rand(26) as u8) as char;
            let sql = match rand(3) {
                0 if !shadow.contains_key(&id) => {
                    shadow.insert(id, (len, c));
                    format!("INSERT INTO r VALUES ({id}, REPEAT('{c}', {len}))")
                }
                0 | 1 => {
                    if let Some(v) = shadow.get_mut(&id) {
                        *v = (len, c);
                    }
                    format!("UPDATE r SET s = REPEAT('{c}', {len}) WHERE id = {id}")
                }
                _ => {
                    shadow.remove(&id);
                    format!("DELETE FROM r WHERE id = {id}")
                }
            };
            e.execute(&QueryCall {
                sql: &sql,
                txn: in_txn.then_some(txn_id),
                mode: Mode::ReadWrite,
                ctx: &ctx,
            })
            .unwrap_or_else(|err| panic!("step {step}: {sql}: {err}"));
        }
        if in_txn {
            if rand(2) == 0 {
                e.commit(txn_id).unwrap();
                model = shadow;
            } else {
                e.rollback(txn_id).unwrap();
            }
        } else {
            model = shadow;
        }
        check(&e, &model);
    }
    assert!(model.len() > 10, "{}", model.len());
    drop(e);
    let e = open();
    check(&e, &model);
}

/// Odd statements are answered (a result or a 4xx-class error), never a
/// panic or an internal error.
#[test]
fn odd_statements_get_answers() {
    let dir = temp_dir("odd");
    let disk = Arc::new(rustydb_memory::buffer_pool::MemDisk::new(4096));
    let e = GlueEngine::open_with(&dir, opts(16, Some(disk)), None).unwrap();
    let ctx = MemoryContext::root("test");
    run(&e, &ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)");
    run(&e, &ctx, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    for sql in [
        "",
        ";",
        "SELECT 1; SELECT 2",
        "SHOW TABLES",
        "SHOW VERSION",
        "SHOW COLUMNS FROM t",
        "CREATE INDEX i ON t (s)",
        "DROP INDEX t.i",
        "ALTER TABLE t ADD COLUMN x INTEGER",
        "ALTER TABLE t RENAME TO u",
        "INSERT INTO t SELECT id + 10, s FROM t",
        "CREATE TABLE c AS SELECT * FROM t",
        "DROP TABLE IF EXISTS nope",
        "DROP TABLE nope",
        "EXPLAIN BEGIN",
        "EXPLAIN EXPLAIN SELECT 1",
        "EXPLAIN SELECT * FROM nope",
        "EXPLAIN INSERT INTO t VALUES (9, 'z')",
        "EXPLAIN UPDATE t SET s = 'q' WHERE id = 1",
        "EXPLAIN DELETE FROM t WHERE id = 1",
        "VALUES (1) UNION VALUES ('a', 'b')",
        "SELECT 1 INTERSECT SELECT 1",
        "SELECT * FROM t UNION SELECT * FROM t ORDER BY id",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT * FROM GLUE_TABLES",
        "SELECT * FROM t a, t b, t c",
        "SELECT * FROM t NATURAL JOIN t",
        "SELECT * FROM t FULL OUTER JOIN t u ON t.id = u.id",
        "SELECT 1 / 0",
        "SELECT CAST('x' AS INTEGER)",
        "SELECT 9223372036854775807 + 1",
        "UPDATE t SET id = 2 WHERE id = 1",
        "INSERT INTO t VALUES (NULL, 'n')",
        "INSERT INTO t (s) VALUES ('no key')",
        "CREATE FUNCTION f() RETURN 1",
        "COMMIT",
        "ROLLBACK",
        "SELECT * FROM t WHERE s LIKE '%'",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ] {
        let r = e.execute(&QueryCall {
            sql,
            txn: None,
            mode: Mode::Admin,
            ctx: &ctx,
        });
        if let Err(err) = &r {
            assert!(
                !matches!(err, SqlError::Internal(_)),
                "{sql}: internal error {err}"
            );
        }
    }
    // GlueSQL 0.20 panics on a negative REPEAT count (capacity overflow): a
    // literal one is refused up front as bad SQL …
    let err = e
        .execute(&QueryCall {
            sql: "SELECT REPEAT('a', -1)",
            txn: None,
            mode: Mode::Admin,
            ctx: &ctx,
        })
        .unwrap_err();
    assert!(matches!(err, SqlError::Invalid(_)), "{err}");
    // … a computed one reaches GlueSQL: the engine catches the panic, undoes
    // the statement and answers an internal error.
    let err = e
        .execute(&QueryCall {
            sql: "SELECT REPEAT('a', 1 - 2)",
            txn: None,
            mode: Mode::Admin,
            ctx: &ctx,
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("failed on this statement"),
        "{err}"
    );
    // ALTER TABLE works through Store/StoreMut (GlueSQL's default
    // AlterTable): renamed, the table keeps its rows, and new generated keys
    // do not collide with the moved ones.
    let out = run(&e, &ctx, "SELECT COUNT(*) FROM u");
    assert!(out.rows[0][0].as_u64().unwrap() >= 2);
    run(&e, &ctx, "CREATE TABLE np (a INTEGER)");
    run(&e, &ctx, "INSERT INTO np VALUES (1), (2), (3)");
    run(&e, &ctx, "ALTER TABLE np RENAME TO np2");
    run(&e, &ctx, "INSERT INTO np2 VALUES (4)");
    let out = run(&e, &ctx, "SELECT COUNT(*), SUM(a) FROM np2");
    assert_eq!(out.rows[0], vec![json!(4), json!(10)]);
    // … and it rolls back: the old schema and the old rows.
    e.begin(1, server::sql::engine::IsolationLevel::Serializable)
        .unwrap();
    e.execute(&QueryCall {
        sql: "ALTER TABLE np2 ADD COLUMN b INTEGER DEFAULT 7",
        txn: Some(1),
        mode: Mode::Admin,
        ctx: &ctx,
    })
    .unwrap();
    e.rollback(1).unwrap();
    let out = run(&e, &ctx, "SELECT * FROM np2 WHERE a = 1");
    assert_eq!(out.rows, vec![vec![json!(1)]]);
}
